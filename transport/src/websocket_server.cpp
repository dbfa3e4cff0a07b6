// The websocket server: start, stop, run and the worker threads. Its other jobs have files of their own:
// accept_loop.cpp, connection_handlers.cpp, http_answers.cpp, connection_outbox.cpp, socket_tracker.cpp.
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

#include "websocket_server_impl.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>

#include <sys/signalfd.h>

#include <algorithm>
#include <csignal>
#include <optional>
#include <exception>
#include <stdexcept>
#include <system_error>

namespace syncline::transport {
namespace {

// The server whose worker the current thread is, if any (Stop() must not run on its own worker).
thread_local const void* t_worker_of = nullptr;

}  // namespace

WebSocketServer::Impl::Impl(WebSocketOptions options) : options_(std::move(options)) {
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

void WebSocketServer::Impl::Route(std::string path, std::shared_ptr<Endpoint> endpoint) {
    if (!endpoint) {
        throw std::invalid_argument("WebSocketServer::Route: null endpoint for " + path);
    }
    std::lock_guard<std::mutex> stop_lock(stop_mutex_);
    if (phase_ != Phase::kIdle) {
        throw std::logic_error("WebSocketServer::Route must be called before Start (" + path + ")");
    }
    if (routes_.count(path) != 0) {
        throw std::logic_error("WebSocketServer::Route: path already routed: " + path);
    }
    routes_[path].endpoint = std::move(endpoint);
}

void WebSocketServer::Impl::Start() {
    std::lock_guard<std::mutex> stop_lock(stop_mutex_);
    if (phase_ != Phase::kIdle) {
        throw std::logic_error("WebSocketServer::Start: already started (a stopped server cannot restart)");
    }
    PrepareStaticMounts();
    const std::string where = options_.host + ":" + std::to_string(options_.port);
    boost::system::error_code ec;
    asio::ip::tcp::resolver resolver(io_);
    const auto results =
        resolver.resolve(options_.host, std::to_string(options_.port), asio::ip::resolver_base::passive, ec);
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
    spdlog::info("websocket server listening on {}:{} ({} worker{}, {} route{}, at most {} connections)", options_.host,
                 port_.load(), workers, workers == 1 ? "" : "s", routes_.size(), routes_.size() == 1 ? "" : "s",
                 max_connections_);
}

void WebSocketServer::Impl::Stop() {
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
    spdlog::info("websocket server shutting down: closing {} connection{}", open.size(), open.size() == 1 ? "" : "s");
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
        spdlog::warn("websocket server: {} connection{} did not finish closing within {} ms: dropped", leftovers.size(),
                     leftovers.size() == 1 ? "" : "s", options_.shutdown_timeout.count());
    }
    phase_ = Phase::kStopped;
    spdlog::info("websocket server stopped");
}

int WebSocketServer::Impl::Run() {
    asio::io_context signal_io;
    int received = 0;
    // Two ways to learn of SIGTERM and SIGINT. When the calling thread blocks both (the syncline binary blocks them in
    // main() before any thread exists, so every thread inherits the mask), they stay pending until read here from a
    // signalfd: nothing runs in signal context, and no thread can be picked to run a handler it then sits on (a
    // ThreadSanitizer build defers a handler to the receiving thread's next intercepted call, which once left a
    // SIGTERM unanswered). Otherwise (an embedder's thread with the default mask) asio's signal_set installs handlers.
    sigset_t wanted;
    sigemptyset(&wanted);
    sigaddset(&wanted, SIGINT);
    sigaddset(&wanted, SIGTERM);
    sigset_t current;
    pthread_sigmask(SIG_BLOCK, nullptr, &current);
    std::optional<asio::posix::stream_descriptor> signal_fd;
    std::optional<asio::signal_set> signals;
    signalfd_siginfo info{};
    if (sigismember(&current, SIGINT) == 1 && sigismember(&current, SIGTERM) == 1) {
        const int fd = signalfd(-1, &wanted, SFD_NONBLOCK | SFD_CLOEXEC);
        if (fd < 0) throw std::system_error(errno, std::generic_category(), "websocket server: signalfd");
        signal_fd.emplace(signal_io, fd);
        signal_fd->async_read_some(asio::buffer(&info, sizeof info),
                                   [&received, &info](const boost::system::error_code& ec, std::size_t n) {
                                       if (!ec && n == sizeof info) received = static_cast<int>(info.ssi_signo);
                                   });
    } else {
        signals.emplace(signal_io, SIGINT, SIGTERM);
        signals->async_wait([&received](const boost::system::error_code& ec, int signal_number) {
            if (!ec) received = signal_number;
        });
    }
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

void WebSocketServer::Impl::WorkerLoop() {
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

WebSocketServer::WebSocketServer(WebSocketOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

WebSocketServer::~WebSocketServer() = default;

void WebSocketServer::Route(std::string path, std::shared_ptr<syncline::Endpoint> endpoint) {
    impl_->Route(std::move(path), std::move(endpoint));
}

void WebSocketServer::Start() { impl_->Start(); }

std::uint16_t WebSocketServer::port() const { return impl_->port(); }

void WebSocketServer::Stop() { impl_->Stop(); }

int WebSocketServer::Run() { return impl_->Run(); }

std::size_t WebSocketServer::connection_count() const { return impl_->connection_count(); }

WebSocketStats WebSocketServer::stats() const { return impl_->stats(); }

WebSocketStats WebSocketServer::Impl::stats() const {
    WebSocketStats stats;
    stats.frames_in = frames_in_.load(std::memory_order_relaxed);
    stats.frames_out = outbox_counters_->frames_out.load(std::memory_order_relaxed);
    stats.pushes_replaced = outbox_counters_->pushes_replaced.load(std::memory_order_relaxed);
    stats.slow_reader_closes = outbox_counters_->slow_reader_closes.load(std::memory_order_relaxed);
    for (const auto& [path, slot] : routes_) stats.connections.emplace_back(path, slot.open.load());
    return stats;
}

}  // namespace syncline::transport
