#pragma once
/// \file
/// The seam between the transport (websocket server) and protocol logic (consumers): a route is bound to an
/// Endpoint, which admits handshakes and opens one Session per connection; a Session answers through its Outbox.
/// Nothing here names websocketpp or Asio, so consumers are testable with a fake Outbox.

#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace syncline {

/// What the server knows of a websocket handshake.
struct HandshakeRequest {
    std::string path;   ///< The request path without the query string, e.g. "/ws/posts/".
    std::string query;  ///< The raw query string without '?', e.g. "token=abc&x=1".
    std::vector<std::pair<std::string, std::string>> headers;  ///< Header names lower-cased, values as sent.
    std::string remote;  ///< Peer address, "ip:port".

    /// The first header with this (case-insensitive) name, or nullopt.
    std::optional<std::string> Header(std::string_view name) const;
    /// A query parameter, percent-decoded ('+' as space), or nullopt.
    std::optional<std::string> QueryParam(std::string_view name) const;
    /// A cookie from the Cookie header, or nullopt.
    std::optional<std::string> Cookie(std::string_view name) const;
};

/// A push frame that goes unchanged to many connections: built once, then prepared once by the transport (validated
/// and framed) and shared by every connection it is sent to. Immutable, apart from the transport's cache, which is
/// filled once under a once_flag; safe to share between threads.
class SharedFrame {
public:
    explicit SharedFrame(std::string text) : text_(std::move(text)) {}
    SharedFrame(const SharedFrame&) = delete;
    SharedFrame& operator=(const SharedFrame&) = delete;
    const std::string& text() const { return text_; }
    /// The transport's prepared form of the text: `make(text)` runs once, on the first call from any thread; every
    /// call returns its result (which may be null, e.g. for text the transport refuses).
    template <class Make>
    const std::shared_ptr<void>& Prepared(Make&& make) const {
        std::call_once(prepared_once_, [&] { prepared_ = make(text_); });
        return prepared_;
    }

private:
    std::string text_;
    mutable std::once_flag prepared_once_;
    mutable std::shared_ptr<void> prepared_;
};

/// The server side of one connection, as a session sees it. Thread-safe: Send and Close may be called from any
/// thread; frames go out in the order of the calls. Calls after the connection closed are ignored.
class Outbox {
public:
    virtual ~Outbox() = default;
    /// Queues one text frame.
    virtual void Send(std::string frame) = 0;
    /// Queues a push frame that may be coalesced: while the connection cannot keep up, a queued push with the same
    /// `key` is replaced by this newer one (the latest state wins). Replies go through Send and are never replaced.
    /// The default sends it like any frame.
    virtual void SendPush(std::string frame, const std::string& key) {
        (void)key;
        Send(std::move(frame));
    }
    /// SendPush of a frame shared with other connections (the observer's fan-out): the transport prepares it once for
    /// all of them. The default sends a copy of its text.
    virtual void SendSharedPush(std::shared_ptr<const SharedFrame> frame, const std::string& key) {
        SendPush(frame->text(), key);
    }
    /// Closes the websocket with this close code and reason (after the frames already queued).
    virtual void Close(int code, std::string reason) = 0;
    /// Bytes queued for this connection and not yet written to the socket.
    virtual std::size_t BufferedBytes() const = 0;
    /// Asks the transport to read nothing more from the socket after the bytes it already holds (frames in those are
    /// still delivered) until ResumeReading: the flow control of a connection whose requests wait behind a write. Called
    /// from the session's OnText only. Returns whether reading is paused; the default cannot pause (false), e.g. a
    /// multiplexed stream, whose socket carries other streams.
    virtual bool PauseReading() { return false; }
    /// Reading goes on after a PauseReading that returned true (any thread; a no-op when not paused).
    virtual void ResumeReading() {}
    /// Holds pushes back while the connection answers a request, so its reply is queued before the pushes its own
    /// change causes (PROTOCOL.md section 6). Holds nest as a count (any thread; a request may end on another thread
    /// than the one it began on). While held, pushes wait behind every frame sent with Send, a waiting push is replaced
    /// by a newer one with the same key, and the last ReleasePushes lets them go, in order. The transport keeps them in
    /// its one queue per connection, where the latest state wins once the socket is behind. The default holds nothing:
    /// an outbox that sends at once and never reorders (a test's, or one that discards).
    virtual void HoldPushes() {}
    /// Ends one HoldPushes (any thread).
    virtual void ReleasePushes() {}
};

/// Per-connection protocol logic. The transport calls a session's methods one at a time (never concurrently), in
/// the order the frames arrived, and calls OnClose exactly once, last. Methods must not throw.
class Session {
public:
    virtual ~Session() = default;
    virtual void OnText(std::string_view frame) = 0;
    virtual void OnBinary(std::string_view frame) = 0;
    virtual void OnClose() = 0;
};

/// The handler bound to a route. Called from any worker thread: implementations must be thread-safe.
class Endpoint {
public:
    virtual ~Endpoint() = default;
    /// The HTTP status for this handshake: 101 accepts; anything else (e.g. 403) refuses it with that status.
    virtual int Admit(const HandshakeRequest& request) {
        (void)request;
        return 101;
    }
    /// Opens the session of an accepted connection.
    virtual std::unique_ptr<Session> Open(const HandshakeRequest& request, std::shared_ptr<Outbox> outbox) = 0;
};

}  // namespace syncline
