// The websocket server. This is the one translation unit of the module that includes websocketpp and Asio.
//
// Threading, in short (the header has the contract):
//  - `workers` threads run io_. websocketpp gives every connection a strand and wraps all of that connection's
//    handlers (handshake, frames, ping, pong, timers, close) in it; every Session call is made from one of those
//    handlers, so a session is entered by one thread at a time, in frame order, and OnClose comes last.
//  - Every call into a websocketpp connection (send, close, ping, pong) is made on that connection's strand:
//    websocketpp writes its connection state from strand handlers without a lock. Outbox calls from other threads only
//    queue and post a drain to the strand (ConnectionOutbox).
//  - The listening socket has its own strand (accept_strand_) so that Stop() can close it without racing the accept
//    loop (websocketpp's own accept loop offers no such guarantee, and spins on EMFILE).
#include <syncline/transport/websocket_server.hpp>

#include <syncline/core/protocol/close_code.hpp>

#include <syncline/wspp/quiet_config.hpp>
#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/server.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/signal_set.hpp>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <exception>
#include <list>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace syncline::transport {
namespace {

namespace asio = websocketpp::lib::asio;
using ErrorCode = websocketpp::lib::error_code;

constexpr int kGoingAway = ToInt(CloseCode::kGoingAway);
constexpr int kInternalError = ToInt(CloseCode::kInternalError);
constexpr int kTryAgainLater = ToInt(CloseCode::kTryAgainLater);
constexpr char kShutdownReason[] = "server shutting down";
constexpr char kPongTimeoutReason[] = "pong timeout";
constexpr std::size_t kMaxHttpBodyBytes = 64 * 1024;
constexpr std::chrono::milliseconds kAcceptRetryDelay{100};
constexpr std::size_t kDescriptorReserve = 256;
constexpr std::size_t kMaxDefaultConnections = 65536;

struct ConnectionState;

// The server whose worker the current thread is, if any (Stop() must not run on its own worker).
thread_local const void* t_worker_of = nullptr;

class SocketTracker;

// One accepted socket, held by its connection (ConnectionData) until the connection object goes, which is when its
// descriptor is closed. Releases its place in the tracker, and the spare descriptor it borrowed, when destroyed.
struct SocketSlot {
    SocketSlot(std::shared_ptr<SocketTracker> owner, bool borrowed) : tracker(std::move(owner)), overflow(borrowed) {}
    // Destroyed with the connection's first base class, before the one that owns the socket: an overflow slot closes
    // the socket itself first, so that the spare descriptor can be opened again in its place.
    ~SocketSlot();
    SocketSlot(const SocketSlot&) = delete;
    SocketSlot& operator=(const SocketSlot&) = delete;

    std::shared_ptr<SocketTracker> tracker;
    // Accepted with the spare descriptor (the process was out of descriptors): serves plain HTTP such as /healthz,
    // refuses websocket handshakes with 503. Set before the connection starts; read on its strand.
    const bool overflow;
    // The connection's socket, set with the slot (accept strand) when `overflow`; closed by the destructor.
    asio::ip::tcp::socket* socket = nullptr;
    bool in_handshake = true;  // guarded by the tracker's mutex
    const std::chrono::steady_clock::time_point accepted_at = std::chrono::steady_clock::now();
    std::list<std::pair<websocketpp::connection_hdl, SocketSlot*>>::iterator position;  // guarded likewise
};

// The sockets accepted and not yet websocket connections (handshakes in progress, plain HTTP requests), oldest first,
// so that sockets that never finish a handshake cannot take every descriptor: beyond max_handshakes the oldest is
// closed once it has had handshake_grace to finish (a burst of honest clients, e.g. all reconnecting after a restart,
// is served even when it is larger than max_handshakes). Also keeps one spare descriptor, lent to accept one connection when the process is out of descriptors
// (so /healthz is answered then too). Thread-safe; shared with every slot, so it outlives the server if need be.
class SocketTracker : public std::enable_shared_from_this<SocketTracker> {
public:
    SocketTracker(std::size_t max_handshakes, std::chrono::milliseconds grace)
        : max_handshakes_(std::max<std::size_t>(max_handshakes, 1)), grace_(grace) {
        spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    ~SocketTracker() {
        if (spare_fd_ >= 0) ::close(spare_fd_);
    }
    SocketTracker(const SocketTracker&) = delete;
    SocketTracker& operator=(const SocketTracker&) = delete;

    /// A socket just accepted (accept strand): its slot.
    std::shared_ptr<SocketSlot> Track(const websocketpp::connection_hdl& hdl, bool borrowed) {
        auto slot = std::make_shared<SocketSlot>(shared_from_this(), borrowed);
        std::lock_guard<std::mutex> lock(mutex_);
        in_handshake_.emplace_back(hdl, slot.get());
        slot->position = std::prev(in_handshake_.end());
        return slot;
    }

    /// While more than max_handshakes sockets are in their handshake, takes out the oldest ones that have had their
    /// grace (they are no longer tracked) into `evict`. Returns when to look again: when the oldest of those over the
    /// limit will have had its grace, or nullopt when they are within the limit.
    std::optional<std::chrono::steady_clock::time_point> TakeOverdue(std::chrono::steady_clock::time_point now,
                                                                     std::vector<websocketpp::connection_hdl>& evict) {
        std::lock_guard<std::mutex> lock(mutex_);
        while (in_handshake_.size() > max_handshakes_) {
            auto& [oldest, oldest_slot] = in_handshake_.front();
            if (oldest_slot->accepted_at + grace_ > now) {
                return oldest_slot->accepted_at + grace_;
            }
            evict.push_back(oldest);
            oldest_slot->in_handshake = false;
            in_handshake_.pop_front();
        }
        return std::nullopt;
    }

    /// The socket became a websocket connection (its strand): it is no longer a candidate for eviction.
    void Promote(SocketSlot& slot) {
        std::lock_guard<std::mutex> lock(mutex_);
        Forget(slot);
    }

    /// Out of descriptors (accept strand): closes the spare descriptor so that the next accept can take it. False
    /// when it is already lent.
    bool LendSpare() {
        std::lock_guard<std::mutex> lock(mutex_);
        if (spare_fd_ < 0) return false;
        ::close(spare_fd_);
        spare_fd_ = -1;
        return true;
    }

private:
    friend struct SocketSlot;

    void Release(SocketSlot& slot) {
        std::lock_guard<std::mutex> lock(mutex_);
        Forget(slot);
        if (slot.overflow && spare_fd_ < 0) {
            spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);  // the borrowed descriptor was just closed
        }
    }

    void Forget(SocketSlot& slot) {
        if (slot.in_handshake) {
            in_handshake_.erase(slot.position);
            slot.in_handshake = false;
        }
    }

