// The test websocket client: the only translation unit of the test support library that includes websocketpp.
//
// One io thread (Io) runs every client's connection; a client's State is the meeting point between that thread and
// the test thread (one mutex, one condition variable). Every call into a websocketpp connection (connect, send, close,
// terminate) runs on the io thread, posted in the order of the test's calls: websocketpp writes a connection's state
// from its own handlers without a lock, so a send() from the test thread would race a terminate() on the io thread.
#include <syncline/test_support/ws_client.hpp>

#include <syncline/test_support/fast_client_config.hpp>

#include <websocketpp/client.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace syncline::test_support {
namespace {

namespace asio = websocketpp::lib::asio;
using ErrorCode = websocketpp::lib::error_code;
using Endpoint = websocketpp::client<FastClientConfig>;
using ConnectionPtr = Endpoint::connection_ptr;
using MessagePtr = FastClientConfig::message_type::ptr;

constexpr std::chrono::milliseconds kDestructorCloseWait{2000};

enum class Phase { kConnecting, kOpen, kFailed, kClosed };

}  // namespace

struct WsClient::State {
    mutable std::mutex mutex;
    std::condition_variable changed;
    Phase phase = Phase::kConnecting;
    bool opened = false;  // the handshake succeeded (the phase may already be kClosed again)
    int http_status = 0;
    std::string error;
    std::deque<std::string> texts;
    std::deque<std::string> binaries;
    std::optional<int> close_code;
    std::string close_reason;
    std::size_t pings = 0;
    bool auto_pong = true;
    bool abandoned = false;    // Connect gave up waiting: do not connect, or close at once
    ConnectionPtr connection;  // set on the io thread before connect(); never reset
};

class WsClient::Io {
public:
    /// The io thread shared by every live client.
    static std::shared_ptr<Io> Acquire() {
        static std::mutex mutex;
        static std::weak_ptr<Io> current;
        std::lock_guard<std::mutex> lock(mutex);
        std::shared_ptr<Io> io = current.lock();
        if (!io) {
            io = std::make_shared<Io>();
            current = io;
        }
        return io;
    }

    Io() {
        endpoint_.clear_access_channels(websocketpp::log::alevel::all);
        endpoint_.clear_error_channels(websocketpp::log::elevel::all);
        endpoint_.init_asio(&io_);
        endpoint_.set_tcp_post_init_handler([this](const websocketpp::connection_hdl& hdl) {
            ErrorCode ec;
            if (ConnectionPtr connection = endpoint_.get_con_from_hdl(hdl, ec)) {
                boost::system::error_code ignored;
                connection->get_raw_socket().set_option(asio::ip::tcp::no_delay(true), ignored);
            }
        });
        thread_ = std::thread([this] { io_.run(); });
    }

    ~Io() {
        work_guard_.reset();
        io_.stop();
        thread_.join();
    }

    Io(const Io&) = delete;
    Io& operator=(const Io&) = delete;

    template <typename Function>
    void Post(Function&& function) {
        asio::post(io_, std::forward<Function>(function));
    }

