// syncline_loadgen: a closed-loop websocket load generator.
//
// Each of --connections sockets keeps --inflight requests in flight: it sends a text frame, and every frame it
// receives answers its oldest outstanding request (replies on one socket come in request order) and triggers the next
// request. Latency is measured from just before send() to the reply's arrival, for replies that arrive inside the
// measurement window (after --warmup, for --duration seconds).
//
// --mode echo starts a bare websocketpp echo server in this process (logging off, TCP_NODELAY) on a free loopback
// port and measures against it: the ceiling of the transport on this machine. --mode transport does the same with
// syncline's WebSocketServer and an echo Session (the cost of the transport layer over bare websocketpp).
// --url measures any server.
//
// The client masks frames with a cheap PRNG (see tests/support/.../fast_client_config.hpp): websocketpp's default
// std::random_device costs ~23 us per frame here and would dominate the measurement.
#include <syncline/core/protocol/session.hpp>
#include <syncline/test_support/fast_client_config.hpp>
#include <syncline/transport/websocket_server.hpp>

#include <websocketpp/client.hpp>
#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/server.hpp>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace asio = websocketpp::lib::asio;
using Clock = std::chrono::steady_clock;
using ErrorCode = websocketpp::lib::error_code;

// ---------------------------------------------------------------------------------------------------------------
// The in-process echo server (--mode echo).

using EchoServerConfig = syncline::wspp::QuietConfig<websocketpp::config::asio>;

class EchoServer {
public:
    explicit EchoServer(unsigned threads) {
        server_.clear_access_channels(websocketpp::log::alevel::all);
        server_.clear_error_channels(websocketpp::log::elevel::all);
        server_.init_asio(&io_);
        server_.set_reuse_addr(true);
        server_.set_tcp_post_init_handler([this](websocketpp::connection_hdl hdl) {
            ErrorCode ec;
            if (auto connection = server_.get_con_from_hdl(hdl, ec)) {
                boost::system::error_code ignored;
                connection->get_raw_socket().set_option(asio::ip::tcp::no_delay(true), ignored);
            }
        });
        server_.set_message_handler(
            [this](websocketpp::connection_hdl hdl, const EchoServerConfig::message_type::ptr& message) {
                ErrorCode ec;
                server_.send(hdl, message->get_payload(), message->get_opcode(), ec);
            });
        server_.listen(asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), 0));
        server_.start_accept();
        boost::system::error_code ec;
        port_ = server_.get_local_endpoint(ec).port();
        for (unsigned i = 0; i < threads; ++i) {
            threads_.emplace_back([this] { io_.run(); });
        }
    }

    ~EchoServer() {
        ErrorCode ec;
        server_.stop_listening(ec);
        io_.stop();
        for (std::thread& thread : threads_) {
            thread.join();
        }
    }

    std::uint16_t port() const { return port_; }

private:
    asio::io_context io_;
    websocketpp::server<EchoServerConfig> server_;
    std::vector<std::thread> threads_;
    std::uint16_t port_ = 0;
};

// ---------------------------------------------------------------------------------------------------------------
// syncline's own server with an echo endpoint (--mode transport).

class EchoSession : public syncline::Session {
public:
    explicit EchoSession(std::shared_ptr<syncline::Outbox> outbox) : outbox_(std::move(outbox)) {}
    void OnText(std::string_view frame) override { outbox_->Send(std::string(frame)); }
    void OnBinary(std::string_view) override {}
    void OnClose() override {}

private:
    std::shared_ptr<syncline::Outbox> outbox_;
};

class EchoEndpoint : public syncline::Endpoint {
public:
    std::unique_ptr<syncline::Session> Open(const syncline::HandshakeRequest&,
                                            std::shared_ptr<syncline::Outbox> outbox) override {
        return std::make_unique<EchoSession>(std::move(outbox));
    }
};

// ---------------------------------------------------------------------------------------------------------------
// Payload templates: "{i}" becomes the connection's request counter, "{conn}" the connection index.