    const std::size_t max_handshakes_;
    const std::chrono::milliseconds grace_;
    std::mutex mutex_;
    std::list<std::pair<websocketpp::connection_hdl, SocketSlot*>> in_handshake_;  // guarded by mutex_
    int spare_fd_ = -1;                                                            // guarded by mutex_
};

SocketSlot::~SocketSlot() {
    if (socket != nullptr) {
        boost::system::error_code ignored;
        socket->close(ignored);
    }
    tracker->Release(*this);
}

// websocketpp derives every connection from config::connection_base; ours carries the connection's state so a frame
// handler reaches it without a lookup in a shared map, and the slot of its socket.
struct ConnectionData {
    std::shared_ptr<ConnectionState> syncline_state;
    std::shared_ptr<SocketSlot> socket_slot;  // set when accepted, before the connection starts
};

// The stock asio config with our connection base and websocketpp's logging compiled out: we log through spdlog.
using ServerConfig =
    syncline::wspp::QuietConfig<websocketpp::config::asio, websocketpp::config::asio::rng_type, ConnectionData>;

using WsServer = websocketpp::server<ServerConfig>;
using WsConnection = WsServer::connection_type;
using ConnectionPtr = WsServer::connection_ptr;
using MessageType = ServerConfig::message_type;
using MessagePtr = MessageType::ptr;
using TimerPtr = WsConnection::timer_ptr;

std::string_view PathOf(std::string_view resource) {
    return resource.substr(0, resource.find('?'));
}

std::string FormatRemote(const asio::ip::tcp::endpoint& endpoint) {
    asio::ip::address address = endpoint.address();
    if (address.is_v6() && address.to_v6().is_v4_mapped()) {
        address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
    }
    std::string text = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
    return text + ":" + std::to_string(endpoint.port());
}

std::string AsciiLower(std::string text) {
    for (char& c : text) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return text;
}

bool IsSendableCloseCode(int code) {
    if (code < 1000 || code > 4999) {
        return false;
    }
    const auto value = static_cast<websocketpp::close::status::value>(code);
    return !websocketpp::close::status::invalid(value) && !websocketpp::close::status::reserved(value);
}

// How a connection's outgoing queue behaves (from ServerOptions).
struct QueueLimits {
    std::size_t write_high_water = 256 * 1024;
    std::size_t max_queue_bytes = 4 * 1024 * 1024;
    std::chrono::milliseconds slow_reader_timeout{10000};
};

// The Outbox a Session writes to, and the one write path of its connection.
//
// Threads (Boost.Beast's shape): Send, SendPush, SendSharedPush and Close may be called from any thread, and so may
// BufferedBytes; they only append to a small queue under mutex_ and make sure one Drain is posted to the connection's
// strand (or run it at once when already on that strand). Drain, on the strand, is the only code that calls into the
// websocketpp connection (send, close): websocketpp writes a connection's state from its own strand handlers without
// a lock (terminate after a read error), so a send from another thread would race it. Pongs are queued here too
// (QueuePong, on the strand), and the server's pings are sent from a strand timer.
//
// Order: frames go out in the order of the calls that queued them (replies, pushes and the close frame alike); a pong
// may go ahead of queued data frames (RFC 6455 lets control frames interleave with messages).
//
// Slow readers: Drain hands frames to websocketpp while it holds less than write_high_water bytes not yet written to
// the socket; beyond that they wait in pending_, where a push replaces a waiting push with the same key (the latest
// state wins; replies are never replaced). Each frame websocketpp finishes writing posts a drain when frames wait. A
// reader whose queue (websocketpp's and ours) stays over max_queue_bytes for slow_reader_timeout, or exceeds four times
// that at once, is closed with 1013. Pongs count toward the same bytes; at most one pong is outstanding (the latest
// ping's: RFC 6455 allows answering only the most recent one), and a pong that cannot be handed over for
// slow_reader_timeout (the peer sends pings and reads nothing) closes the socket with 1013 too. So memory per
// connection is bounded whatever the client does.
class ConnectionOutbox final : public Outbox, public std::enable_shared_from_this<ConnectionOutbox> {
public:
    /// On the connection's strand (the open handler).
    ConnectionOutbox(const ConnectionPtr& connection, QueueLimits limits)
        : connection_(connection), strand_(connection->get_strand()), limits_(limits) {}

    void Send(std::string frame) override {
        if (ValidUtf8(frame)) Enqueue(Pending{std::move(frame), nullptr, std::string()});
    }

    void SendPush(std::string frame, const std::string& key) override {
        if (ValidUtf8(frame)) Enqueue(Pending{std::move(frame), nullptr, key});
    }

    // The fan-out path: the frame is validated and framed once, by whichever connection sends it first, and every
    // connection queues the same websocketpp message (a server frame is unmasked, so its bytes are the same for all).
    void SendSharedPush(std::shared_ptr<const SharedFrame> frame, const std::string& key) override {
        const std::shared_ptr<void>& prepared = frame->Prepared([](const std::string& text) -> std::shared_ptr<void> {
            if (!websocketpp::utf8_validator::validate(text)) {
                return nullptr;
            }
            return PrepareMessage(websocketpp::frame::opcode::text, std::string(text));
        });
        if (!prepared) {
            WarnInvalidUtf8();
            return;
        }
        Enqueue(Pending{std::string(), std::static_pointer_cast<MessageType>(prepared), key});
    }

    // After the frames already queued: Drain hands everything waiting to websocketpp, then the close frame. Only the
    // slow-reader close drops the queue.
    void Close(int code, std::string reason) override {
        if (!IsSendableCloseCode(code)) {
            spdlog::warn("websocket: close code {} cannot be sent; closing with {} instead", code, kInternalError);
            code = kInternalError;
        }
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (closing_ || closed_) {
                return;
            }
            closing_ = true;
            close_.emplace(code, std::move(reason));
        }
        RequestDrain();
    }

    // Payload bytes of the frames queued (pongs included) that are not yet written to the socket. Not websocketpp's
    // get_buffered_amount(): that one is read without its lock and forgets a frame as soon as the write starts rather
    // than when it completes.
    std::size_t BufferedBytes() const override {
        std::lock_guard<std::mutex> lock(mutex_);
        return closed_ ? 0 : buffered_->load() + pending_bytes_;
    }

    /// On the strand (the ping handler): owes a pong with this payload. Replaces a pong still waiting.
    void QueuePong(std::string payload) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (closing_ || closed_) {
                return;
            }
            if (pong_) {
                pending_bytes_ -= pong_->size();
            }
            pending_bytes_ += payload.size();
            pong_ = std::move(payload);
        }
        RequestDrain();
    }

    /// Makes every later call a no-op and drops what waits. Called on the strand when the connection closed, or by
    /// Stop() after the workers are joined.
    void MarkClosed() {
        std::lock_guard<std::mutex> lock(mutex_);
        closed_ = true;
        DropQueueLocked();
        close_.reset();
    }