    // Io thread only. Creates the connection, wires its handlers to `state` and starts connecting.
    void StartConnect(const std::shared_ptr<State>& state, const std::string& uri, const Headers& headers,
                      std::size_t max_message_bytes) {
        {
            std::lock_guard<std::mutex> lock(state->mutex);
            if (state->abandoned) {
                return;
            }
        }
        ErrorCode ec;
        ConnectionPtr connection = endpoint_.get_connection(uri, ec);
        if (ec || !connection) {
            std::lock_guard<std::mutex> lock(state->mutex);
            state->phase = Phase::kFailed;
            state->error = "bad uri " + uri + ": " + ec.message();
            state->changed.notify_all();
            return;
        }
        connection->set_max_message_size(max_message_bytes);
        for (const auto& [name, value] : headers) {
            connection->append_header(name, value);
        }
        // Handlers hold the state weakly: State owns the connection, the connection owns its handlers.
        std::weak_ptr<State> weak = state;
        connection->set_open_handler([this, weak](const websocketpp::connection_hdl& hdl) {
            auto s = weak.lock();
            bool abandoned = !s;
            if (s) {
                std::lock_guard<std::mutex> lock(s->mutex);
                abandoned = s->abandoned;
                s->phase = Phase::kOpen;
                s->opened = true;
                s->http_status = 101;
                s->changed.notify_all();
            }
            if (abandoned) {  // Connect timed out before the handshake finished: nobody will use this socket
                ErrorCode ignored;
                if (ConnectionPtr c = endpoint_.get_con_from_hdl(hdl, ignored)) {
                    c->close(websocketpp::close::status::going_away, "client gave up", ignored);
                }
            }
        });
        connection->set_fail_handler([this, weak](const websocketpp::connection_hdl& hdl) {
            auto s = weak.lock();
            ErrorCode ignored;
            ConnectionPtr c = endpoint_.get_con_from_hdl(hdl, ignored);
            if (!s || !c) {
                return;
            }
            std::lock_guard<std::mutex> lock(s->mutex);
            s->phase = Phase::kFailed;
            s->http_status = static_cast<int>(c->get_response_code());
            s->error = c->get_ec().message();
            s->changed.notify_all();
        });
        connection->set_close_handler([this, weak](const websocketpp::connection_hdl& hdl) {
            auto s = weak.lock();
            ErrorCode ignored;
            ConnectionPtr c = endpoint_.get_con_from_hdl(hdl, ignored);
            if (!s || !c) {
                return;
            }
            std::lock_guard<std::mutex> lock(s->mutex);
            s->phase = Phase::kClosed;
            s->close_code = static_cast<int>(c->get_remote_close_code());
            s->close_reason = c->get_remote_close_reason();
            s->changed.notify_all();
        });
        connection->set_message_handler([weak](const websocketpp::connection_hdl&, const MessagePtr& message) {
            if (auto s = weak.lock()) {
                std::lock_guard<std::mutex> lock(s->mutex);
                if (message->get_opcode() == websocketpp::frame::opcode::text) {
                    s->texts.push_back(std::move(message->get_raw_payload()));
                } else {
                    s->binaries.push_back(std::move(message->get_raw_payload()));
                }
                s->changed.notify_all();
            }
        });
        connection->set_ping_handler([weak](const websocketpp::connection_hdl&, const std::string&) {
            auto s = weak.lock();
            if (!s) {
                return true;
            }
            std::lock_guard<std::mutex> lock(s->mutex);
            ++s->pings;
            s->changed.notify_all();
            return s->auto_pong;  // false: websocketpp does not answer
        });
        {
            std::lock_guard<std::mutex> lock(state->mutex);
            state->connection = connection;
        }
        endpoint_.connect(connection);
    }

private:
    asio::io_context io_;
    asio::executor_work_guard<asio::io_context::executor_type> work_guard_ = asio::make_work_guard(io_);
    Endpoint endpoint_;
    std::thread thread_;
};

WsClient::WsClient(std::shared_ptr<Io> io, std::shared_ptr<State> state)
    : io_(std::move(io)), state_(std::move(state)) {}

ConnectResult WsClient::Connect(const std::string& host, std::uint16_t port, const std::string& path,
                                const Headers& headers, WsClientOptions options) {
    std::shared_ptr<Io> io = Io::Acquire();
    auto state = std::make_shared<State>();
    state->auto_pong = options.auto_pong;
    const std::string host_part = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    const std::string uri = "ws://" + host_part + ":" + std::to_string(port) + (path.empty() ? "/" : path);
    io->Post([io_raw = io.get(), state, uri, headers, max = options.max_message_bytes] {
        io_raw->StartConnect(state, uri, headers, max);
    });

    ConnectResult result;
    std::unique_lock<std::mutex> lock(state->mutex);
    const bool done = state->changed.wait_for(lock, options.connect_timeout,
                                              [&] { return state->phase != Phase::kConnecting; });
    if (!done) {
        result.error = "timed out connecting to " + uri;
        state->abandoned = true;  // StartConnect (if still queued) will not connect; a late open closes at once
        ConnectionPtr connection = state->connection;
        lock.unlock();
        if (connection) {
            io->Post([connection] { connection->terminate(ErrorCode()); });
        }
        return result;
    }
    result.http_status = state->http_status;
    if (state->opened) {  // even if the server already closed it again: the test reads the close code
        lock.unlock();
        result.client.reset(new WsClient(std::move(io), std::move(state)));
        return result;
    }
    result.error = state->error.empty() ? "connection closed during the handshake" : state->error;
    return result;
}

