#pragma once
/// \file
/// The websocket server: websocketpp on Boost.Asio, hidden behind a pimpl so that this header names neither.
///
/// Threading model. `workers` threads run one Asio io_context. Every connection has its own strand (websocketpp's
/// per-connection strand), and every call into a connection's Session (OnText, OnBinary, OnClose) is made from a
/// handler on that strand, so a session is never entered concurrently, sees its frames in arrival order, and gets
/// OnClose exactly once, last. A connection is not pinned to one thread: its consecutive handlers may run on
/// different workers, each one completing before the next starts. Endpoint::Admit and Endpoint::Open are called
/// from any worker, concurrently for different connections. Every call into a websocketpp connection (send, close,
/// ping, pong) is made on that connection's strand; the Outbox, callable from any thread, queues and posts there.

#include <syncline/core/protocol/session.hpp>

#include <chrono>
#include <functional>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace syncline::transport {

/// One folder of static files served over plain HTTP on the websocket port (WebSocketOptions::static_mounts).
struct StaticMount {
    /// The URL prefix, starting with "/": "/" serves the folder at the root, "/js" (or "/js/") serves it under /js/.
    std::string prefix;
    /// The folder. WebSocketServer::Start resolves it (symlinks included) and throws if it is not a directory.
    std::string folder;
};

/// How a WebSocketServer listens and treats its connections.
struct WebSocketOptions {
    /// Address to bind: a numeric IPv4/IPv6 address or a host name resolved at Start().
    std::string host = "127.0.0.1";
    /// Port to bind; 0 picks a free port (read it back with WebSocketServer::port()).
    std::uint16_t port = 8000;
    /// Worker threads running the event loop; 0 means std::thread::hardware_concurrency().
    unsigned workers = 0;
    /// Largest incoming message; a bigger one closes the socket with 1009.
    std::size_t max_message_bytes = 1 << 20;
    /// What `GET /readyz` answers: the reason this server cannot serve now, in one line, or "" when it can (200). Called
    /// on a network thread for each request: it must answer at once, from state it keeps (never a database round
    /// trip). Unset: /readyz answers as /healthz does. A Server sets it (ServerOptions::ready_max_relay_lag).
    std::function<std::string()> readiness;
    /// What `GET /metrics` answers (200, Prometheus text format 0.0.4). Called on a network thread for each request,
    /// so it must answer at once from state it keeps. Unset: /metrics answers 404. A Server sets it unless
    /// ServerOptions::metrics is off.
    std::function<std::string()> metrics;
    /// Interval of the server's pings; 0 disables pings (and so the pong timeout).
    std::chrono::milliseconds ping_interval{20000};
    /// A connection that has not answered a ping within this time is closed (1001 "pong timeout"); 0 disables it.
    /// Time while the socket is not read (its reading paused behind a write in the write pool) does not count.
    std::chrono::milliseconds pong_timeout{10000};
    /// A connection has one write in flight; outgoing frames wait behind it in the connection's own queue, and the
    /// next write takes what waits, up to this many bytes (at least one frame).
    std::size_t write_high_water = 256 * 1024;
    /// Once the oldest frame waiting in a connection's queue has waited this long, the connection is behind, and a
    /// push replaces the newest waiting push of the same row, and the next write leaves out every waiting push whose
    /// row has a newer one waiting (the latest state wins; replies are never replaced). Before, every version is
    /// queued and sent. This bounds the age of what a subscriber receives under overload to about
    /// this plus one write. 0: a push always replaces a waiting push of its row.
    std::chrono::milliseconds coalesce_after{20};
    /// A connection whose outgoing queue stays over this many bytes for slow_reader_timeout (or exceeds four times
    /// it at once) is closed with 1013: server memory stays bounded whatever a client does. Pongs count in the queue:
    /// a client's ping is answered through it, at most one pong outstanding (a newer ping's replaces a waiting one),
    /// and a pong that waits slow_reader_timeout without being written closes the connection with 1013 too.
    std::size_t max_queue_bytes = 4 * 1024 * 1024;
    std::chrono::milliseconds slow_reader_timeout{10000};
    /// How long Stop() waits for open connections to finish their closing handshake before dropping them.
    std::chrono::milliseconds shutdown_timeout{5000};
    /// Websocket connections open at once at most (counted from the accepted handshake to the close). A handshake
    /// beyond answers HTTP 503 with a JSON body; /healthz keeps answering. 0: derived from the open-file limit
    /// (DefaultMaxConnections).
    std::size_t max_connections = 0;
    /// Accepted sockets that are not (yet) websocket connections at most: handshakes in progress and plain HTTP
    /// requests such as /healthz. Beyond, the oldest of them is closed once it has been open handshake_grace, so that
    /// peers that open sockets and never finish a handshake cannot take every descriptor, while a burst of honest
    /// clients larger than the limit (all reconnecting at once) is still served.
    std::size_t max_handshakes = 128;
    std::chrono::milliseconds handshake_grace{1000};

    /// Folders served to plain HTTP GET and HEAD (the demo page; see the class comment for the rules). Empty: none.
    std::vector<StaticMount> static_mounts;
    /// A static file larger than this is refused (403) rather than read: a response is held whole in memory, so this
    /// bounds what one request can cost the server.
    std::size_t static_max_file_bytes = 4 * 1024 * 1024;
};