private:
    // A frame waiting for Drain: a frame of its own, or a prepared message shared with other connections.
    struct Pending {
        std::string frame;
        MessagePtr shared;
        std::string key;  // empty for replies
        std::size_t size() const { return shared ? shared->get_payload().size() : frame.size(); }
    };

    // A frame framed for sending: unmasked and uncompressed, so it is "prepared" (header built here, payload moved in;
    // websocketpp would copy it once more) and may go to any number of connections.
    static MessagePtr PrepareMessage(websocketpp::frame::opcode::value opcode, std::string payload) {
        const std::size_t size = payload.size();
        auto message = std::make_shared<MessageType>(nullptr, opcode, 0);
        message->set_header(websocketpp::frame::prepare_header(
            websocketpp::frame::basic_header(opcode, size, true, false), websocketpp::frame::extended_header(size)));
        message->get_raw_payload() = std::move(payload);
        message->set_prepared(true);
        return message;
    }

    bool ValidUtf8(const std::string& frame) {
        if (websocketpp::utf8_validator::validate(frame)) {
            return true;
        }
        WarnInvalidUtf8();
        return false;
    }

    void WarnInvalidUtf8() {
        bool first = false;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            first = !warned_invalid_utf8_;
            warned_invalid_utf8_ = true;
        }
        if (first) {
            spdlog::warn("websocket: dropped an outgoing text frame that is not valid UTF-8 (logged once per "
                         "connection)");
        }
    }

    // Any thread. The latest-wins replacement lives here, and only here: a push queued while the connection cannot
    // keep up (websocketpp holds write_high_water bytes or more, counting what waits) replaces the newest waiting
    // push with the same key, in its place (an older one with that key may wait before it: order is kept).
    void Enqueue(Pending frame) {
        std::size_t slow_total = 0;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (closing_ || closed_) {
                return;
            }
            const bool congested = buffered_->load() + pending_bytes_ >= limits_.write_high_water;
            auto newest = frame.key.empty() ? by_key_.end() : by_key_.find(frame.key);
            if (congested && newest != by_key_.end()) {
                pending_bytes_ = pending_bytes_ - newest->second->size() + frame.size();
                newest->second->frame = std::move(frame.frame);
                newest->second->shared = std::move(frame.shared);
            } else {
                pending_bytes_ += frame.size();
                pending_.push_back(std::move(frame));
                if (!pending_.back().key.empty()) {
                    by_key_[pending_.back().key] = std::prev(pending_.end());
                }
            }
            // Four times the limit at once: closed now, whatever the timeout (memory stays bounded).
            const std::size_t total = pending_bytes_ + buffered_->load();
            if (total > 4 * limits_.max_queue_bytes) {
                slow_total = total;
                CloseSlowReaderLocked();
            }
        }
        if (slow_total != 0) {
            spdlog::warn("websocket: closing a slow reader with 1013 ({} bytes queued)", slow_total);
        }
        RequestDrain();
    }

    // Runs Drain now when on the strand (a session answering a frame), else posts it.
    void RequestDrain() {
        if (strand_->running_in_this_thread()) {
            Drain();
        } else {
            PostDrain();
        }
    }

    // Any thread: one posted drain at a time.
    void PostDrain() {
        if (drain_posted_.exchange(true)) {
            return;
        }
        std::weak_ptr<ConnectionOutbox> self = weak_from_this();
        asio::post(*strand_, [self] {
            if (auto outbox = self.lock()) {
                outbox->Drain();
            }
        });
    }

    // On the strand: the one place that calls into the websocketpp connection for this outbox. Hands the owed pong
    // and as many waiting frames as websocketpp has room for (all of them when closing) to websocketpp, then the close
    // frame once nothing waits before it.
    void Drain() {
        assert(strand_->running_in_this_thread());
        if (draining_) {
            PostDrain();  // entered again from a websocketpp call below: run once more after it
            return;
        }
        draining_ = true;
        drain_posted_.store(false);  // a call queuing after this point posts another drain
        ConnectionPtr connection = connection_.lock();
        // Declared before the lock: a handle dropped here (send failed) runs its deleter, which takes mutex_.
        MessagePtr pong;
        std::vector<MessagePtr> batch;
        std::optional<std::pair<int, std::string>> close;
        bool arm_timer = false;
        std::size_t slow_total = 0;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (closed_ || !connection) {
                DropQueueLocked();
                draining_ = false;
                return;
            }
            if (pong_ && !pong_in_flight_) {
                pending_bytes_ -= pong_->size();
                pong = HandleLocked(PrepareMessage(websocketpp::frame::opcode::pong, std::move(*pong_)), true);
                pong_.reset();
                pong_in_flight_ = true;
            }
            const bool flush_all = close_.has_value();
            while (!pending_.empty() && (flush_all || buffered_->load() < limits_.write_high_water)) {
                if (!pending_.front().key.empty()) {
                    auto it = by_key_.find(pending_.front().key);
                    if (it != by_key_.end() && it->second == pending_.begin()) {
                        by_key_.erase(it);
                    }
                }
                Pending next = std::move(pending_.front());
                pending_.pop_front();
                pending_bytes_ -= next.size();
                batch.push_back(
                    HandleLocked(next.shared ? std::move(next.shared)
                                             : PrepareMessage(websocketpp::frame::opcode::text, std::move(next.frame)),
                                 false));
            }
            if (!closing_) {
                slow_total = CheckSlowReaderLocked(arm_timer);
            }
            if (close_ && pending_.empty()) {
                close = std::move(close_);
                close_.reset();
            }
        }
        if (slow_total != 0) {
            spdlog::warn("websocket: closing a slow reader with 1013 ({} bytes queued)", slow_total);
        }
        // Errors mean the connection is already closing: the frames are dropped, as documented.
        if (pong) {
            (void)connection->send(pong);
        }
        for (MessagePtr& message : batch) {
            (void)connection->send(message);
        }
        if (close) {
            ErrorCode ec;  // invalid_state: already closing, nothing to do
            connection->close(static_cast<websocketpp::close::status::value>(close->first), close->second, ec);
        }
        if (arm_timer) {
            // Check again when the timeout has passed, even if nothing is sent or written meanwhile (a reader that
            // stopped reading produces no events). The timer runs on the connection's strand.
            std::weak_ptr<ConnectionOutbox> self = weak_from_this();
            connection->set_timer(static_cast<long>(limits_.slow_reader_timeout.count()) + 1,
                                  [self](const ErrorCode& ec) {
                                      if (auto outbox = self.lock(); outbox && !ec) {
                                          outbox->Drain();
                                      }
                                  });
        }
        draining_ = false;
    }

    // With mutex_ held, not closing. Returns the queued bytes when it closes the reader (for the log line, written
    // outside the lock), else 0; sets arm_timer when the reader just went over a limit.
    std::size_t CheckSlowReaderLocked(bool& arm_timer) {
        const auto now = std::chrono::steady_clock::now();
        const std::size_t total = pending_bytes_ + buffered_->load();
        bool over_timeout = false;
        if (total <= limits_.max_queue_bytes) {
            over_since_.reset();
        } else if (!over_since_) {
            over_since_ = now;
            arm_timer = true;
        } else {
            over_timeout = now - *over_since_ >= limits_.slow_reader_timeout;
        }
        // A pong that could not be handed over (the previous one is still unwritten) means the peer reads nothing.
        if (!(pong_ && pong_in_flight_)) {
            pong_waiting_since_.reset();
        } else if (!pong_waiting_since_) {
            pong_waiting_since_ = now;
            arm_timer = true;
        } else if (now - *pong_waiting_since_ >= limits_.slow_reader_timeout) {
            over_timeout = true;
        }
        if (total > 4 * limits_.max_queue_bytes || over_timeout) {
            CloseSlowReaderLocked();
            return std::max<std::size_t>(total, 1);
        }
        return 0;
    }

    // With mutex_ held: drops what waits and asks Drain for the 1013 close.
    void CloseSlowReaderLocked() {
        DropQueueLocked();
        closing_ = true;
        close_.emplace(kTryAgainLater, "slow reader: outgoing queue over its limit");
    }

    void DropQueueLocked() {
        pending_.clear();
        by_key_.clear();
        pending_bytes_ = 0;
        pong_.reset();
    }

    // With mutex_ held: the handle websocketpp queues for `message`. It counts the frame in buffered_ until websocketpp
    // drops it, which it does once the frame is written to the socket (or dropped with the connection), and keeps the
    // (possibly shared) message alive meanwhile; then it asks for a drain if frames wait. (It only posts: websocketpp
    // may drop it while holding its own write lock.)
    MessagePtr HandleLocked(MessagePtr message, bool is_pong) {
        const std::size_t size = message->get_payload().size();
        buffered_->fetch_add(size);
        std::weak_ptr<ConnectionOutbox> self = weak_from_this();
        MessageType* raw = message.get();
        return MessagePtr(raw, [message = std::move(message), buffered = buffered_, size, self,
                                is_pong](MessageType*) mutable {
            buffered->fetch_sub(size);
            message.reset();
            if (auto outbox = self.lock()) {
                outbox->OnWritten(is_pong);
            }
        });
    }

    // Any thread (usually the strand): a frame handed to websocketpp is written, or dropped.
    void OnWritten(bool is_pong) {
        bool waiting = false;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (is_pong) {
                pong_in_flight_ = false;
            }
            waiting = !closed_ && (!pending_.empty() || pong_.has_value());
        }
        if (waiting) {
            PostDrain();
        }
    }

    const std::weak_ptr<WsConnection> connection_;
    const std::shared_ptr<asio::io_context::strand> strand_;  // outlives the connection; its io_context outlives us
    const QueueLimits limits_;

    mutable std::mutex mutex_;
    bool closing_ = false;  // guarded by mutex_: Close was called (or the slow-reader rule): new frames are dropped
    bool closed_ = false;   // guarded by mutex_: MarkClosed: everything is a no-op
    bool warned_invalid_utf8_ = false;                   // guarded by mutex_
    std::optional<std::pair<int, std::string>> close_;   // guarded by mutex_: the close Drain sends after pending_
    std::list<Pending> pending_;                         // guarded by mutex_
    // Guarded by mutex_: the newest waiting push of each key (the one a newer push replaces).
    std::unordered_map<std::string, std::list<Pending>::iterator> by_key_;
    std::size_t pending_bytes_ = 0;                      // guarded by mutex_: pending_ and pong_
    std::optional<std::string> pong_;                    // guarded by mutex_: owed, not yet handed to websocketpp
    bool pong_in_flight_ = false;                        // guarded by mutex_: a pong websocketpp has not written yet
    std::optional<std::chrono::steady_clock::time_point> over_since_;          // guarded by mutex_
    std::optional<std::chrono::steady_clock::time_point> pong_waiting_since_;  // guarded by mutex_
    // Bytes handed to websocketpp and not yet written; shared with the handles, which may outlive the outbox.
    std::shared_ptr<std::atomic<std::size_t>> buffered_ = std::make_shared<std::atomic<std::size_t>>(0);
    std::atomic<bool> drain_posted_{false};  // a drain is posted and has not started yet
    bool draining_ = false;                  // strand only
};