class PayloadTemplate {
public:
    explicit PayloadTemplate(const std::string& text) {
        std::string literal;
        for (std::size_t i = 0; i < text.size();) {
            if (text.compare(i, 3, "{i}") == 0) {
                parts_.push_back({Kind::kLiteral, literal});
                parts_.push_back({Kind::kCounter, {}});
                literal.clear();
                i += 3;
            } else if (text.compare(i, 6, "{conn}") == 0) {
                parts_.push_back({Kind::kLiteral, literal});
                parts_.push_back({Kind::kConnection, {}});
                literal.clear();
                i += 6;
            } else {
                literal.push_back(text[i++]);
            }
        }
        parts_.push_back({Kind::kLiteral, literal});
        constant_ = parts_.size() == 1;
    }

    bool constant() const { return constant_; }

    std::string Render(std::uint64_t counter, int connection) const {
        std::string out;
        for (const Part& part : parts_) {
            switch (part.kind) {
                case Kind::kLiteral: out += part.text; break;
                case Kind::kCounter: out += std::to_string(counter); break;
                case Kind::kConnection: out += std::to_string(connection); break;
            }
        }
        return out;
    }

private:
    enum class Kind { kLiteral, kCounter, kConnection };
    struct Part {
        Kind kind;
        std::string text;
    };
    std::vector<Part> parts_;
    bool constant_ = false;
};

// ---------------------------------------------------------------------------------------------------------------
// The closed-loop client.

enum class Phase : int { kWarmup, kMeasure, kDrain };

using WsClientEndpoint = websocketpp::client<syncline::test_support::FastClientConfig>;
using ClientConnectionPtr = WsClientEndpoint::connection_ptr;

// One socket. Everything but the atomics is touched only on the connection's strand (and by main after the io
// threads are joined).
struct Connection {
    int index = 0;
    ClientConnectionPtr socket;
    std::deque<Clock::time_point> in_flight;
    std::uint64_t counter = 0;
    std::vector<std::uint64_t> latencies_ns;
    std::string constant_payload;
};

struct Shared {
    std::atomic<Phase> phase{Phase::kWarmup};
    std::mutex mutex;
    std::condition_variable changed;
    int opened = 0;
    int finished = 0;  // closed or failed
    int failures = 0;
    std::string first_error;
};

struct Options {
    std::string mode = "echo";
    std::string url;
    std::string payload = R"({"action":"retrieve","request_id":{i},"pk":1})";
    int connections = 8;
    int inflight = 1;
    double duration_s = 5.0;
    double warmup_s = 1.0;
    unsigned threads = 1;
    unsigned server_threads = 1;
    bool json = false;
};

double Percentile(const std::vector<std::uint64_t>& sorted, double fraction) {
    if (sorted.empty()) {
        return 0.0;
    }
    const auto rank = static_cast<std::size_t>(fraction * static_cast<double>(sorted.size() - 1) + 0.5);
    return static_cast<double>(sorted[std::min(rank, sorted.size() - 1)]) / 1000.0;
}

