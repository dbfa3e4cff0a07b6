#pragma once
/// \file
/// From a text frame to its reply (docs/protocol.md §1-§4, §10): the envelope's errors, permission (403) and action
/// lookup (405), then the action, inline or, when detached, on an executor. ConsumerEndpoint's sessions call it for
/// every frame.

#include <cstddef>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include <rapidjson/document.h>

#include <syncline/core/consumer/consumer.hpp>
#include <syncline/core/protocol/envelope.hpp>
#include <syncline/core/support/executor.hpp>

namespace syncline {

/// Both read the frame and write every reply in the consumer's envelope (GenericConsumer::envelope()), then check
/// permission (403) before the action lookup (405): a non-string action answers 405 once permission allows it.

/// Answers one text frame on a connection, synchronously: the reply frame to send, exactly one, except for a
/// streaming action, whose frames went to the connection's outbox (then ""). Detached actions run inline.
std::string HandleTextFrame(GenericConsumer& consumer, ConnectionContext& connection, std::string_view frame);

/// Answers one text frame on a connection through its outbox, bracketed by the connection's push gate. Envelope
/// errors, 403 and 405 are answered at once, as are ordinary actions; a detached action is posted to `executor` on
/// the connection's lane and answers when it finishes (a 500 frame if it throws; nothing if the connection closed
/// first; a detached writer holds the push gate until its reply). Its continuation steps (ActionResult::Continue)
/// are posted one by one, each once the socket has room (at most ActionRequest::kStreamQueueBytes queued), so a
/// stream waiting for a slow reader holds no thread. A detached action beyond the connection's
/// ConnectionLimits::max_pending_actions in progress on it (0: no limit) answers 429. With no executor, detached
/// actions run inline. Call it from the connection's serial thread of calls.
void ServeTextFrame(const std::shared_ptr<GenericConsumer>& consumer,
                    const std::shared_ptr<ConnectionContext>& connection, std::string_view frame, Executor* executor);

/// One connection's requests, answered one at a time and in order, with its writes off the network thread. A write
/// (an action that Writes() and is not detached: create, update, patch, delete, custom writers) is posted to the write
/// executor on the connection's lane; until its reply is queued the connection's next frames wait here (the transport
/// stops reading the socket meanwhile when it can: Outbox::PauseReading), and the write's thread then answers them in
/// order, running any further write itself, before the connection goes back to its network thread. So the writes of
/// many sockets wait for the database at once, where they share transactions (group commit), while the network
/// threads serve other sockets. Everything else is served as ServeTextFrame serves it. Frames beyond
/// ConnectionLimits::max_waiting_request_bytes waiting at once answer 429 (only a transport that cannot pause, such as
/// a multiplexed stream, gets there). With no write executor this is ServeTextFrame.
///
/// Threads: OnText on the connection's serial thread of calls (the session's OnText); the rest runs on the write
/// executor. A frame that waits when the socket closes is dropped unanswered; a write already running finishes.
class SerialRequests : public std::enable_shared_from_this<SerialRequests> {
public:
    SerialRequests(std::shared_ptr<GenericConsumer> consumer, std::shared_ptr<ConnectionContext> connection,
                   Executor* executor, Executor* write_executor, WriteBatcher* write_batcher = nullptr);
    SerialRequests(const SerialRequests&) = delete;
    SerialRequests& operator=(const SerialRequests&) = delete;

    /// Answers the frame now, hands it to the write executor, or queues it behind the write in progress.
    void OnText(std::string_view frame);

    /// Internal to the dispatcher: a write posted by OnText ended (its reply is queued). Answers the waiting frames in
    /// order on this thread, then gives the connection back to OnText.
    void Drain();
    /// Internal: marks the connection's requests as owned by a write about to be posted (from OnText's thread).
    void TakeForWrite();
    /// Internal: a write could not be posted (the executor shuts down): the connection's requests are OnText's again.
    void GiveBack();
    /// Internal to the dispatcher: a batched write ended (its reply is queued). The frames that waited behind it are
    /// answered on the write executor (not on the batcher's thread, which holds the database's writer); with none
    /// waiting, the connection goes back to OnText at once.
    void BatchedWriteEnded();
    Executor* write_executor() const { return write_executor_; }
    WriteBatcher* write_batcher() const { return write_batcher_; }

private:
    // With mutex_ held: the connection's requests are OnText's again. Returns whether its reading must resume.
    bool ReleaseLocked();

    std::shared_ptr<GenericConsumer> consumer_;
    std::shared_ptr<ConnectionContext> connection_;
    Executor* executor_;
    Executor* write_executor_;
    WriteBatcher* write_batcher_;
    mutable std::mutex mutex_;
    bool busy_ = false;                // guarded by mutex_: a write owns the connection's requests
    bool paused_ = false;              // guarded by mutex_: the socket's reading is paused for that write
    // Guarded by mutex_. A list, not a deque: an empty std::deque allocates over 500 bytes, and every socket has one of
    // these while frames rarely wait (benchmarks/README.md, memory per idle connection).
    std::list<std::string> waiting_;
    std::size_t waiting_bytes_ = 0;    // guarded by mutex_
};

}  // namespace syncline
