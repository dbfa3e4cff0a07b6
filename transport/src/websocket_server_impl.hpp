#pragma once
// Private to transport: WebSocketServer::Impl, declared here and defined by job: websocket_server.cpp (start, stop,
// run, the workers), accept_loop.cpp (accepting and evicting sockets), connection_handlers.cpp (handshake, frames,
// pings and close of each connection), http_answers.cpp (/healthz, 404, 503) and static_files.cpp (static_mounts).
// Threading: see websocket_server.cpp's top comment and the public header.

#include "connection_outbox.hpp"
#include "socket_tracker.hpp"
#include "wspp_types.hpp"

#include <syncline/core/protocol/session.hpp>
#include <syncline/transport/websocket_server.hpp>

#include <boost/asio/executor_work_guard.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

namespace syncline::transport {

// Per-connection state. Everything but `outbox` (itself thread-safe) is touched only on the connection's strand, or
// by Stop() after the workers are joined.
struct ConnectionState {
    // Counts this connection toward max_connections until the state goes (with the connection or at its close).
    std::shared_ptr<void> websocket_slot;
    // The handshake until the session opens (the session keeps its own copy); then only `path` and `remote` stay, for
    // log lines: headers and query go, an idle connection's memory counts.
    HandshakeRequest request;
    std::shared_ptr<Endpoint> endpoint;
    std::atomic<std::size_t>* route_open = nullptr;  // the route's count of open sessions (lives in Impl::routes_)
    std::shared_ptr<ConnectionOutbox> outbox;
    std::unique_ptr<Session> session;
    TimerPtr ping_timer;
    bool awaiting_pong = false;
    std::chrono::steady_clock::time_point ping_sent;
};

class WebSocketServer::Impl {
public:
    explicit Impl(WebSocketOptions options);
    ~Impl() { Stop(); }

    void Route(std::string path, std::shared_ptr<Endpoint> endpoint);
    void Start();
    std::uint16_t port() const { return port_.load(); }

    std::size_t connection_count() const { return open_count_.load(); }
    WebSocketStats stats() const;

    void Stop();
    int Run();

private:
    enum class Phase { kIdle, kRunning, kStopped };

    void WorkerLoop();

    // --- accept loop (accept_strand_) ---

    void DoAccept();
    void OnAccept(const ConnectionPtr& connection, const boost::system::error_code& ec);

    // Beyond max_handshakes sockets in their handshake, closes the oldest that have had their grace, and looks again
    // when the next one will have (accept strand).
    void EvictOverdueHandshakes();

    // Closes a socket that has not finished its handshake (more than max_handshakes are open), as websocketpp's own
    // handshake timeout would, on its strand. One log line for the first, then one per thousand.
    void Evict(const websocketpp::connection_hdl& hdl);
    void RetryAcceptLater();

    // --- connection handlers (each on its connection's strand) ---

    ConnectionPtr ConnectionOf(const websocketpp::connection_hdl& hdl);
    void OnTcpPostInit(const websocketpp::connection_hdl& hdl);

    // A handshake refused for lack of room: 503 with a JSON body saying why.
    static void RefuseBusy(WsConnection& connection, const std::string& body);
    void OnHttp(const websocketpp::connection_hdl& hdl);
    // GET /metrics: 200 with WebSocketOptions::metrics' text (405 for another method).
    void AnswerMetrics(WsConnection& connection);

    // --- static files (static_files.cpp) ---

    // Resolves every options_.static_mounts folder into static_mounts_ (Start, before listening); throws naming a
    // folder that is not one.
    void PrepareStaticMounts();
    // Answers a plain HTTP request from the static files when its path falls under a mount (true), or leaves it to
    // OnHttp (false): no mount covers it, or it is /healthz, /readyz, /metrics or a websocket route's path.
    bool ServeStatic(WsConnection& connection, std::string_view path);
    struct PreparedStaticMount {
        std::string prefix;          // "/" or "/js": no final "/"
        std::filesystem::path root;  // canonical
    };
    std::vector<PreparedStaticMount> static_mounts_;  // longest prefix first; read-only once started
    bool OnValidate(const websocketpp::connection_hdl& hdl);
    void OnOpen(const websocketpp::connection_hdl& hdl);
    void OnMessage(const websocketpp::connection_hdl& hdl, const MessagePtr& message);
    void OnClose(const websocketpp::connection_hdl& hdl);

    // Calls OnClose once and forgets the session. On the strand, or from Stop() after the workers are joined.
    void FinishConnection(ConnectionState& state);

    // A client's ping: at most one pong is owed at a time, the latest ping's (ConnectionOutbox::QueuePong).
    void OnPing(const websocketpp::connection_hdl& hdl, std::string payload);
    void OnPong(const websocketpp::connection_hdl& hdl);

    // Pings: one timer per connection. A ping goes out every ping_interval while the previous one was answered; an
    // unanswered ping closes the connection once pong_timeout has passed since it was sent, counted only while the
    // socket is read (not while its reading is paused behind a write in the write pool).
    void SchedulePing(const ConnectionPtr& connection, ConnectionState& state, std::chrono::milliseconds delay);
    void OnPingTimer(const websocketpp::connection_hdl& hdl);

    const WebSocketOptions options_;
    struct RouteSlot {
        std::shared_ptr<Endpoint> endpoint;
        std::atomic<std::size_t> open{0};  // websocket connections of this route with a session
    };
    // Fixed before Start (nodes, and so the counts sessions point at, stay put).
    std::unordered_map<std::string, RouteSlot> routes_;
    const std::shared_ptr<OutboxCounters> outbox_counters_ = std::make_shared<OutboxCounters>();
    std::atomic<std::uint64_t> frames_in_{0};

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

}  // namespace syncline::transport
