#pragma once
// Private to transport: the Outbox of one websocket connection, its one write path (threads, order, slow readers:
// see the class comment).

#include "wspp_types.hpp"

#include <syncline/core/protocol/session.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

namespace syncline::transport {

// How a connection's outgoing queue behaves (from WebSocketOptions).
struct QueueLimits {
    std::size_t write_high_water = 256 * 1024;
    std::size_t max_queue_bytes = 4 * 1024 * 1024;
    std::chrono::milliseconds slow_reader_timeout{10000};
    std::chrono::milliseconds coalesce_after{20};
};

// What every connection's outbox adds to, for metrics (shared by the server's outboxes; relaxed atomics).
struct OutboxCounters {
    std::atomic<std::uint64_t> frames_out{0};          // data frames handed to websocketpp (not pings or pongs)
    std::atomic<std::uint64_t> pushes_replaced{0};     // waiting pushes a newer one of the same row replaced (Enqueue)
                                                       // or left out of a write (Drain)
    std::atomic<std::uint64_t> slow_reader_closes{0};  // connections closed with 1013
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
// Order: frames go out in the order of the calls that queued them (replies, pushes and the close frame alike), with
// one exception: while a request holds pushes (HoldPushes, the session's bracket around each request), pushes wait in
// a held tail of the queue, and the replies queued meanwhile go before them; so a writer's reply comes before the
// pushes its own change causes. A pong may go ahead of queued data frames (RFC 6455 lets control frames interleave
// with messages).
//
// One write in flight (Boost.Beast's shape): Drain hands frames to websocketpp only once it has written every data
// frame handed to it before, and then everything waiting, up to write_high_water bytes (at least one frame), as one
// message (PrepareWrite), so one write and one sendmsg. What waits meanwhile stays in pending_, the one place where
// the latest state wins. While the oldest waiting frame has waited less than coalesce_after, every push is queued: a
// socket that keeps up gets every version, several per write when they come fast. Once it has waited longer, the
// socket is behind (its peer reads slowly, or the network threads are saturated), and a push replaces the newest
// waiting push with the same key, which moves to the back of the queue, so a reply queued after the older push still
// goes first; and the next write leaves out each waiting push whose row has a newer waiting version, so the versions
// queued before the socket fell behind do not go stale in it. Replies are never replaced. So what a subscriber
// receives is at most about coalesce_after plus one write old, instead of growing with the backlog. When the last frame
// of a write is written, a drain is posted if frames wait.
//
// Slow readers: a reader whose queue (websocketpp's and ours) stays over max_queue_bytes for slow_reader_timeout, or
// exceeds four times that at once, is closed with 1013. Pongs count toward the same bytes; at most one pong is
// outstanding (the latest ping's: RFC 6455 allows answering only the most recent one), and a pong that cannot be
// handed over for slow_reader_timeout (the peer sends pings and reads nothing) closes the socket with 1013 too. So
// memory per connection is bounded whatever the client does.
class ConnectionOutbox final : public Outbox, public std::enable_shared_from_this<ConnectionOutbox> {
public:
    /// On the connection's strand (the open handler).
    ConnectionOutbox(const ConnectionPtr& connection, QueueLimits limits, std::shared_ptr<OutboxCounters> counters)
        : connection_(connection), strand_(connection->get_strand()), limits_(limits), counters_(std::move(counters)) {}

    void Send(std::string frame) override;
    void SendPush(std::string frame, const std::string& key) override;

    // The fan-out path: the frame is validated and framed once, by whichever connection sends it first, and every
    // connection queues the same websocketpp message (a server frame is unmasked, so its bytes are the same for all).
    void SendSharedPush(std::shared_ptr<const SharedFrame> frame, const std::string& key) override;

    // After the frames already queued: Drain hands everything waiting to websocketpp, then the close frame. Only the
    // slow-reader close drops the queue.
    void Close(int code, std::string reason) override;

    // Payload bytes of the frames queued (pongs included) that are not yet written to the socket. Not websocketpp's
    // get_buffered_amount(): that one is read without its lock and forgets a frame as soon as the write starts rather
    // than when it completes.
    std::size_t BufferedBytes() const override;

