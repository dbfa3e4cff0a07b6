// syncline_fanout: the client fleet and the bare broadcast server. The tool's one translation unit that includes
// websocketpp and Asio (see fleet.hpp for the contracts).
#include "fleet.hpp"

#include <syncline/test_support/fast_client_config.hpp>

#include <websocketpp/client.hpp>
#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/server.hpp>

#include <pthread.h>
#include <sys/mman.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

namespace syncline::fanout {
namespace {

namespace asio = websocketpp::lib::asio;
using ErrorCode = websocketpp::lib::error_code;
using Client = websocketpp::client<syncline::test_support::FastClientConfig>;

// Under the server's max_handshakes (128 by default): beyond it syncline closes the oldest handshake, and the run
// ended with "socket N failed: End of File" before it measured anything.
constexpr int kHandshakesInFlight = 64;

std::string SubscribeFrame(std::int64_t pk) {
    return R"({"action":"subscribe_instance","pk":)" + std::to_string(pk) + R"(,"request_id":"s"})";
}

}  // namespace

SharedState* MapSharedState() {
    void* memory = mmap(nullptr, sizeof(SharedState), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) throw std::runtime_error("mmap of the shared state failed");
    return new (memory) SharedState();  // anonymous mappings are zeroed; atomics of zero are valid
}

// ---------------------------------------------------------------------------------------------------------------
// The fleet.

struct Fleet::Impl {
    explicit Impl(SharedState& s) : shared(s) {}

    // Touched only on the socket's strand (and by Open/Close when no io thread runs).
    struct Sock {
        int index = 0;
        std::int64_t row = 0;   // 0-based: the socket's pk is row + 1
        std::int64_t last = 0;  // the newest counter seen (row - rows before the first push)
        bool subscribed = false;
        Client::connection_ptr con;
    };

    SharedState& shared;
    FleetSpec spec;
    std::string url;
    std::unique_ptr<asio::io_context> io;
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
    std::unique_ptr<Client> client;
    std::vector<std::unique_ptr<Sock>> socks;
    std::vector<std::thread> threads;
    std::atomic<int> next{0};
    std::atomic<bool> closing{false};

    std::mutex mutex;
    std::condition_variable changed;
    int started = 0;   // connect() called
    int finished = 0;  // fail or close handler ran
    std::string first_error;

    void Fail(const std::string& error) {
        {
            std::lock_guard<std::mutex> lock(mutex);
            if (first_error.empty()) first_error = error;
        }
        changed.notify_all();
    }

    void LaunchNext() {
        const int i = next.fetch_add(1);
        if (i < spec.sockets && !closing.load()) Connect(i);
    }

    void Connect(int i) {
        Sock& s = *socks[static_cast<std::size_t>(i)];
        ErrorCode ec;
        Client::connection_ptr con = client->get_connection(url, ec);
        if (ec) {
            Fail("bad url " + url + ": " + ec.message());
            return;
        }
        con->set_open_handshake_timeout(60000);
        s.con = con;
        Sock* raw = &s;
        con->set_open_handler([raw](websocketpp::connection_hdl) {
            (void)raw->con->send(SubscribeFrame(raw->row + 1), websocketpp::frame::opcode::text);
        });
        con->set_message_handler([this, raw](websocketpp::connection_hdl, const Client::message_ptr& message) {
            OnMessage(*raw, message->get_payload());
        });
        con->set_fail_handler([this, raw](websocketpp::connection_hdl) {
            Fail("socket " + std::to_string(raw->index) + " failed: " + raw->con->get_ec().message());
            Finished();
            LaunchNext();
        });
        con->set_close_handler([this, raw](websocketpp::connection_hdl) {
            if (!closing.load()) {
                Fail("socket " + std::to_string(raw->index) + " closed by the server (code " +
                     std::to_string(raw->con->get_remote_close_code()) + " " + raw->con->get_remote_close_reason() +
                     ")");
            }
            Finished();
        });
        {
            std::lock_guard<std::mutex> lock(mutex);
            ++started;
        }
        client->connect(con);
    }

    void Finished() {
        {
            std::lock_guard<std::mutex> lock(mutex);
            ++finished;
        }
        changed.notify_all();
    }