// Per-connection state. Everything but `outbox` (itself thread-safe) is touched only on the connection's strand, or
// by Stop() after the workers are joined.
struct ConnectionState {
    // Counts this connection toward max_connections until the state goes (with the connection or at its close).
    std::shared_ptr<void> websocket_slot;
    HandshakeRequest request;
    std::shared_ptr<Endpoint> endpoint;
    std::shared_ptr<ConnectionOutbox> outbox;
    std::unique_ptr<Session> session;
    TimerPtr ping_timer;
    bool awaiting_pong = false;
    std::chrono::steady_clock::time_point ping_sent;
};

std::string Describe(const ConnectionState& state) {
    return state.request.path + " from " + state.request.remote;
}

}  // namespace

std::size_t DefaultMaxConnections() {
    rlimit limit{};
    std::size_t soft = 1024;
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) {
        soft = limit.rlim_cur == RLIM_INFINITY ? kMaxDefaultConnections + kDescriptorReserve
                                               : static_cast<std::size_t>(limit.rlim_cur);
    }
    const std::size_t reserve = std::min(kDescriptorReserve, soft / 2);
    return std::clamp<std::size_t>(soft - reserve, 1, kMaxDefaultConnections);
}

namespace {

std::size_t SoftDescriptorLimit() {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return 0;
    return static_cast<std::size_t>(limit.rlim_cur);
}

}  // namespace

