#pragma once
/// \file
/// A connection as consumers see it: who it is (User), what it may send and hold (ConnectionLimits), and its state
/// across requests (ConnectionContext: the outbox and its held pushes, streamed lists and detached actions in flight).

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <syncline/core/protocol/json_input.hpp>
#include <syncline/core/protocol/session.hpp>

namespace syncline {

/// The user a connection was authenticated as (anonymous unless an authenticator said otherwise).
struct User {
    bool authenticated = false;
    std::string id;
    std::string name;
    std::vector<std::string> groups;
    /// What the authenticator knew beyond these, as JSON text: a JWT's whole payload; empty otherwise.
    std::string claims;
};

/// What one connection may send or hold (docs/protocol.md §1, "Limits"). A request over a limit is answered with an
/// error and the socket stays open. On a multiplexed socket each stream is a connection of its own.
struct ConnectionLimits {
    /// Objects and arrays nested deeper than this in a frame: 400 `Malformed message: nesting too deep`.
    std::size_t max_json_depth = kDefaultMaxJsonDepth;
    /// A request_id whose JSON text is longer than this: 400, the request is not run.
    std::size_t max_request_id_bytes = 256;
    /// Subscriptions (instance, group and list, counted one per row, group or list) held at once: a subscribe
    /// beyond it answers 429 and subscribes nothing.
    std::size_t max_subscriptions = 1000;
    /// Values in one `__in` filter list (of `list`, streamed lists and `subscribe_list`): beyond it, 400.
    std::size_t max_filter_values = 1000;
    /// Filter values held by all of the connection's list subscriptions together (an `__in` list counts its values,
    /// any other condition one), which bounds their memory and the observer's work per write: a `subscribe_list`
    /// beyond it answers 429 and subscribes nothing.
    std::size_t max_list_filter_values = 10000;
    /// Detached actions (streamed lists, custom detached actions) queued, running or waiting for room at once: one
    /// more answers 429 naming the limit. 0: no limit.
    std::size_t max_pending_actions = 16;
    /// Bytes of the frames that may wait behind a write running off the network thread (SerialRequests). A plain
    /// socket is not read while it writes, so only what was already read waits; a multiplexed stream's frames keep
    /// coming, and one beyond this answers 429 naming the limit (the first waiting frame is always taken).
    std::size_t max_waiting_request_bytes = 1024 * 1024;
};

/// Per-connection state: the handshake, the user and the outbox. Owned (shared) by the connection's
/// session; the session's calls are serial. Send and Push are callable from any thread.
class ConnectionContext : public std::enable_shared_from_this<ConnectionContext> {
public:
    ConnectionContext(HandshakeRequest request, std::shared_ptr<Outbox> outbox, User user = {},
                      ConnectionLimits limits = {});
    /// The handshake. A ConsumerEndpoint's sessions keep every header but those of the websocket handshake itself
    /// (Connection, Upgrade, Sec-WebSocket-Key, -Version and -Extensions).
    const HandshakeRequest& request() const { return request_; }
    const ConnectionLimits& limits() const { return limits_; }
    const User& user() const { return user_; }
    void set_user(User user) { user_ = std::move(user); }
    /// Queues a frame (a reply) on this connection.
    void Send(std::string frame) const { outbox_->Send(std::move(frame)); }
    Outbox& outbox() const { return *outbox_; }
    /// A process-unique id of this connection.
    std::uint64_t id() const { return id_; }

    /// Queues a push (any thread). While the connection is answering a request, pushes wait until its reply has been
    /// queued, so a writer's own reply always comes before the pushes its change causes; a held push with the same
    /// key is replaced by the newer one (Outbox::HoldPushes: the outbox's own queue holds them).
    void Push(std::string frame, const std::string& key);
    /// Push of a frame shared with other connections (see SharedFrame); same ordering and replacement rules.
    void Push(std::shared_ptr<const SharedFrame> frame, const std::string& key);
    /// The session brackets each request with these (any thread): Outbox::HoldPushes and ReleasePushes. They nest as a
    /// count, so a detached action that writes holds pushes from its frame until its reply while the socket's next
    /// requests come and go. The last EndRequest lets the pushes held meanwhile go, in order.
    void BeginRequest() { outbox_->HoldPushes(); }
    void EndRequest() { outbox_->ReleasePushes(); }

    /// Marks the connection closed (the session does this first in OnClose; any thread): detached actions see
    /// ActionRequest::cancelled(), streams stop, and waiters in WaitStreamCancelled wake.
    void MarkClosed();
    /// Whether MarkClosed was called (any thread).
    bool closed() const;
    /// The stream generation: CancelStreams moves it on. A stream remembers it when its request arrives.
    std::uint64_t stream_epoch() const;
    /// Queues one frame of a stream started at `epoch`, unless the connection closed or CancelStreams was called since
    /// (any thread). Returns whether the frame was queued.
    bool SendStreamed(std::string frame, std::uint64_t epoch);
    /// Cancels every stream running now (list_cancel; any thread). When it returns no frame of those streams is
    /// queued any more: a SendStreamed in progress has finished and later ones refuse.
    void CancelStreams();
    /// Waits up to `timeout` for the connection to close or the streams of `epoch` to be cancelled; returns true if
    /// either happened (any thread; a streaming handler that loops waits here while the socket's outgoing queue is
    /// full).
    bool WaitStreamCancelled(std::uint64_t epoch, std::chrono::milliseconds timeout);

    /// Counts the connection's detached actions from their frame to their end (queued, running, or a stream waiting
    /// for room). Takes one more unless `limit` are in progress (0: no limit); returns whether it did (any thread).
    bool TryBeginDetached(std::size_t limit);
    /// One detached action ended (any thread).
    void EndDetached();
    /// Detached actions in progress now (any thread).
    std::size_t detached() const { return detached_.load(); }

private:
    HandshakeRequest request_;
    std::shared_ptr<Outbox> outbox_;
    User user_;
    ConnectionLimits limits_;
    std::uint64_t id_;
    mutable std::mutex stream_mutex_;
    std::condition_variable stream_changed_;
    bool closed_ = false;             // guarded by stream_mutex_
    // Written under stream_mutex_ (CancelStreams), read without it by stream_epoch(): every request takes it, and a
    // push's permission check is a request, once per subscriber.
    std::atomic<std::uint64_t> stream_epoch_{0};
    int streams_sending_ = 0;         // guarded by stream_mutex_: SendStreamed calls between check and send
    std::atomic<std::size_t> detached_{0};
};

}  // namespace syncline