/// What a WebSocketServer has counted since it started; each value is read atomically, the set is not a snapshot.
struct WebSocketStats {
    std::uint64_t frames_in = 0;           ///< Text and binary frames received on websocket connections.
    std::uint64_t frames_out = 0;          ///< Data frames handed to sockets: replies and pushes (not pings, pongs).
    std::uint64_t pushes_replaced = 0;     ///< Waiting pushes replaced or left out of a write: a newer one of the
                                           ///< same row waited (latest wins).
    std::uint64_t slow_reader_closes = 0;  ///< Connections closed with 1013 (slow reader).
    /// Open websocket connections (those with a session) per routed path.
    std::vector<std::pair<std::string, std::size_t>> connections;
};

/// The default max_connections: the soft RLIMIT_NOFILE of the process minus a reserve of 256 descriptors (the
/// database, Redis, the listening socket, max_handshakes sockets; half the limit when it is below 512), at least 1 and
/// at most 65536.
std::size_t DefaultMaxConnections();

/// A websocket server that routes each handshake by exact path to an Endpoint and runs one Session per connection.
///
/// Plain HTTP on the same port: `GET /healthz` answers 200 `{"status":"ok"}` (503 `{"status":"stopping"}` while
/// stopping; another method on /healthz answers 405); a plain HTTP request for any other path answers 404. A
/// handshake for an unknown path is refused with 404; with max_connections websocket connections open, with 503 and
/// a JSON body naming the limit; Endpoint::Admit may refuse it with its own status. The query string is ignored when
/// matching routes; "/a" and "/a/" are different paths.
///
/// Static files (static_mounts): a plain HTTP GET or HEAD whose path falls under a mount's prefix (the longest
/// matching prefix wins) is answered from its folder, with a Content-Type by extension (html, js/mjs, css, json, svg,
/// png, ico, txt; otherwise application/octet-stream), `index.html` for a path ending in "/" and a 301 to the path
/// with "/" for a directory named without it. /healthz, /readyz, /metrics and the websocket routes' paths are never
/// looked up as files. Refused with 400: a `.` or `..` segment, an empty segment (`//`, an absolute path), a
/// backslash, a NUL or control byte, an invalid or encoded `/` (`%2f`), `\` or NUL; with 403: a file whose real path
/// (symlinks resolved) leaves the folder, or a file larger than static_max_file_bytes; with 404: a missing file or a
/// hidden one (a segment starting with "."); another method, 405. Files are read on the network thread that answers.
///
/// Descriptors: /healthz keeps answering whatever clients do. Websocket connections stop at max_connections (by
/// default below the open-file limit), sockets still in their handshake at max_handshakes (the oldest is closed), and
/// when accept fails for lack of descriptors anyway, accepts pause (100 ms, no busy loop) and a spare descriptor kept
/// for that lets one connection in at a time: plain HTTP (/healthz) is answered on it, a websocket handshake is
/// refused with 503.
///
/// The Outbox given to each session: Send drops a frame that is not valid UTF-8 (one warning per connection) and is a
/// no-op once Close was called or the connection closed; Close with a code that may not be sent (below 1000, 1004-1006,
/// 1015-2999, above 4999) closes with 1011 instead; BufferedBytes counts the payload bytes of frames Send queued (and
/// of pongs) that are not yet written to the socket (0 once closed). Frames over max_message_bytes close the socket with 1009, and
/// invalid UTF-8 in an incoming text frame closes it with 1007 (websocketpp's checks); binary frames are delivered.
///
/// Thread safety: Route, Start, Stop and Run are meant to be called from one controlling thread (Stop may also be
/// called from another non-worker thread while Run blocks); port() and connection_count() from any thread.
class WebSocketServer {
public:
    /// Creates a stopped server. Nothing is bound until Start().
    explicit WebSocketServer(WebSocketOptions options);
    /// Stops the server if it is running (see Stop()).
    ~WebSocketServer();

    WebSocketServer(const WebSocketServer&) = delete;
    WebSocketServer& operator=(const WebSocketServer&) = delete;

    /// Binds `path` (exact match, no query string) to `endpoint`. Must be called before Start().
    /// Throws std::logic_error if the server was already started or the path is already routed, and
    /// std::invalid_argument if `endpoint` is null.
    void Route(std::string path, std::shared_ptr<syncline::Endpoint> endpoint);

    /// Binds, listens and starts the worker threads; returns once the socket is listening.
    /// Throws std::runtime_error naming host:port if the address cannot be resolved or bound, and std::logic_error
    /// if the server was already started (a stopped server cannot be restarted).
    void Start();

    /// The bound port (the chosen one when WebSocketOptions::port is 0); 0 before Start().
    std::uint16_t port() const;

    /// Graceful drain: stops accepting, closes every open socket with 1001 "server shutting down" after the frames
    /// already queued on it, waits up to WebSocketOptions::shutdown_timeout for the closing handshakes, then stops and
    /// joins the workers. Sessions still open at that point get OnClose from the calling thread. Idempotent; a no-op
    /// if the server never started. Must not be called from a worker thread (i.e. from inside a Session or
    /// Endpoint callback): throws std::logic_error if it is.
    void Stop();

    /// Start(), then blocks until SIGTERM or SIGINT (or until Stop() is called from another thread), then Stop().
    /// Returns 0. Exceptions from Start() propagate. If the calling thread blocks both signals, Run reads them from a
    /// signalfd (block them in every thread, e.g. in main() before creating any, so none is delivered elsewhere; one
    /// that arrived earlier, during start-up, is then answered as soon as Run begins). Otherwise Run installs signal
    /// handlers for the two while it runs.
    int Run();

    /// Number of open websocket connections (those with a Session).
    std::size_t connection_count() const;
    /// The counters, any thread.
    WebSocketStats stats() const;

private:
    class Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace syncline::transport