    // On the strand, inside websocketpp's read handler (a session answering a frame): websocketpp delivers the frames
    // in the bytes it holds and reads no more until ResumeReading. Its own pause_reading() only posts the flag, so
    // the next read would already be in flight, and a resume before it completes would start a second one; setting
    // the flag here, in the handler, leaves no read in flight once the handler returns.
    bool PauseReading() override;
    // Any thread: posts the resume to the strand (a no-op unless paused, so pauses and resumes may cross).
    void ResumeReading() override;

    // Any thread; they nest as a count. While held, a push joins the held tail of pending_ (a held push of its key
    // is replaced whether or not the socket is behind), Send puts a reply before that tail, and Drain stops at it. The
    // last ReleasePushes makes the tail ordinary frames, waiting since then.
    void HoldPushes() override;
    void ReleasePushes() override;
    // On the strand: reading is paused (a write of this socket is in the write pool).
    bool reading_paused() const { return reading_paused_; }

    /// On the strand (the ping handler): owes a pong with this payload. Replaces a pong still waiting.
    void QueuePong(std::string payload);

    /// Makes every later call a no-op and drops what waits. Called on the strand when the connection closed, or by
    /// Stop() after the workers are joined.
    void MarkClosed();

private:
    // A frame waiting for Drain: a frame of its own, or a prepared message shared with other connections.
    struct Pending {
        std::string frame;
        MessagePtr shared;
        std::string key;  // empty for replies
        std::chrono::steady_clock::time_point since{};  // queued (set by Enqueue), or released from a hold
        bool held = false;  // a push queued while a request held pushes (in the held tail of pending_)
        std::size_t size() const { return shared ? shared->get_payload().size() : frame.size(); }
    };

    // A frame framed for sending: unmasked and uncompressed, so it is "prepared" (header built here, payload moved in;
    // websocketpp would copy it once more) and may go to any number of connections.
    static MessagePtr PrepareMessage(websocketpp::frame::opcode::value opcode, std::string payload);
    // The header of an unmasked, final, uncompressed frame of `size` payload bytes.
    static std::string FrameHeader(websocketpp::frame::opcode::value opcode, std::size_t size);
    // One write's frames as one prepared message: the frame itself when it is alone, else a message without a header
    // of its own whose payload is every frame's header and payload in order. websocketpp would start writing the
    // first of several messages at once (its send dispatches the write on our strand) and the rest in a second write;
    // one message makes one write, one sendmsg, whatever the number of frames.
    static MessagePtr PrepareWrite(std::list<Pending>& frames);
    bool ValidUtf8(const std::string& frame);
    void WarnInvalidUtf8();

    // Any thread. The latest-wins replacement lives here and in Drain, and only there: while the socket is behind
    // (the oldest waiting frame has waited coalesce_after), or while pushes are held and the waiting push is a held
    // one, a push replaces the newest waiting push with the same key and moves to the back. A reply queued while pushes
    // are held goes before the held ones. Asks for a drain only when no write is in flight and the frame is not held
    // (or to start the slow-reader clock): a write's completion drains what waits.
    void Enqueue(std::string text, MessagePtr shared, const std::string& key);

    // With mutex_ held: keeps up to kSpareNodes of a prepared write's nodes (emptied, their key's buffer kept) for the
    // next frames. A node allocated by the thread that queues a push and freed by the network thread that writes it
    // costs a malloc and a free across threads for each push, and its key another pair.
    void KeepSparesLocked(std::list<Pending>& written);
    static constexpr std::size_t kSpareNodes = 8;
    static constexpr std::size_t kSpareKeyCapacity = 64;

    // Runs Drain now when on the strand (a session answering a frame), else posts it.
    void RequestDrain();

    // Any thread: one posted drain at a time.
    void PostDrain();

    // On the strand: the one place that calls into the websocketpp connection for this outbox. Hands the owed pong,
    // and the waiting frames when no data frame is in flight (up to write_high_water bytes; all of them when closing),
    // to websocketpp, then the close frame once nothing waits before it. Behind, it leaves out (counted as replaced)
    // each push whose key has a newer waiting push that is not held.
    void Drain();