class WebSocketServer::Impl {
public:
    explicit Impl(ServerOptions options) : options_(std::move(options)) {
        server_.clear_access_channels(websocketpp::log::alevel::all);
        server_.clear_error_channels(websocketpp::log::elevel::all);
        server_.init_asio(&io_);
        server_.set_max_message_size(options_.max_message_bytes);
        server_.set_max_http_body_size(kMaxHttpBodyBytes);

        server_.set_tcp_post_init_handler([this](websocketpp::connection_hdl hdl) { OnTcpPostInit(hdl); });
        server_.set_http_handler([this](websocketpp::connection_hdl hdl) { OnHttp(hdl); });
        server_.set_validate_handler([this](websocketpp::connection_hdl hdl) { return OnValidate(hdl); });
        server_.set_open_handler([this](websocketpp::connection_hdl hdl) { OnOpen(hdl); });
        server_.set_message_handler(
            [this](websocketpp::connection_hdl hdl, const MessagePtr& message) { OnMessage(hdl, message); });
        server_.set_close_handler([this](websocketpp::connection_hdl hdl) { OnClose(hdl); });
        server_.set_pong_handler([this](websocketpp::connection_hdl hdl, const std::string&) { OnPong(hdl); });
        // Pongs go through the connection's outbox (false: websocketpp does not queue one of its own).
        server_.set_ping_handler([this](websocketpp::connection_hdl hdl, std::string payload) {
            OnPing(hdl, std::move(payload));
            return false;
        });
        // Failed connections (refused or broken handshakes) never had a session: nothing to clean up, nothing
        // worth a log line each.
    }

    ~Impl() { Stop(); }

    void Route(std::string path, std::shared_ptr<Endpoint> endpoint) {
        if (!endpoint) {
            throw std::invalid_argument("WebSocketServer::Route: null endpoint for " + path);
        }
        std::lock_guard<std::mutex> stop_lock(stop_mutex_);
        if (phase_ != Phase::kIdle) {
            throw std::logic_error("WebSocketServer::Route must be called before Start (" + path + ")");
        }
        if (!routes_.emplace(path, std::move(endpoint)).second) {
            throw std::logic_error("WebSocketServer::Route: path already routed: " + path);
        }
    }

    void Start() {
        std::lock_guard<std::mutex> stop_lock(stop_mutex_);
        if (phase_ != Phase::kIdle) {
            throw std::logic_error("WebSocketServer::Start: already started (a stopped server cannot restart)");
        }
        const std::string where = options_.host + ":" + std::to_string(options_.port);
        boost::system::error_code ec;
        asio::ip::tcp::resolver resolver(io_);
        const auto results = resolver.resolve(options_.host, std::to_string(options_.port),
                                              asio::ip::resolver_base::passive, ec);
        if (ec || results.empty()) {
            throw std::runtime_error("websocket server: cannot resolve " + where + ": " +
                                     (ec ? ec.message() : std::string("no address")));
        }
        const asio::ip::tcp::endpoint endpoint = results.begin()->endpoint();
        acceptor_.open(endpoint.protocol(), ec);
        if (!ec) {
            acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
        }
        if (!ec) {
            acceptor_.bind(endpoint, ec);
        }
        if (!ec) {
            acceptor_.listen(asio::socket_base::max_listen_connections, ec);
        }
        if (ec) {
            boost::system::error_code ignored;
            acceptor_.close(ignored);
            throw std::runtime_error("websocket server: cannot listen on " + where + ": " + ec.message());
        }
        port_.store(acceptor_.local_endpoint(ec).port());

        unsigned workers = options_.workers != 0 ? options_.workers : std::thread::hardware_concurrency();
        workers = std::max(workers, 1U);
        const std::size_t soft_limit = SoftDescriptorLimit();
        if (options_.max_connections != 0 && soft_limit != 0 &&
            options_.max_connections + std::min(kDescriptorReserve, soft_limit / 2) > soft_limit) {
            spdlog::warn(
                "websocket server: max_connections {} leaves fewer than {} of the {} descriptors this process "
                "may open for everything else; past the limit, handshakes wait for a spare descriptor",
                options_.max_connections, std::min(kDescriptorReserve, soft_limit / 2), soft_limit);
        }
        phase_ = Phase::kRunning;
        asio::post(accept_strand_, [this] { DoAccept(); });
        for (unsigned i = 0; i < workers; ++i) {
            workers_.emplace_back([this] { WorkerLoop(); });
        }
        spdlog::info("websocket server listening on {}:{} ({} worker{}, {} route{}, at most {} connections)",
                     options_.host, port_.load(), workers, workers == 1 ? "" : "s", routes_.size(),
                     routes_.size() == 1 ? "" : "s", max_connections_);
    }

    std::uint16_t port() const { return port_.load(); }

    std::size_t connection_count() const { return open_count_.load(); }

    void Stop() {
        if (t_worker_of == this) {
            throw std::logic_error("WebSocketServer::Stop called from one of its worker threads");
        }
        std::lock_guard<std::mutex> stop_lock(stop_mutex_);
        if (phase_ != Phase::kRunning) {
            return;
        }
        {
            // Wake Run() if it is blocked, or tell it not to block if it is between Start() and its wait.
            std::lock_guard<std::mutex> lock(run_mutex_);
            stop_requested_ = true;
            if (run_io_ != nullptr) {
                run_io_->stop();
            }
        }

        std::vector<std::shared_ptr<ConnectionState>> open;
        {
            std::lock_guard<std::mutex> lock(registry_mutex_);
            stopping_.store(true);
            for (const auto& entry : registry_) {
                open.push_back(entry.second);
            }
        }
        spdlog::info("websocket server shutting down: closing {} connection{}", open.size(),
                     open.size() == 1 ? "" : "s");
        asio::post(accept_strand_, [this] {
            boost::system::error_code ignored;
            acceptor_.close(ignored);
            accept_retry_timer_.cancel();
            handshake_timer_.cancel();
        });
        for (const auto& state : open) {
            state->outbox->Close(kGoingAway, kShutdownReason);
        }
        open.clear();
        {
            std::unique_lock<std::mutex> lock(registry_mutex_);
            registry_cv_.wait_for(lock, options_.shutdown_timeout, [this] { return registry_.empty(); });
        }

        work_guard_.reset();
        io_.stop();
        for (std::thread& worker : workers_) {
            worker.join();
        }
        workers_.clear();

        // Connections that did not finish their closing handshake in time: the loop is gone, so finish them here.
        std::vector<std::shared_ptr<ConnectionState>> leftovers;
        {
            std::lock_guard<std::mutex> lock(registry_mutex_);
            for (const auto& entry : registry_) {
                leftovers.push_back(entry.second);
            }
        }
        for (const auto& state : leftovers) {
            if (state->ping_timer) {
                state->ping_timer->cancel();  // while io_ is still alive; its handler is dropped with io_
                state->ping_timer.reset();
            }
            FinishConnection(*state);
        }
        if (!leftovers.empty()) {
            spdlog::warn("websocket server: {} connection{} did not finish closing within {} ms: dropped",
                         leftovers.size(), leftovers.size() == 1 ? "" : "s", options_.shutdown_timeout.count());
        }
        phase_ = Phase::kStopped;
        spdlog::info("websocket server stopped");
    }