WsClient::~WsClient() {
    ConnectionPtr connection;
    {
        std::lock_guard<std::mutex> lock(state_->mutex);
        if (state_->phase != Phase::kOpen) {
            return;
        }
        connection = state_->connection;
    }
    Close(1000, "");
    if (!WaitClosed(kDestructorCloseWait)) {
        io_->Post([connection] { connection->terminate(ErrorCode()); });
    }
}

bool WsClient::Send(std::string_view payload, bool binary) {
    ConnectionPtr connection;
    {
        std::lock_guard<std::mutex> lock(state_->mutex);
        if (state_->phase != Phase::kOpen) {
            return false;
        }
        connection = state_->connection;
    }
    // An error there means the connection is closing: the frame is dropped, as a send after the close would be.
    io_->Post([connection, payload = std::string(payload), binary] {
        (void)connection->send(payload, binary ? websocketpp::frame::opcode::binary : websocketpp::frame::opcode::text);
    });
    return true;
}

bool WsClient::SendText(std::string_view text) {
    return Send(text, false);
}

bool WsClient::SendBinary(std::string_view data) {
    return Send(data, true);
}

namespace {

std::optional<std::string> PopFrame(std::unique_lock<std::mutex>& lock, std::condition_variable& changed,
                                    std::deque<std::string>& queue, const Phase& phase,
                                    std::chrono::milliseconds timeout) {
    changed.wait_for(lock, timeout,
                     [&] { return !queue.empty() || phase == Phase::kClosed || phase == Phase::kFailed; });
    if (queue.empty()) {
        return std::nullopt;
    }
    std::string frame = std::move(queue.front());
    queue.pop_front();
    return frame;
}

}  // namespace

std::optional<std::string> WsClient::Receive(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(state_->mutex);
    return PopFrame(lock, state_->changed, state_->texts, state_->phase, timeout);
}

std::optional<std::string> WsClient::ReceiveBinary(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(state_->mutex);
    return PopFrame(lock, state_->changed, state_->binaries, state_->phase, timeout);
}

std::optional<std::string> WsClient::Request(std::string_view text, std::chrono::milliseconds timeout) {
    if (!SendText(text)) {
        return std::nullopt;
    }
    return Receive(timeout);
}

std::size_t WsClient::PendingText() const {
    std::lock_guard<std::mutex> lock(state_->mutex);
    return state_->texts.size();
}

void WsClient::Close(int code, std::string reason) {
    ConnectionPtr connection;
    {
        std::lock_guard<std::mutex> lock(state_->mutex);
        if (state_->phase != Phase::kOpen) {
            return;
        }
        connection = state_->connection;
    }
    // websocketpp's close() arms a timer that only its io thread may touch: run it there.
    io_->Post([connection, code, reason = std::move(reason)] {
        ErrorCode ec;
        connection->close(static_cast<websocketpp::close::status::value>(code), reason, ec);
    });
}

std::optional<int> WsClient::WaitClosed(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(state_->mutex);
    state_->changed.wait_for(lock, timeout, [&] { return state_->phase == Phase::kClosed; });
    return state_->phase == Phase::kClosed ? state_->close_code : std::nullopt;
}

bool WsClient::is_open() const {
    std::lock_guard<std::mutex> lock(state_->mutex);
    return state_->phase == Phase::kOpen;
}

std::optional<int> WsClient::close_code() const {
    std::lock_guard<std::mutex> lock(state_->mutex);
    return state_->close_code;
}

std::string WsClient::close_reason() const {
    std::lock_guard<std::mutex> lock(state_->mutex);
    return state_->close_reason;
}

std::size_t WsClient::pings_received() const {
    std::lock_guard<std::mutex> lock(state_->mutex);
    return state_->pings;
}

bool WsClient::WaitPings(std::size_t count, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(state_->mutex);
    return state_->changed.wait_for(lock, timeout, [&] {
        return state_->pings >= count || state_->phase == Phase::kClosed;
    }) && state_->pings >= count;
}

}  // namespace syncline::test_support
