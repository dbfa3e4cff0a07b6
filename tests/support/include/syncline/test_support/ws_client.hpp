#pragma once
/// \file
/// A blocking-style websocket client for tests, on websocketpp's client (names no websocketpp type).
///
/// All WsClient objects alive at the same time share one background I/O thread; it starts with the first client and
/// stops when the last one is destroyed. Received frames are queued per client until the test takes them, so a test
/// reads them in order with a deadline and never sleeps.
///
/// Thread safety: one WsClient may be used from one test thread at a time (methods are not meant to be called
/// concurrently on the same object); different clients may be used from different threads.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace syncline::test_support {

/// How long the waiting calls wait unless told otherwise.
inline constexpr std::chrono::milliseconds kDefaultTimeout{5000};

/// Extra handshake headers, as (name, value) pairs.
using Headers = std::vector<std::pair<std::string, std::string>>;

/// Knobs of one client.
struct WsClientOptions {
    /// How long Connect waits for the handshake.
    std::chrono::milliseconds connect_timeout = kDefaultTimeout;
    /// Answer the server's pings (false simulates a peer that never answers).
    bool auto_pong = true;
    /// Largest message accepted from the server.
    std::size_t max_message_bytes = std::size_t{64} << 20;
};

class WsClient;

/// The outcome of WsClient::Connect.
struct ConnectResult {
    /// The connected client; null on failure.
    std::unique_ptr<WsClient> client;
    /// 101 on success; the server's HTTP status when it refused the handshake (e.g. 404, 403); 0 when no HTTP answer
    /// came (connection refused, timeout).
    int http_status = 0;
    /// Empty on success, a human-readable reason otherwise.
    std::string error;

    explicit operator bool() const { return client != nullptr; }
    WsClient* operator->() const { return client.get(); }
    WsClient& operator*() const { return *client; }
};

/// One websocket connection to a server, driven synchronously from a test.
class WsClient {
public:
    /// Opens ws://host:port/path (path may carry a query string) and waits for the handshake to finish.
    /// Never throws on network errors: they come back in ConnectResult.
    static ConnectResult Connect(const std::string& host, std::uint16_t port, const std::string& path,
                                 const Headers& headers = {}, WsClientOptions options = {});

    /// Closes with 1000 if still open and waits (up to 2 s) for the closing handshake.
    ~WsClient();

    WsClient(const WsClient&) = delete;
    WsClient& operator=(const WsClient&) = delete;

    /// Queues a text frame (must be valid UTF-8) on the io thread; frames go out in the order of the calls. Returns
    /// false if the connection is not open.
    bool SendText(std::string_view text);
    /// Queues a binary frame. Returns false if the connection is not open.
    bool SendBinary(std::string_view data);

    /// The next received text frame, waiting up to `timeout`; nullopt on timeout, or at once if the connection is
    /// closed and no frame is left.
    std::optional<std::string> Receive(std::chrono::milliseconds timeout = kDefaultTimeout);
    /// The next received binary frame, as Receive.
    std::optional<std::string> ReceiveBinary(std::chrono::milliseconds timeout = kDefaultTimeout);
    /// SendText then Receive: the next text frame after sending (which is the reply only if nothing else is queued).
    std::optional<std::string> Request(std::string_view text, std::chrono::milliseconds timeout = kDefaultTimeout);
    /// Number of received text frames not taken by Receive yet.
    std::size_t PendingText() const;

    /// Starts the closing handshake with this code and reason. No-op if not open.
    void Close(int code = 1000, std::string reason = {});
    /// Waits until the connection is closed; returns the close code the server sent (1006 if the TCP connection
    /// ended without a close frame), or nullopt if still open after `timeout`.
    std::optional<int> WaitClosed(std::chrono::milliseconds timeout = kDefaultTimeout);
    /// True until the connection is closed.
    bool is_open() const;
    /// The close code the server sent, once closed.
    std::optional<int> close_code() const;
    /// The close reason the server sent (empty until closed).
    std::string close_reason() const;

    /// Number of pings received from the server.
    std::size_t pings_received() const;
    /// Waits until at least `count` pings arrived. Returns false on timeout or if the connection closed first.
    bool WaitPings(std::size_t count, std::chrono::milliseconds timeout = kDefaultTimeout);

private:
    struct State;
    class Io;
    WsClient(std::shared_ptr<Io> io, std::shared_ptr<State> state);
    bool Send(std::string_view payload, bool binary);

    std::shared_ptr<Io> io_;
    std::shared_ptr<State> state_;
};

/// A plain blocking TCP connection (POSIX sockets), for raw HTTP and hand-written websocket bytes in tests.
class TcpConnection {
public:
    /// Connects to host:port; nullopt (with `error` filled if given) on failure.
    static std::optional<TcpConnection> Connect(const std::string& host, std::uint16_t port,
                                                std::string* error = nullptr);
    TcpConnection(TcpConnection&& other) noexcept;
    TcpConnection& operator=(TcpConnection&& other) noexcept;
    TcpConnection(const TcpConnection&) = delete;
    TcpConnection& operator=(const TcpConnection&) = delete;
    ~TcpConnection();

    /// Writes all of `data`. Returns false on error.
    bool SendAll(std::string_view data);
    /// Reads until `delimiter` has been received; returns everything read up to and including it (bytes after it
    /// stay buffered for the next read). nullopt on timeout, EOF or error.
    std::optional<std::string> ReadUntil(std::string_view delimiter,
                                         std::chrono::milliseconds timeout = kDefaultTimeout);
    /// Reads exactly `count` bytes; nullopt on timeout, EOF or error.
    std::optional<std::string> ReadExactly(std::size_t count, std::chrono::milliseconds timeout = kDefaultTimeout);
    /// Reads until the peer closes; returns what was read (including anything buffered), or nullopt on timeout.
    std::optional<std::string> ReadToEof(std::chrono::milliseconds timeout = kDefaultTimeout);
    /// Calls `handler` each time a read has waited `every` without receiving anything (from the reading thread, during
    /// the read), e.g. to nudge the peer. An empty handler turns it off.
    void SetIdleHandler(std::chrono::milliseconds every, std::function<void()> handler);
    /// Caps the kernel receive buffer (SO_RCVBUF), e.g. so that a peer that stops reading makes the sender queue.
    bool SetReceiveBufferBytes(int bytes);
    /// Bounds each blocking send (SO_SNDTIMEO): SendAll then fails instead of blocking longer on a peer that stopped
    /// reading.
    bool SetSendTimeout(std::chrono::milliseconds timeout);
    /// Closes the socket now.
    void Close();

private:
    explicit TcpConnection(int fd) : fd_(fd) {}
    // Reads what is available into buffer_, waiting up to `deadline`. Returns false on timeout, EOF or error.
    bool Fill(std::chrono::steady_clock::time_point deadline);

    int fd_ = -1;
    bool eof_ = false;
    std::string buffer_;
    std::chrono::milliseconds idle_every_{0};
    std::function<void()> idle_handler_;
};

/// A parsed HTTP response.
struct HttpResponse {
    int status = 0;  ///< 0 if no valid response came
    std::vector<std::pair<std::string, std::string>> headers;  ///< names lower-cased
    std::string body;
    std::string error;  ///< set when status is 0
};

/// Sends `GET path` (HTTP/1.1, Connection: close) to host:port and reads the whole response.
HttpResponse HttpGet(const std::string& host, std::uint16_t port, const std::string& path,
                     std::chrono::milliseconds timeout = kDefaultTimeout);

}  // namespace syncline::test_support
