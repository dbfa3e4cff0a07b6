// The Outbox of one websocket connection: queueing from any thread, draining on the connection's strand, latest-wins
// replacement of pushes and the slow-reader rule (see connection_outbox.hpp).

#include "connection_outbox.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cassert>

namespace syncline::transport {
namespace {

bool IsSendableCloseCode(int code) {
    if (code < 1000 || code > 4999) {
        return false;
    }
    const auto value = static_cast<websocketpp::close::status::value>(code);
    return !websocketpp::close::status::invalid(value) && !websocketpp::close::status::reserved(value);
}

}  // namespace

void ConnectionOutbox::Send(std::string frame) {
    if (ValidUtf8(frame)) Enqueue(std::move(frame), nullptr, std::string());
}

void ConnectionOutbox::SendPush(std::string frame, const std::string& key) {
    if (ValidUtf8(frame)) Enqueue(std::move(frame), nullptr, key);
}

void ConnectionOutbox::SendSharedPush(std::shared_ptr<const SharedFrame> frame, const std::string& key) {
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
    Enqueue(std::string(), std::static_pointer_cast<MessageType>(prepared), key);
}

void ConnectionOutbox::Close(int code, std::string reason) {
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

std::size_t ConnectionOutbox::BufferedBytes() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return closed_ ? 0 : buffered_->load() + pending_bytes_;
}

bool ConnectionOutbox::PauseReading() {
    if (!strand_->running_in_this_thread()) return false;
    if (reading_paused_) return true;
    ConnectionPtr connection = connection_.lock();
    if (!connection || connection->get_state() != websocketpp::session::state::open) return false;
    connection->handle_pause_reading();
    reading_paused_ = true;
    paused_connection_ = std::move(connection);
    return true;
}

void ConnectionOutbox::ResumeReading() {
    asio::post(*strand_, [self = shared_from_this()] {
        if (!self->reading_paused_) return;
        self->reading_paused_ = false;
        ConnectionPtr connection = std::move(self->paused_connection_);
        // A closed connection reads nothing more; a closing one reads on, for the peer's close frame.
        if (!connection || connection->get_state() == websocketpp::session::state::closed) return;
        connection->handle_resume_reading();
    });
}

void ConnectionOutbox::HoldPushes() {
    std::lock_guard<std::mutex> lock(mutex_);
    ++holds_;
}

void ConnectionOutbox::ReleasePushes() {
    bool drain = false;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (holds_ > 0) --holds_;
        if (holds_ > 0 || first_held_ == pending_.end()) return;
        // The held pushes become ordinary waiting frames, waiting from now: a request that took long does not make
        // the socket count as behind.
        const auto now = std::chrono::steady_clock::now();
        for (auto it = first_held_; it != pending_.end(); ++it) {
            it->held = false;
            it->since = now;
        }
        first_held_ = pending_.end();
        drain = !closed_ && data_in_flight_ == 0;
    }
    if (drain) RequestDrain();
}

void ConnectionOutbox::QueuePong(std::string payload) {
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

void ConnectionOutbox::MarkClosed() {
    // Released after the lock: the connection's last handle may go with it, and its queued frames' deleters take
    // mutex_.
    ConnectionPtr paused = std::move(paused_connection_);
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    DropQueueLocked();
    close_.reset();
}

std::string ConnectionOutbox::FrameHeader(websocketpp::frame::opcode::value opcode, std::size_t size) {
    return websocketpp::frame::prepare_header(websocketpp::frame::basic_header(opcode, size, true, false),
                                              websocketpp::frame::extended_header(size));
}

MessagePtr ConnectionOutbox::PrepareMessage(websocketpp::frame::opcode::value opcode, std::string payload) {
    auto message = std::make_shared<MessageType>(nullptr, opcode, 0);
    message->set_header(FrameHeader(opcode, payload.size()));
    message->get_raw_payload() = std::move(payload);
    message->set_prepared(true);
    return message;
}

MessagePtr ConnectionOutbox::PrepareWrite(std::list<Pending>& frames) {
    if (frames.size() == 1) {
        Pending& only = frames.front();
        return only.shared ? std::move(only.shared)
                           : PrepareMessage(websocketpp::frame::opcode::text, std::move(only.frame));
    }
    // Several frames: their bytes, each frame's header and payload, in one message with no header of its own.
    // websocketpp writes a message as header then payload, so the peer reads the frames one after the other.
    std::size_t bytes = 0;
    for (const Pending& frame : frames) bytes += frame.size() + 14;  // 14: the longest header of an unmasked frame
    std::string raw;
    raw.reserve(bytes);
    for (Pending& frame : frames) {
        if (frame.shared) {
            raw += frame.shared->get_header();
            raw += frame.shared->get_payload();
        } else {
            raw += FrameHeader(websocketpp::frame::opcode::text, frame.frame.size());
            raw += frame.frame;
        }
    }
    auto message = std::make_shared<MessageType>(nullptr, websocketpp::frame::opcode::text, 0);
    message->get_raw_payload() = std::move(raw);
    message->set_prepared(true);
    return message;
}

bool ConnectionOutbox::ValidUtf8(const std::string& frame) {
    if (websocketpp::utf8_validator::validate(frame)) {
        return true;
    }
    WarnInvalidUtf8();
    return false;
}

void ConnectionOutbox::WarnInvalidUtf8() {
    bool first = false;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        first = !warned_invalid_utf8_;
        warned_invalid_utf8_ = true;
    }
    if (first) {
        spdlog::warn(
            "websocket: dropped an outgoing text frame that is not valid UTF-8 (logged once per "
            "connection)");
    }
}