    int Run() {
        asio::io_context signal_io;
        asio::signal_set signals(signal_io, SIGINT, SIGTERM);
        int received = 0;
        signals.async_wait([&received](const boost::system::error_code& ec, int signal_number) {
            if (!ec) {
                received = signal_number;
            }
        });
        Start();
        {
            std::lock_guard<std::mutex> lock(run_mutex_);
            if (stop_requested_) {
                signal_io.stop();
            }
            run_io_ = &signal_io;
        }
        signal_io.run();
        {
            std::lock_guard<std::mutex> lock(run_mutex_);
            run_io_ = nullptr;
        }
        if (received != 0) {
            spdlog::info("websocket server received {}", received == SIGTERM ? "SIGTERM" : "SIGINT");
        }
        Stop();
        return 0;
    }

private:
    enum class Phase { kIdle, kRunning, kStopped };

    void WorkerLoop() {
        t_worker_of = this;
        // A handler that throws unwinds run(); log it and keep the worker serving (websocketpp's own handlers
        // are not supposed to throw, and ours catch everything that comes from user code).
        for (;;) {
            try {
                io_.run();
                return;
            } catch (const std::exception& e) {
                spdlog::error("websocket server: exception escaped the event loop: {}", e.what());
            } catch (...) {
                spdlog::error("websocket server: unknown exception escaped the event loop");
            }
        }
    }

    // --- accept loop (accept_strand_) ---

    void DoAccept() {
        assert(accept_strand_.running_in_this_thread());
        if (!acceptor_.is_open()) {
            return;
        }
        ConnectionPtr connection = server_.get_connection();
        if (!connection) {
            spdlog::error("websocket server: cannot create a connection; retrying");
            RetryAcceptLater();
            return;
        }
        auto on_accept = [this, connection](const boost::system::error_code& ec) { OnAccept(connection, ec); };
        acceptor_.async_accept(connection->get_raw_socket(), asio::bind_executor(accept_strand_, on_accept));
    }

    void OnAccept(const ConnectionPtr& connection, const boost::system::error_code& ec) {
        assert(accept_strand_.running_in_this_thread());
        if (ec == asio::error::operation_aborted || !acceptor_.is_open()) {
            return;
        }
        if (ec) {
            // Out of descriptors or memory: retrying at once would spin. Log the first of a series only.
            if (ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space ||
                ec == asio::error::no_memory || ec.value() == ENFILE) {
                if (!accept_error_logged_) {
                    spdlog::warn("websocket server: accept failed ({}); pausing accepts", ec.message());
                    accept_error_logged_ = true;
                }
                // The spare descriptor lets the next accept through (a /healthz probe is answered on it); while it is
                // lent, accepts wait.
                if ((ec == asio::error::no_descriptors || ec.value() == ENFILE) && tracker_->LendSpare()) {
                    lend_spare_ = true;
                    DoAccept();
                } else {
                    RetryAcceptLater();
                }
                return;
            }
            DoAccept();
            return;
        }
        accept_error_logged_ = false;
        connection->socket_slot = tracker_->Track(connection->get_handle(), lend_spare_);
        if (lend_spare_) {
            connection->socket_slot->socket = &connection->get_raw_socket();
            lend_spare_ = false;
        }
        EvictOverdueHandshakes();
        // start() runs the first steps of the connection (socket init, the tcp post-init handler, the first read)
        // synchronously: run it on the connection's strand, like every later step, not on the accept strand.
        asio::post(*connection->get_strand(), [connection] { connection->start(); });
        DoAccept();
    }

    // Beyond max_handshakes sockets in their handshake, closes the oldest that have had their grace, and looks again
    // when the next one will have (accept strand).
    void EvictOverdueHandshakes() {
        std::vector<websocketpp::connection_hdl> evict;
        const auto next = tracker_->TakeOverdue(std::chrono::steady_clock::now(), evict);
        for (const auto& hdl : evict) {
            Evict(hdl);
        }
        if (!next || (handshake_timer_armed_ && handshake_timer_at_ <= *next)) {
            return;
        }
        handshake_timer_armed_ = true;
        handshake_timer_at_ = *next;
        handshake_timer_.expires_at(*next);
        handshake_timer_.async_wait(asio::bind_executor(accept_strand_, [this](const boost::system::error_code& ec) {
            if (ec == asio::error::operation_aborted) {
                return;  // re-armed earlier, or stopping
            }
            handshake_timer_armed_ = false;
            if (acceptor_.is_open()) {
                EvictOverdueHandshakes();
            }
        }));
    }

    // Closes a socket that has not finished its handshake (more than max_handshakes are open), as websocketpp's own
    // handshake timeout would, on its strand. One log line for the first, then one per thousand.
    void Evict(const websocketpp::connection_hdl& hdl) {
        ErrorCode ec;
        ConnectionPtr victim = server_.get_con_from_hdl(hdl, ec);
        if (!victim) {
            return;
        }
        if (evictions_++ % 1000 == 0) {
            spdlog::warn("websocket server: more than {} sockets in their handshake; closing the oldest ({} so far)",
                         options_.max_handshakes, evictions_);
        }
        asio::post(*victim->get_strand(), [victim] {
            // Not if it became a websocket connection meanwhile.
            if (victim->get_state() == websocketpp::session::state::connecting && !victim->syncline_state) {
                victim->terminate(websocketpp::error::make_error_code(websocketpp::error::open_handshake_timeout));
            }
        });
    }

    void RetryAcceptLater() {
        accept_retry_timer_.expires_after(kAcceptRetryDelay);
        accept_retry_timer_.async_wait(asio::bind_executor(accept_strand_, [this](const boost::system::error_code& ec) {
            if (!ec) {
                DoAccept();
            }
        }));
    }

    // --- connection handlers (each on its connection's strand) ---

    ConnectionPtr ConnectionOf(const websocketpp::connection_hdl& hdl) {
        ErrorCode ec;
        ConnectionPtr connection = server_.get_con_from_hdl(hdl, ec);
        assert(!connection || connection->get_strand()->running_in_this_thread());
        return connection;
    }

    void OnTcpPostInit(const websocketpp::connection_hdl& hdl) {
        // Without TCP_NODELAY a second small frame waits for the peer's delayed ACK (~40 ms).
        if (ConnectionPtr connection = ConnectionOf(hdl)) {
            boost::system::error_code ec;
            connection->get_raw_socket().set_option(asio::ip::tcp::no_delay(true), ec);
        }
    }

    // A handshake refused for lack of room: 503 with a JSON body saying why.
    static void RefuseBusy(WsConnection& connection, const std::string& body) {
        connection.set_status(websocketpp::http::status_code::service_unavailable);
        connection.append_header("Content-Type", "application/json");
        connection.append_header("Retry-After", "1");
        connection.set_body(body);
    }