    void OnMessage(Sock& s, const std::string& payload) {
        const std::int64_t now = NowNs();
        if (!s.subscribed) {
            if (payload.find("\"response_status\":201") == std::string::npos) {
                Fail("socket " + std::to_string(s.index) + ": subscribe answered " + payload.substr(0, 300));
                return;
            }
            s.subscribed = true;
            if (shared.subscribed.fetch_add(1) + 1 == static_cast<std::uint64_t>(spec.sockets)) {
                std::lock_guard<std::mutex> lock(mutex);  // pairs with Open's wait
                changed.notify_all();
            }
            LaunchNext();
            return;
        }
        const std::size_t at = payload.find("\"n\":");
        if (at == std::string::npos) {
            shared.other_frames.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        const std::int64_t v = std::strtoll(payload.c_str() + at + 4, nullptr, 10);
        if (v < 0) {  // the row as inserted, before the writer started (a late push of the insert)
            shared.other_frames.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        shared.frames.fetch_add(1, std::memory_order_relaxed);
        shared.bytes.fetch_add(payload.size(), std::memory_order_relaxed);
        const std::int64_t rows = spec.rows;
        if (v <= s.last || (v - s.last) % rows != 0 || (v - s.last) / rows > std::int64_t{SharedState::kRing / 2}) {
            shared.out_of_order.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        const std::int64_t steps = (v - s.last) / rows;
        for (std::int64_t k = s.last + rows; k <= v; k += rows) shared.MarkDone(k);
        if (steps > 1) shared.skipped.fetch_add(static_cast<std::uint64_t>(steps - 1), std::memory_order_relaxed);
        s.last = v;
        if (v >= 0 && static_cast<std::size_t>(v) < SharedState::kRecords) {
            std::int64_t expected = 0;
            shared.recv_ns[v].compare_exchange_strong(expected, now, std::memory_order_relaxed);
            std::int64_t last = shared.recv_last_ns[v].load(std::memory_order_relaxed);
            while (now > last && !shared.recv_last_ns[v].compare_exchange_weak(last, now, std::memory_order_relaxed)) {
            }
        }
    }

    void StopIo() {
        work.reset();
        if (io) io->stop();
        for (std::thread& t : threads) t.join();
        threads.clear();
        socks.clear();
        client.reset();
        io.reset();
    }
};

Fleet::Fleet(SharedState& shared) : impl_(std::make_unique<Impl>(shared)) {}

Fleet::~Fleet() { Close(); }

std::string Fleet::Open(const FleetSpec& spec) {
    Impl& f = *impl_;
    Close();
    if (spec.sockets <= 0 || spec.rows <= 0) return "no sockets";
    f.spec = spec;
    f.url = "ws://127.0.0.1:" + std::to_string(spec.port) + spec.path;
    f.closing.store(false);
    f.next.store(0);
    f.started = 0;
    f.finished = 0;
    f.first_error.clear();
    f.io = std::make_unique<asio::io_context>();
    f.work.emplace(f.io->get_executor());
    f.client = std::make_unique<Client>();
    f.client->clear_access_channels(websocketpp::log::alevel::all);
    f.client->clear_error_channels(websocketpp::log::elevel::all);
    f.client->init_asio(f.io.get());
    Client* client = f.client.get();
    f.client->set_tcp_post_init_handler([client](websocketpp::connection_hdl hdl) {
        ErrorCode ec;
        if (auto con = client->get_con_from_hdl(hdl, ec)) {
            boost::system::error_code ignored;
            con->get_raw_socket().set_option(asio::ip::tcp::no_delay(true), ignored);
        }
    });
    f.socks.clear();
    for (int i = 0; i < spec.sockets; ++i) {
        auto s = std::make_unique<Impl::Sock>();
        s->index = i;
        s->row = i % spec.rows;
        s->last = s->row - spec.rows;
        f.socks.push_back(std::move(s));
    }
    for (unsigned t = 0; t < std::max(1U, spec.threads); ++t) {
        f.threads.emplace_back([io = f.io.get()] {
            pthread_setname_np(pthread_self(), "fleet-io");
            io->run();
        });
    }
    for (int k = 0; k < std::min(kHandshakesInFlight, spec.sockets); ++k) f.LaunchNext();

    const auto start = Clock::now();
    const auto deadline = start + std::chrono::seconds(spec.timeout_s);
    auto last_progress = start;
    std::unique_lock<std::mutex> lock(f.mutex);
    for (;;) {
        const auto subscribed = f.shared.subscribed.load();
        if (subscribed >= static_cast<std::uint64_t>(spec.sockets)) break;
        if (!f.first_error.empty()) break;
        const auto now = Clock::now();
        if (now >= deadline) {
            f.first_error = "timeout: " + std::to_string(subscribed) + " of " + std::to_string(spec.sockets) +
                            " sockets subscribed after " + std::to_string(spec.timeout_s) + " s";
            break;
        }
        if (now - last_progress >= std::chrono::seconds(1)) {
            std::fprintf(stderr, "    connecting: %llu/%d subscribed\n", static_cast<unsigned long long>(subscribed),
                         spec.sockets);
            last_progress = now;
        }
        f.changed.wait_for(lock, std::chrono::milliseconds(100));
    }
    std::string error = f.first_error;
    lock.unlock();
    if (!error.empty()) Close();
    return error;
}

void Fleet::Close() {
    Impl& f = *impl_;
    if (!f.io) return;
    f.closing.store(true);
    for (auto& s : f.socks) {
        Client::connection_ptr con = s->con;
        if (!con) continue;
        // close() belongs on the socket's strand (it touches the handshake timer).
        asio::post(*con->get_strand(), [con] {
            ErrorCode ignored;
            con->close(websocketpp::close::status::normal, "done", ignored);
        });
    }
    {
        std::unique_lock<std::mutex> lock(f.mutex);
        f.changed.wait_for(lock, std::chrono::seconds(20), [&f] { return f.finished >= f.started; });
    }
    f.StopIo();
}

// ---------------------------------------------------------------------------------------------------------------
// The bare broadcast server.

namespace {

// The stock asio server config with websocketpp's logging compiled out (the same base syncline's transport uses).
using BareConfig = syncline::wspp::QuietConfig<websocketpp::config::asio>;

using WsServer = websocketpp::server<BareConfig>;

constexpr char kSubscribed[] =
    R"({"errors":[],"data":null,"action":"subscribe_instance","response_status":201,"request_id":"s"})";

}  // namespace

struct BareServer::Impl {
    asio::io_context io;
    WsServer server;
    std::vector<std::thread> threads;
    std::uint16_t port = 0;
    mutable std::mutex mutex;
    std::vector<std::vector<WsServer::connection_ptr>> rows;  // by pk
    std::size_t count = 0;
};

BareServer::BareServer(unsigned threads) : impl_(std::make_unique<Impl>()) {
    Impl& b = *impl_;
    b.server.clear_access_channels(websocketpp::log::alevel::all);
    b.server.clear_error_channels(websocketpp::log::elevel::all);
    b.server.init_asio(&b.io);
    b.server.set_reuse_addr(true);
    b.server.set_listen_backlog(4096);
    WsServer* server = &b.server;
    b.server.set_tcp_post_init_handler([server](websocketpp::connection_hdl hdl) {
        ErrorCode ec;
        if (auto con = server->get_con_from_hdl(hdl, ec)) {
            boost::system::error_code ignored;
            con->get_raw_socket().set_option(asio::ip::tcp::no_delay(true), ignored);
        }
    });
    Impl* impl = &b;
    b.server.set_message_handler([impl](websocketpp::connection_hdl hdl, const WsServer::message_ptr& message) {
        ErrorCode ec;
        WsServer::connection_ptr con = impl->server.get_con_from_hdl(hdl, ec);
        if (!con) return;
        const std::string& text = message->get_payload();
        const std::size_t at = text.find("\"pk\":");
        if (at == std::string::npos) return;
        const long long pk = std::strtoll(text.c_str() + at + 5, nullptr, 10);
        if (pk < 0 || pk > 100'000'000) return;
        {
            std::lock_guard<std::mutex> lock(impl->mutex);
            if (impl->rows.size() <= static_cast<std::size_t>(pk)) impl->rows.resize(static_cast<std::size_t>(pk) + 1);
            impl->rows[static_cast<std::size_t>(pk)].push_back(con);
            ++impl->count;
        }
        (void)con->send(std::string(kSubscribed), websocketpp::frame::opcode::text);
    });
    b.server.listen(asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    b.server.start_accept();
    boost::system::error_code ec;
    b.port = b.server.get_local_endpoint(ec).port();
    for (unsigned i = 0; i < std::max(1U, threads); ++i) {
        b.threads.emplace_back([impl] {
            pthread_setname_np(pthread_self(), "bare-io");
            impl->io.run();
        });
    }
}

BareServer::~BareServer() {
    Impl& b = *impl_;
    ErrorCode ec;
    b.server.stop_listening(ec);
    b.io.stop();
    for (std::thread& t : b.threads) t.join();
    std::lock_guard<std::mutex> lock(b.mutex);
    b.rows.clear();
}

std::uint16_t BareServer::port() const { return impl_->port; }

std::size_t BareServer::subscribers() const {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    return impl_->count;
}

void BareServer::Broadcast(std::int64_t pk, std::string frame) {
    using MessageType = BareConfig::message_type;
    const std::size_t size = frame.size();
    auto message = std::make_shared<MessageType>(nullptr, websocketpp::frame::opcode::text, 0);
    message->set_header(websocketpp::frame::prepare_header(
        websocketpp::frame::basic_header(websocketpp::frame::opcode::text, size, true, false),
        websocketpp::frame::extended_header(size)));
    message->get_raw_payload() = std::move(frame);
    message->set_prepared(true);
    std::lock_guard<std::mutex> lock(impl_->mutex);
    if (pk < 0 || static_cast<std::size_t>(pk) >= impl_->rows.size()) return;
    for (const WsServer::connection_ptr& con : impl_->rows[static_cast<std::size_t>(pk)]) {
        (void)con->send(message);  // an error means the socket is closing
    }
}

}  // namespace syncline::fanout