void ConnectionOutbox::Enqueue(std::string text, MessagePtr shared, const std::string& key) {
    std::size_t slow_total = 0;
    bool drain = false;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (closing_ || closed_) {
            return;
        }
        const auto now = std::chrono::steady_clock::now();
        const bool push = !key.empty();
        const bool held = push && holds_ > 0;
        const std::size_t size = shared ? shared->get_payload().size() : text.size();
        // Behind: the newest waiting push of the row (never handed over) is replaced, and the newer one moves to the
        // back, so a reply queued after the older push still goes before it (the writer's reply before the push its
        // change causes). A held push is replaced by a newer one of its row whether or not the socket is behind.
        const bool behind = BehindLocked(now);
        if (push && (behind || held)) IndexLocked();
        auto waiting = push && (behind || held) ? by_key_.find(key) : by_key_.end();
        if (waiting != by_key_.end() && (behind || waiting->second->held)) {
            counters_->pushes_replaced.fetch_add(1, std::memory_order_relaxed);
            const auto it = waiting->second;
            if (it == first_held_) first_held_ = std::next(it);
            pending_bytes_ = pending_bytes_ - it->size() + size;
            it->frame = std::move(text);
            it->shared = std::move(shared);
            it->held = held;
            pending_.splice(pending_.end(), pending_, it);
            if (it->held && first_held_ == pending_.end()) first_held_ = it;
        } else {
            pending_bytes_ += size;
            // A held push joins the held tail; anything else goes before it (at the end when nothing is held). A
            // spare node of an earlier write is used when there is one: its key's buffer too.
            const auto position = held ? pending_.end() : first_held_;
            std::list<Pending>::iterator at;
            if (spare_.empty()) {
                at = pending_.emplace(position);
            } else {
                at = spare_.begin();
                pending_.splice(position, spare_, at);
            }
            at->frame = std::move(text);
            at->shared = std::move(shared);
            at->key.assign(key);
            at->since = now;
            at->held = held;
            if (at->held && first_held_ == pending_.end()) first_held_ = at;
            if (push && indexed_) by_key_[at->key] = at;
        }
        // Four times the limit at once: closed now, whatever the timeout (memory stays bounded).
        const std::size_t total = pending_bytes_ + buffered_->load();
        if (total > 4 * limits_.max_queue_bytes) {
            slow_total = total;
            CloseSlowReaderLocked();
        }
        // With a write in flight, its completion drains what waits (OnWritten); a drain is asked for only to start
        // the slow-reader clock when the queue has just gone over its limit.
        drain = closing_ || (data_in_flight_ == 0 && !held) || (total > limits_.max_queue_bytes && !over_since_);
    }
    if (slow_total != 0) {
        spdlog::warn("websocket: closing a slow reader with 1013 ({} bytes queued)", slow_total);
    }
    if (drain) RequestDrain();
}

void ConnectionOutbox::RequestDrain() {
    if (strand_->running_in_this_thread()) {
        Drain();
    } else {
        PostDrain();
    }
}