int RunLoad(const Options& options) {
    std::optional<EchoServer> echo;
    std::unique_ptr<syncline::transport::WebSocketServer> transport;
    std::string url = options.url;
    if (options.mode == "echo") {
        echo.emplace(options.server_threads);
        url = "ws://127.0.0.1:" + std::to_string(echo->port()) + "/";
    } else if (options.mode == "transport") {
        syncline::transport::WebSocketOptions server_options;
        server_options.host = "127.0.0.1";
        server_options.port = 0;
        server_options.workers = options.server_threads;
        transport = std::make_unique<syncline::transport::WebSocketServer>(server_options);
        transport->Route("/echo/", std::make_shared<EchoEndpoint>());
        transport->Start();
        url = "ws://127.0.0.1:" + std::to_string(transport->port()) + "/echo/";
    }
    const PayloadTemplate payload(options.payload);

    asio::io_context io;
    auto work = asio::make_work_guard(io);
    WsClientEndpoint client;
    client.clear_access_channels(websocketpp::log::alevel::all);
    client.clear_error_channels(websocketpp::log::elevel::all);
    client.init_asio(&io);
    client.set_tcp_post_init_handler([&client](websocketpp::connection_hdl hdl) {
        ErrorCode ec;
        if (auto connection = client.get_con_from_hdl(hdl, ec)) {
            boost::system::error_code ignored;
            connection->get_raw_socket().set_option(asio::ip::tcp::no_delay(true), ignored);
        }
    });

    Shared shared;
    std::vector<std::unique_ptr<Connection>> connections;
    const auto send_one = [&payload](Connection& c) {
        c.in_flight.push_back(Clock::now());
        // A send error means the socket is closing; its close handler reports it.
        if (payload.constant()) {
            (void)c.socket->send(c.constant_payload, websocketpp::frame::opcode::text);
        } else {
            (void)c.socket->send(payload.Render(c.counter, c.index), websocketpp::frame::opcode::text);
        }
        ++c.counter;
    };
    const auto finish = [&shared](const std::string& error) {
        {
            std::lock_guard<std::mutex> lock(shared.mutex);
            ++shared.finished;
            if (!error.empty()) {
                ++shared.failures;
                if (shared.first_error.empty()) {
                    shared.first_error = error;
                }
            }
        }
        shared.changed.notify_all();
    };

    for (int i = 0; i < options.connections; ++i) {
        auto c = std::make_unique<Connection>();
        c->index = i;
        c->constant_payload = payload.Render(0, i);
        c->latencies_ns.reserve(1 << 16);
        ErrorCode ec;
        c->socket = client.get_connection(url, ec);
        if (ec) {
            std::cerr << "syncline_loadgen: bad url " << url << ": " << ec.message() << "\n";
            return 2;
        }
        Connection* raw = c.get();
        c->socket->set_open_handler([&, raw](websocketpp::connection_hdl) {
            {
                std::lock_guard<std::mutex> lock(shared.mutex);
                ++shared.opened;
            }
            shared.changed.notify_all();
            for (int k = 0; k < options.inflight; ++k) {
                send_one(*raw);
            }
        });
        c->socket->set_message_handler([&, raw](websocketpp::connection_hdl, const WsClientEndpoint::message_ptr&) {
            const auto now = Clock::now();
            if (raw->in_flight.empty()) {
                return;  // an unsolicited frame (e.g. a push): not a reply
            }
            const auto sent = raw->in_flight.front();
            raw->in_flight.pop_front();
            const Phase phase = shared.phase.load(std::memory_order_relaxed);
            if (phase == Phase::kMeasure) {
                const auto latency = std::chrono::duration_cast<std::chrono::nanoseconds>(now - sent);
                raw->latencies_ns.push_back(static_cast<std::uint64_t>(latency.count()));
            }
            if (phase != Phase::kDrain) {
                send_one(*raw);
            } else if (raw->in_flight.empty()) {
                ErrorCode ignored;
                raw->socket->close(websocketpp::close::status::normal, "done", ignored);
            }
        });
        c->socket->set_fail_handler([&, raw](websocketpp::connection_hdl) {
            std::ostringstream error;
            error << "connection " << raw->index << " failed: " << raw->socket->get_ec().message();
            if (raw->socket->get_response_code() != 0) {
                error << " (HTTP " << static_cast<int>(raw->socket->get_response_code()) << ")";
            }
            finish(error.str());
        });
        c->socket->set_close_handler([&, raw](websocketpp::connection_hdl) {
            std::string error;
            if (shared.phase.load() != Phase::kDrain) {
                error = "connection " + std::to_string(raw->index) + " closed early (code " +
                        std::to_string(raw->socket->get_remote_close_code()) + ")";
            }
            finish(error);
        });
        connections.push_back(std::move(c));
    }
    for (auto& c : connections) {
        client.connect(c->socket);
    }
    std::vector<std::thread> threads;
    for (unsigned i = 0; i < std::max(1U, options.threads); ++i) {
        threads.emplace_back([&io] { io.run(); });
    }

    const auto connections_total = options.connections;
    bool all_open = false;
    {
        std::unique_lock<std::mutex> lock(shared.mutex);
        all_open = shared.changed.wait_for(lock, std::chrono::seconds(10), [&] {
            return shared.opened == connections_total || shared.failures > 0;
        }) && shared.failures == 0;
    }
    double measured_s = 0.0;
    if (all_open) {
        std::this_thread::sleep_for(std::chrono::duration<double>(options.warmup_s));  // the warmup window itself
        const auto start = Clock::now();
        shared.phase.store(Phase::kMeasure);
        std::this_thread::sleep_for(std::chrono::duration<double>(options.duration_s));  // the measurement window
        shared.phase.store(Phase::kDrain);
        measured_s = std::chrono::duration<double>(Clock::now() - start).count();
        std::unique_lock<std::mutex> lock(shared.mutex);
        shared.changed.wait_for(lock, std::chrono::seconds(10), [&] { return shared.finished == connections_total; });
    }
    work.reset();
    io.stop();
    for (std::thread& thread : threads) {
        thread.join();
    }
    if (!all_open) {
        std::cerr << "syncline_loadgen: could not open " << connections_total << " connections to " << url << ": "
                  << (shared.first_error.empty() ? "timeout" : shared.first_error) << "\n";
        return 1;
    }

    std::vector<std::uint64_t> latencies;
    for (const auto& c : connections) {
        latencies.insert(latencies.end(), c->latencies_ns.begin(), c->latencies_ns.end());
    }
    std::sort(latencies.begin(), latencies.end());
    const double rps = measured_s > 0 ? static_cast<double>(latencies.size()) / measured_s : 0.0;
    const double p50 = Percentile(latencies, 0.50);
    const double p90 = Percentile(latencies, 0.90);
    const double p99 = Percentile(latencies, 0.99);
    const double p999 = Percentile(latencies, 0.999);
    const double max = latencies.empty() ? 0.0 : static_cast<double>(latencies.back()) / 1000.0;

    char line[512];
    std::snprintf(line, sizeof(line),
                  "mode=%s url=%s connections=%d inflight=%d duration_s=%.2f requests=%zu rps=%.0f "
                  "p50_us=%.1f p90_us=%.1f p99_us=%.1f p99.9_us=%.1f max_us=%.1f errors=%d",
                  options.mode.c_str(), url.c_str(), options.connections, options.inflight, measured_s,
                  latencies.size(), rps, p50, p90, p99, p999, max, shared.failures);
    std::cout << line << "\n";
    if (options.json) {
        std::snprintf(line, sizeof(line),
                      "{\"mode\":\"%s\",\"url\":\"%s\",\"connections\":%d,\"inflight\":%d,\"duration_s\":%.3f,"
                      "\"requests\":%zu,\"rps\":%.1f,\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,"
                      "\"p999_us\":%.1f,\"max_us\":%.1f,\"errors\":%d}",
                      options.mode.c_str(), url.c_str(), options.connections, options.inflight, measured_s,
                      latencies.size(), rps, p50, p90, p99, p999, max, shared.failures);
        std::cout << line << "\n";
    }
    return shared.failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    Options options;
    CLI::App app{"syncline_loadgen: closed-loop websocket load generator (requests/s and latency percentiles)"};
    app.add_option("--mode", options.mode,
                   "echo: in-process bare websocketpp echo server; transport: in-process syncline WebSocketServer "
                   "with an echo session; url: the server at --url")
        ->capture_default_str()
        ->check(CLI::IsMember({"echo", "transport", "url"}));
    app.add_option("--url", options.url, "ws://host:port/path to measure (implies --mode url)");
    app.add_option("--payload", options.payload,
                   "text frame to send; {i} = per-connection request counter, {conn} = connection index")
        ->capture_default_str();
    app.add_option("--connections,-c", options.connections, "sockets")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--inflight", options.inflight, "requests in flight per socket")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--duration,-d", options.duration_s, "measurement window, seconds")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--warmup", options.warmup_s, "unmeasured warmup before the window, seconds")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    app.add_option("--threads", options.threads, "client io threads")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--server-threads", options.server_threads, "in-process server threads (echo, transport)")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_flag("--json", options.json, "also print the result as one JSON object");
    CLI11_PARSE(app, argc, argv);

    if (!options.url.empty()) {
        if (app.count("--mode") != 0 && options.mode != "url") {
            std::cerr << "syncline_loadgen: --url goes with --mode url only\n";
            return 2;
        }
        options.mode = "url";
    } else if (options.mode == "url") {
        std::cerr << "syncline_loadgen: --mode url needs --url\n";
        return 2;
    }
    try {
        return RunLoad(options);
    } catch (const std::exception& e) {
        std::cerr << "syncline_loadgen: " << e.what() << "\n";
        return 1;
    }
}