    void OnHttp(const websocketpp::connection_hdl& hdl) {
        ConnectionPtr connection = ConnectionOf(hdl);
        if (!connection) {
            return;
        }
        const std::string_view path = PathOf(connection->get_resource());
        connection->append_header("Content-Type", "application/json");
        if (path != "/healthz") {
            connection->set_status(websocketpp::http::status_code::not_found);
            connection->set_body(R"({"detail":"Not found."})");
        } else if (connection->get_request().get_method() != "GET") {
            connection->set_status(websocketpp::http::status_code::method_not_allowed);
            connection->append_header("Allow", "GET");
            connection->set_body(R"({"detail":"Method not allowed."})");
        } else if (stopping_.load()) {
            connection->set_status(websocketpp::http::status_code::service_unavailable);
            connection->set_body(R"({"status":"stopping"})");
        } else {
            connection->set_status(websocketpp::http::status_code::ok);
            connection->set_body(R"({"status":"ok"})");
        }
    }

    bool OnValidate(const websocketpp::connection_hdl& hdl) {
        ConnectionPtr connection = ConnectionOf(hdl);
        if (!connection) {
            return false;
        }
        auto state = std::make_shared<ConnectionState>();
        const std::string& resource = connection->get_resource();
        const std::size_t question = resource.find('?');
        state->request.path = resource.substr(0, question);
        state->request.query = question == std::string::npos ? std::string() : resource.substr(question + 1);
        for (const auto& [name, value] : connection->get_request().get_headers()) {
            state->request.headers.emplace_back(AsciiLower(name), value);
        }
        boost::system::error_code ec;
        const asio::ip::tcp::endpoint remote = connection->get_raw_socket().remote_endpoint(ec);
        state->request.remote = ec ? std::string("unknown") : FormatRemote(remote);

        if (stopping_.load()) {
            connection->set_status(websocketpp::http::status_code::service_unavailable);
            return false;
        }
        const auto route = routes_.find(state->request.path);
        if (route == routes_.end()) {
            connection->set_status(websocketpp::http::status_code::not_found);
            return false;
        }
        if (connection->socket_slot && connection->socket_slot->overflow) {
            // On the spare descriptor: answered, but not kept (it must be free for the next /healthz).
            RefuseBusy(*connection, R"({"detail":"The server is out of file descriptors. Try again later."})");
            return false;
        }
        if (connections_->open.fetch_add(1) >= max_connections_) {
            connections_->open.fetch_sub(1);
            RefuseBusy(*connection, "{\"detail\":\"Too many connections: the server's limit (max_connections " +
                                        std::to_string(max_connections_) + ") is reached. Try again later.\"}");
            if (!connections_->full_logged.exchange(true)) {
                spdlog::warn("websocket server: {} connections open (max_connections); refusing handshakes with 503",
                             max_connections_);
            }
            return false;
        }
        // Released with the state: when the connection closes, or goes without opening.
        state->websocket_slot =
            std::shared_ptr<void>(nullptr, [connections = connections_, quiet_below = max_connections_ * 3 / 4](void*) {
                if (connections->open.fetch_sub(1) - 1 <= quiet_below) {
                    connections->full_logged.store(false);  // the next time the limit is reached is logged again
                }
            });
        int status = 500;
        try {
            status = route->second->Admit(state->request);
        } catch (const std::exception& e) {
            spdlog::error("websocket: Endpoint::Admit threw for {}: {}", Describe(*state), e.what());
        } catch (...) {
            spdlog::error("websocket: Endpoint::Admit threw for {}: unknown exception", Describe(*state));
        }
        if (status == 101) {
            state->endpoint = route->second;
            connection->syncline_state = std::move(state);
            if (connection->socket_slot) {
                tracker_->Promote(*connection->socket_slot);
            }
            return true;
        }
        if (status < 100 || status > 599) {
            status = 500;
        }
        connection->set_status(static_cast<websocketpp::http::status_code::value>(status));
        return false;
    }

    void OnOpen(const websocketpp::connection_hdl& hdl) {
        ConnectionPtr connection = ConnectionOf(hdl);
        if (!connection || !connection->syncline_state) {
            return;
        }
        ConnectionState& state = *connection->syncline_state;
        state.outbox = std::make_shared<ConnectionOutbox>(
            connection, QueueLimits{options_.write_high_water, options_.max_queue_bytes, options_.slow_reader_timeout});
        // Registered with or without a session, so that Stop() reaches every outbox it may have to mark closed.
        bool stopping = false;
        {
            std::lock_guard<std::mutex> lock(registry_mutex_);
            registry_.emplace(&state, connection->syncline_state);
            stopping = stopping_.load();
        }
        if (stopping) {
            // Stop() took its snapshot before this connection registered: close it here, without a session.
            state.outbox->Close(kGoingAway, kShutdownReason);
            return;
        }
        try {
            state.session = state.endpoint->Open(state.request, state.outbox);
            if (!state.session) {
                spdlog::error("websocket: Endpoint::Open returned no session for {}", Describe(state));
            }
        } catch (const std::exception& e) {
            spdlog::error("websocket: Endpoint::Open threw for {}: {}", Describe(state), e.what());
        } catch (...) {
            spdlog::error("websocket: Endpoint::Open threw for {}: unknown exception", Describe(state));
        }
        if (!state.session) {
            state.outbox->Close(kInternalError, "internal error");
            return;
        }
        open_count_.fetch_add(1);
        if (options_.ping_interval.count() > 0) {
            state.ping_sent = std::chrono::steady_clock::now();
            SchedulePing(connection, state, options_.ping_interval);
        }
    }

    void OnMessage(const websocketpp::connection_hdl& hdl, const MessagePtr& message) {
        ConnectionPtr connection = ConnectionOf(hdl);
        if (!connection || !connection->syncline_state || !connection->syncline_state->session) {
            return;
        }
        ConnectionState& state = *connection->syncline_state;
        const std::string& payload = message->get_payload();
        try {
            if (message->get_opcode() == websocketpp::frame::opcode::text) {
                state.session->OnText(payload);
            } else {
                state.session->OnBinary(payload);
            }
        } catch (const std::exception& e) {
            spdlog::error("websocket: session threw on a frame ({}): {}", Describe(state), e.what());
        } catch (...) {
            spdlog::error("websocket: session threw on a frame ({}): unknown exception", Describe(state));
        }
    }

    void OnClose(const websocketpp::connection_hdl& hdl) {
        ConnectionPtr connection = ConnectionOf(hdl);
        if (!connection || !connection->syncline_state) {
            return;
        }
        std::shared_ptr<ConnectionState> state = connection->syncline_state;
        if (state->ping_timer) {
            state->ping_timer->cancel();
            state->ping_timer.reset();
        }
        FinishConnection(*state);
        // Break the connection -> state link now rather than when the connection object goes.
        connection->syncline_state.reset();
    }