void ConnectionOutbox::PostDrain() {
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

void ConnectionOutbox::Drain() {
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
    MessagePtr data;  // this write's data frames: one message (see PrepareWrite)
    std::size_t data_frames = 0;
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
            const std::size_t size = pong_->size();
            pong = HandleLocked(PrepareMessage(websocketpp::frame::opcode::pong, std::move(*pong_)), size, true);
            pong_.reset();
            pong_in_flight_ = true;
        }
        // One write in flight: frames are handed over once websocketpp has written every data frame it was given,
        // then all that wait up to the held pushes, up to write_high_water bytes (at least one frame), or everything
        // before a close.
        const bool flush_all = close_.has_value();
        // Behind, a push with a newer waiting version of its row is not sent: the versions queued before the socket
        // fell behind would otherwise all go in this write, stale, costing the socket's write and the client's reads
        // what the newest version alone costs. Not when that newer version is held (this one goes before the reply).
        // One waiting frame has nothing newer: no clock read, no index.
        const bool behind =
            !flush_all && data_in_flight_ == 0 && pending_.size() > 1 && BehindLocked(std::chrono::steady_clock::now());
        if (behind) IndexLocked();
        std::list<Pending> frames;   // nodes moved out of pending_, kept as spares after the write is prepared
        std::list<Pending> dropped;  // older versions left out, kept as spares too
        std::size_t handed = 0;
        while (!pending_.empty() && (flush_all || (!pending_.front().held && data_in_flight_ == 0 &&
                                                   (handed == 0 || handed < limits_.write_high_water)))) {
            if (indexed_ && !pending_.front().key.empty()) {
                auto it = by_key_.find(pending_.front().key);
                if (it != by_key_.end() && it->second == pending_.begin()) {
                    by_key_.erase(it);
                } else if (behind && it != by_key_.end() && !it->second->held) {
                    counters_->pushes_replaced.fetch_add(1, std::memory_order_relaxed);
                    pending_bytes_ -= pending_.front().size();
                    dropped.splice(dropped.end(), pending_, pending_.begin());
                    continue;
                }
            }
            frames.splice(frames.end(), pending_, pending_.begin());
            pending_bytes_ -= frames.back().size();
            handed += frames.back().size();
        }
        if (pending_.empty()) {
            first_held_ = pending_.end();  // a close hands the held pushes over too
            UnindexLocked();
        }
        if (!frames.empty()) {
            data_frames = frames.size();
            data = HandleLocked(PrepareWrite(frames), handed, false);
            ++data_in_flight_;
            KeepSparesLocked(frames);
        }
        KeepSparesLocked(dropped);
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
    // Counted before they go: a peer that has read a frame finds it counted.
    if (data) {
        counters_->frames_out.fetch_add(data_frames, std::memory_order_relaxed);
        (void)connection->send(data);
    }
    if (close) {
        ErrorCode ec;  // invalid_state: already closing, nothing to do
        connection->close(static_cast<websocketpp::close::status::value>(close->first), close->second, ec);
    }
    if (arm_timer) {
        // Check again when the timeout has passed, even if nothing is sent or written meanwhile (a reader that
        // stopped reading produces no events). The timer runs on the connection's strand.
        std::weak_ptr<ConnectionOutbox> self = weak_from_this();
        connection->set_timer(static_cast<long>(limits_.slow_reader_timeout.count()) + 1, [self](const ErrorCode& ec) {
            if (auto outbox = self.lock(); outbox && !ec) {
                outbox->Drain();
            }
        });
    }
    draining_ = false;
}

std::size_t ConnectionOutbox::CheckSlowReaderLocked(bool& arm_timer) {
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

void ConnectionOutbox::KeepSparesLocked(std::list<Pending>& written) {
    while (!written.empty() && spare_.size() < kSpareNodes) {
        Pending& node = written.front();
        std::string().swap(node.frame);  // a reply's bytes are not kept
        node.shared.reset();
        if (node.key.capacity() > kSpareKeyCapacity) std::string().swap(node.key);
        spare_.splice(spare_.end(), written, written.begin());
    }
}

bool ConnectionOutbox::BehindLocked(std::chrono::steady_clock::time_point now) const {
    return !pending_.empty() && now - pending_.front().since >= limits_.coalesce_after;
}

void ConnectionOutbox::IndexLocked() {
    if (indexed_) return;
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
        if (!it->key.empty()) by_key_[it->key] = it;
    }
    indexed_ = true;
}

void ConnectionOutbox::UnindexLocked() {
    if (!indexed_) return;
    // Its buckets go too: a socket that was behind with many rows waiting would otherwise clear them on every drain.
    decltype(by_key_)().swap(by_key_);
    indexed_ = false;
}

void ConnectionOutbox::CloseSlowReaderLocked() {
    counters_->slow_reader_closes.fetch_add(1, std::memory_order_relaxed);
    DropQueueLocked();
    closing_ = true;
    close_.emplace(kTryAgainLater, "slow reader: outgoing queue over its limit");
}

void ConnectionOutbox::DropQueueLocked() {
    pending_.clear();
    spare_.clear();
    first_held_ = pending_.end();
    UnindexLocked();
    pending_bytes_ = 0;
    pong_.reset();
}

MessagePtr ConnectionOutbox::HandleLocked(MessagePtr message, std::size_t size, bool is_pong) {
    buffered_->fetch_add(size);
    std::weak_ptr<ConnectionOutbox> self = weak_from_this();
    MessageType* raw = message.get();
    return MessagePtr(raw,
                      [message = std::move(message), buffered = buffered_, size, self, is_pong](MessageType*) mutable {
                          buffered->fetch_sub(size);
                          message.reset();
                          if (auto outbox = self.lock()) {
                              outbox->OnWritten(is_pong);
                          }
                      });
}

void ConnectionOutbox::OnWritten(bool is_pong) {
    bool waiting = false;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (is_pong) {
            pong_in_flight_ = false;
        } else if (data_in_flight_ > 0) {
            --data_in_flight_;
        }
        // Waiting frames go once the last data frame handed over is written; an owed pong as soon as the one before
        // it is.
        waiting = !closed_ && ((!pending_.empty() && !pending_.front().held && data_in_flight_ == 0) ||
                               (is_pong && pong_.has_value()));
    }
    if (waiting) {
        PostDrain();
    }
}

}  // namespace syncline::transport