    // With mutex_ held, not closing. Returns the queued bytes when it closes the reader (for the log line, written
    // outside the lock), else 0; sets arm_timer when the reader just went over a limit.
    std::size_t CheckSlowReaderLocked(bool& arm_timer);

    // With mutex_ held: whether the socket is behind, its oldest waiting frame having waited coalesce_after by `now`.
    bool BehindLocked(std::chrono::steady_clock::time_point now) const;
    // With mutex_ held: builds by_key_ from pending_ unless it is built.
    void IndexLocked();
    // With mutex_ held: drops by_key_ (the queue is empty).
    void UnindexLocked();

    // With mutex_ held: drops what waits and asks Drain for the 1013 close.
    void CloseSlowReaderLocked();
    void DropQueueLocked();

    // With mutex_ held: the handle websocketpp queues for `message`. It counts `size` (the payload bytes of its frames)
    // in buffered_ until websocketpp drops it, which it does once the message is written to the socket (or dropped
    // with the connection), and keeps the (possibly shared) message alive meanwhile; then it asks for a drain if
    // frames wait. (It only posts: websocketpp may drop it while holding its own write lock.)
    MessagePtr HandleLocked(MessagePtr message, std::size_t size, bool is_pong);

    // Any thread (usually the strand): a frame handed to websocketpp is written, or dropped.
    void OnWritten(bool is_pong);

    const std::weak_ptr<WsConnection> connection_;
    const std::shared_ptr<asio::io_context::strand> strand_;  // outlives the connection; its io_context outlives us
    const QueueLimits limits_;
    const std::shared_ptr<OutboxCounters> counters_;  // never null
    bool reading_paused_ = false;  // on the strand only
    // On the strand only: the connection while its reading is paused. websocketpp's connection lives as long as a
    // handler of its holds it, and one that reads nothing and has no timer has none: it would be destroyed under
    // the write that paused it.
    ConnectionPtr paused_connection_;

    mutable std::mutex mutex_;
    bool closing_ = false;  // guarded by mutex_: Close was called (or the slow-reader rule): new frames are dropped
    bool closed_ = false;   // guarded by mutex_: MarkClosed: everything is a no-op
    bool warned_invalid_utf8_ = false;                  // guarded by mutex_
    std::optional<std::pair<int, std::string>> close_;  // guarded by mutex_: the close Drain sends after pending_
    std::list<Pending> pending_;                        // guarded by mutex_
    std::list<Pending> spare_;                          // guarded by mutex_: emptied nodes (KeepSparesLocked)
    // Guarded by mutex_: the first held push in pending_ (every one after it is held too), or pending_.end().
    std::list<Pending>::iterator first_held_ = pending_.end();
    int holds_ = 0;  // guarded by mutex_: HoldPushes not yet matched by ReleasePushes
    // Guarded by mutex_: the newest waiting push of each key (the one a newer push replaces). Built only when a push
    // first needs it (the socket is behind, or pushes are held: IndexLocked) and kept until the queue is empty again,
    // so a socket that keeps up never pays for it.
    std::unordered_map<std::string, std::list<Pending>::iterator> by_key_;
    bool indexed_ = false;             // guarded by mutex_: by_key_ covers every waiting push
    std::size_t pending_bytes_ = 0;    // guarded by mutex_: pending_ and pong_
    std::optional<std::string> pong_;  // guarded by mutex_: owed, not yet handed to websocketpp
    bool pong_in_flight_ = false;      // guarded by mutex_: a pong websocketpp has not written yet
    std::size_t data_in_flight_ = 0;   // guarded by mutex_: data frames handed to websocketpp and not yet written
    std::optional<std::chrono::steady_clock::time_point> over_since_;          // guarded by mutex_
    std::optional<std::chrono::steady_clock::time_point> pong_waiting_since_;  // guarded by mutex_
    // Bytes handed to websocketpp and not yet written; shared with the handles, which may outlive the outbox.
    std::shared_ptr<std::atomic<std::size_t>> buffered_ = std::make_shared<std::atomic<std::size_t>>(0);
    std::atomic<bool> drain_posted_{false};  // a drain is posted and has not started yet
    bool draining_ = false;                  // strand only
};

}  // namespace syncline::transport