    // Calls OnClose once and forgets the session. On the strand, or from Stop() after the workers are joined.
    void FinishConnection(ConnectionState& state) {
        if (state.outbox) {
            state.outbox->MarkClosed();
        }
        if (state.session) {
            open_count_.fetch_sub(1);  // before OnClose: whoever sees the close also sees the count drop
            try {
                state.session->OnClose();
            } catch (const std::exception& e) {
                spdlog::error("websocket: Session::OnClose threw ({}): {}", Describe(state), e.what());
            } catch (...) {
                spdlog::error("websocket: Session::OnClose threw ({}): unknown exception", Describe(state));
            }
            state.session.reset();
        }
        bool now_empty = false;
        {
            std::lock_guard<std::mutex> lock(registry_mutex_);
            registry_.erase(&state);
            now_empty = registry_.empty();
        }
        if (now_empty) {
            registry_cv_.notify_all();
        }
    }

    // A client's ping: at most one pong is owed at a time, the latest ping's (ConnectionOutbox::QueuePong).
    void OnPing(const websocketpp::connection_hdl& hdl, std::string payload) {
        ConnectionPtr connection = ConnectionOf(hdl);
        if (connection && connection->syncline_state && connection->syncline_state->outbox) {
            connection->syncline_state->outbox->QueuePong(std::move(payload));
        }
    }

    void OnPong(const websocketpp::connection_hdl& hdl) {
        ConnectionPtr connection = ConnectionOf(hdl);
        if (connection && connection->syncline_state) {
            connection->syncline_state->awaiting_pong = false;
        }
    }

    // Pings: one timer per connection. A ping goes out every ping_interval while the previous one was answered; an
    // unanswered ping closes the connection once pong_timeout has passed since it was sent.
    void SchedulePing(const ConnectionPtr& connection, ConnectionState& state, std::chrono::milliseconds delay) {
        const long delay_ms = std::max<long>(1, static_cast<long>(delay.count()));
        state.ping_timer = connection->set_timer(delay_ms, [this, hdl = connection->get_handle()](const ErrorCode& ec) {
            if (!ec) {
                OnPingTimer(hdl);
            }
        });
    }

    void OnPingTimer(const websocketpp::connection_hdl& hdl) {
        ConnectionPtr connection = ConnectionOf(hdl);
        if (!connection || !connection->syncline_state || !connection->syncline_state->session) {
            return;
        }
        ConnectionState& state = *connection->syncline_state;
        const auto now = std::chrono::steady_clock::now();
        const bool pong_deadline = options_.pong_timeout.count() > 0;
        if (state.awaiting_pong && pong_deadline && now - state.ping_sent >= options_.pong_timeout) {
            spdlog::debug("websocket: no pong within {} ms, closing {}", options_.pong_timeout.count(),
                          Describe(state));
            state.outbox->Close(kGoingAway, kPongTimeoutReason);
            return;
        }
        if (!(state.awaiting_pong && pong_deadline) && now - state.ping_sent >= options_.ping_interval) {
            ErrorCode ec;
            connection->ping(std::string(), ec);
            if (ec) {
                return;  // the connection is closing
            }
            state.awaiting_pong = true;
            state.ping_sent = now;
        }
        auto next = state.ping_sent + options_.ping_interval;
        if (state.awaiting_pong && pong_deadline) {
            const auto deadline = state.ping_sent + options_.pong_timeout;
            next = next > now ? std::min(next, deadline) : deadline;
        }
        const auto delay = std::max(next - now, std::chrono::steady_clock::duration::zero());
        SchedulePing(connection, state, std::chrono::ceil<std::chrono::milliseconds>(delay));
    }

    const ServerOptions options_;
    std::unordered_map<std::string, std::shared_ptr<Endpoint>> routes_;

    // Declared before everything that owns Asio objects, so it is destroyed after them.
    asio::io_context io_;
    asio::executor_work_guard<asio::io_context::executor_type> work_guard_ = asio::make_work_guard(io_);
    WsServer server_;
    asio::io_context::strand accept_strand_{io_};
    asio::ip::tcp::acceptor acceptor_{io_};
    asio::steady_timer accept_retry_timer_{io_};
    bool accept_error_logged_ = false;  // accept_strand_ only
    bool lend_spare_ = false;           // accept_strand_ only: the next socket accepted took the spare descriptor
    std::uint64_t evictions_ = 0;       // accept_strand_ only
    asio::steady_timer handshake_timer_{io_};                     // EvictOverdueHandshakes; accept_strand_ only
    bool handshake_timer_armed_ = false;                          // likewise
    std::chrono::steady_clock::time_point handshake_timer_at_{};  // likewise
    const std::shared_ptr<SocketTracker> tracker_ =
        std::make_shared<SocketTracker>(options_.max_handshakes, options_.handshake_grace);
    // Websocket connections counted toward max_connections (shared with their slots, which may outlive this).
    struct ConnectionCount {
        std::atomic<std::size_t> open{0};
        std::atomic<bool> full_logged{false};
    };
    const std::shared_ptr<ConnectionCount> connections_ = std::make_shared<ConnectionCount>();
    const std::size_t max_connections_ =
        options_.max_connections != 0 ? options_.max_connections : DefaultMaxConnections();

    std::vector<std::thread> workers_;
    Phase phase_ = Phase::kIdle;  // guarded by stop_mutex_
    std::atomic<std::uint16_t> port_{0};
    std::atomic<bool> stopping_{false};

    std::mutex registry_mutex_;
    std::condition_variable registry_cv_;
    // Every opened connection until its close handler (or Stop) has finished it.
    std::unordered_map<const ConnectionState*, std::shared_ptr<ConnectionState>> registry_;
    std::atomic<std::size_t> open_count_{0};  // connections with a session

    std::mutex stop_mutex_;  // serializes Route/Start/Stop (Stop may come from Run's thread and another one)
    std::mutex run_mutex_;
    bool stop_requested_ = false;
    asio::io_context* run_io_ = nullptr;
};

WebSocketServer::WebSocketServer(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

WebSocketServer::~WebSocketServer() = default;

void WebSocketServer::Route(std::string path, std::shared_ptr<syncline::Endpoint> endpoint) {
    impl_->Route(std::move(path), std::move(endpoint));
}

void WebSocketServer::Start() {
    impl_->Start();
}

std::uint16_t WebSocketServer::port() const {
    return impl_->port();
}

void WebSocketServer::Stop() {
    impl_->Stop();
}

int WebSocketServer::Run() {
    return impl_->Run();
}

std::size_t WebSocketServer::connection_count() const {
    return impl_->connection_count();
}

}  // namespace syncline::transport
