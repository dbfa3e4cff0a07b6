// The websocket server over real sockets on 127.0.0.1 (port 0), with an echo endpoint defined here. Every wait is on
// an event with a deadline; nothing sleeps.
#include <syncline/transport/websocket_server.hpp>

#include <syncline/core/protocol/session.hpp>
#include <syncline/test_support/ws_client.hpp>

#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace syncline::transport {
namespace {

using namespace std::chrono_literals;
using syncline::test_support::ConnectResult;
using syncline::test_support::Headers;
using syncline::test_support::HttpGet;
using syncline::test_support::TcpConnection;
using syncline::test_support::WsClient;
using syncline::test_support::WsClientOptions;

constexpr auto kWait = 10s;

// What the echo endpoint and its sessions saw. Thread-safe; tests wait on it.
class Recorder {
public:
    void Update(const std::function<void(Recorder&)>& change) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            change(*this);
        }
        changed_.notify_all();
    }

    bool WaitFor(const std::function<bool(const Recorder&)>& condition, std::chrono::milliseconds timeout = kWait) {
        std::unique_lock<std::mutex> lock(mutex_);
        return changed_.wait_for(lock, timeout, [&] { return condition(*this); });
    }

    template <typename T>
    T Read(const std::function<T(const Recorder&)>& read) const {
        std::lock_guard<std::mutex> lock(mutex_);
        return read(*this);
    }

    int admitted = 0;
    int opened = 0;
    int closed = 0;
    int violations = 0;  // concurrent session calls, calls after OnClose, double OnClose
    int floods_done = 0;
    std::vector<HandshakeRequest> requests;
    std::vector<std::shared_ptr<Outbox>> outboxes;

private:
    mutable std::mutex mutex_;
    std::condition_variable changed_;
};

// Echoes text; a few commands exercise the transport:
//   "throw"            the session throws
//   "flood:N"          sends N 1 KiB frames "<i>:..." then reports floods_done
//   "close:CODE"       sends "bye" then closes with CODE "requested"
//   "pause"            pauses reading (Outbox::PauseReading) and says whether it did
class EchoSession : public Session {
public:
    EchoSession(std::shared_ptr<Recorder> recorder, std::shared_ptr<Outbox> outbox)
        : recorder_(std::move(recorder)), outbox_(std::move(outbox)) {}

    void OnText(std::string_view frame) override {
        Guard guard(*this);
        if (frame == "throw") {
            throw std::runtime_error("session failure requested by the test");
        }
        if (frame.rfind("flood:", 0) == 0) {
            const int count = std::stoi(std::string(frame.substr(6)));
            const std::string padding(1024, 'x');
            for (int i = 0; i < count; ++i) {
                outbox_->Send(std::to_string(i) + ":" + padding);
            }
            recorder_->Update([](Recorder& r) { ++r.floods_done; });
            return;
        }
        if (frame == "pause") {
            outbox_->Send(outbox_->PauseReading() ? "paused" : "not paused");
            return;
        }
        if (frame.rfind("close:", 0) == 0) {
            outbox_->Send("bye");
            outbox_->Close(std::stoi(std::string(frame.substr(6))), "requested");
            return;
        }
        outbox_->Send(std::string(frame));
    }

    void OnBinary(std::string_view frame) override {
        Guard guard(*this);
        outbox_->Send("binary:" + std::to_string(frame.size()));
    }

    void OnClose() override {
        Guard guard(*this);
        const bool twice = closed_;
        closed_ = true;
        recorder_->Update([twice](Recorder& r) {
            ++r.closed;
            r.violations += twice ? 1 : 0;
        });
    }

private:
    // Detects concurrent entry and calls after OnClose.
    struct Guard {
        explicit Guard(EchoSession& session) : session_(session) {
            if (session_.in_call_.fetch_add(1) != 0 || session_.closed_) {
                session_.recorder_->Update([](Recorder& r) { ++r.violations; });
            }
        }
        ~Guard() { session_.in_call_.fetch_sub(1); }
        Guard(const Guard&) = delete;
        Guard& operator=(const Guard&) = delete;
        EchoSession& session_;
    };

    std::shared_ptr<Recorder> recorder_;
    std::shared_ptr<Outbox> outbox_;
    std::atomic<int> in_call_{0};
    bool closed_ = false;
};

// Query parameters steer it: deny=1 -> 403, admit_throws=1 -> throws in Admit, open_throws=1 -> throws in Open.
class EchoEndpoint : public Endpoint {
public:
    explicit EchoEndpoint(std::shared_ptr<Recorder> recorder) : recorder_(std::move(recorder)) {}

    int Admit(const HandshakeRequest& request) override {
        recorder_->Update([&](Recorder& r) {
            ++r.admitted;
            r.requests.push_back(request);
        });
        if (request.QueryParam("admit_throws")) {
            throw std::runtime_error("admit failure requested by the test");
        }
        return request.QueryParam("deny") ? 403 : 101;
    }

    std::unique_ptr<Session> Open(const HandshakeRequest& request, std::shared_ptr<Outbox> outbox) override {
        if (request.QueryParam("open_throws")) {
            throw std::runtime_error("open failure requested by the test");
        }
        recorder_->Update([&](Recorder& r) {
            ++r.opened;
            r.outboxes.push_back(outbox);
        });
        return std::make_unique<EchoSession>(recorder_, std::move(outbox));
    }

private:
    std::shared_ptr<Recorder> recorder_;
};

constexpr char kEchoPath[] = "/ws/echo/";

// A websocket handshake written by hand on a raw socket, for peers that misbehave (never read, never answer).
std::optional<TcpConnection> RawWebSocket(std::uint16_t port) {
    auto raw = TcpConnection::Connect("127.0.0.1", port);
    if (!raw || !raw->SendAll("GET /ws/echo/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n\r\n")) {
        return std::nullopt;
    }
    const auto head = raw->ReadUntil("\r\n\r\n");
    if (!head || head->rfind("HTTP/1.1 101", 0) != 0) {
        return std::nullopt;
    }
    return raw;
}

class TransportWebSocketServer : public ::testing::Test {
protected:
    static WebSocketOptions DefaultOptions() {
        WebSocketOptions options;
        options.host = "127.0.0.1";
        options.port = 0;
        options.workers = 2;
        return options;
    }

    void StartServer(WebSocketOptions options = DefaultOptions()) {
        server_ = std::make_unique<WebSocketServer>(options);
        server_->Route(kEchoPath, endpoint_);
        server_->Start();
        port_ = server_->port();
        ASSERT_NE(port_, 0);
    }

    ConnectResult Connect(const std::string& path = kEchoPath, const Headers& headers = {},
                          WsClientOptions options = {}) {
        return WsClient::Connect("127.0.0.1", port_, path, headers, options);
    }

    void TearDown() override {
        if (server_) {
            server_->Stop();
            EXPECT_EQ(server_->connection_count(), 0U);
        }
        EXPECT_EQ(recorder_->Read<int>([](const Recorder& r) { return r.violations; }), 0);
        EXPECT_EQ(recorder_->Read<int>([](const Recorder& r) { return r.closed; }),
                  recorder_->Read<int>([](const Recorder& r) { return r.opened; }))
            << "every opened session gets exactly one OnClose";
    }

    int Opened() const { return recorder_->Read<int>([](const Recorder& r) { return r.opened; }); }
    // The outbox of the one socket the test opened, once its session is open (null if it does not open in time).
    std::shared_ptr<Outbox> OnlyOutbox() {
        if (!recorder_->WaitFor([](const Recorder& r) { return r.opened == 1; })) return nullptr;
        return recorder_->Read<std::shared_ptr<Outbox>>([](const Recorder& r) { return r.outboxes.back(); });
    }
    int Closed() const { return recorder_->Read<int>([](const Recorder& r) { return r.closed; }); }

    std::shared_ptr<Recorder> recorder_ = std::make_shared<Recorder>();
    std::shared_ptr<EchoEndpoint> endpoint_ = std::make_shared<EchoEndpoint>(recorder_);
    std::unique_ptr<WebSocketServer> server_;
    std::uint16_t port_ = 0;
};

TEST_F(TransportWebSocketServer, EchoesText) {
    StartServer();
    ConnectResult client = Connect();
    ASSERT_TRUE(client) << client.error;
    EXPECT_EQ(client.http_status, 101);
    EXPECT_EQ(client->Request("hello"), "hello");
    EXPECT_EQ(client->Request(u8"h\u00e9llo \u2603"), u8"h\u00e9llo \u2603");
}

// The flow control of a socket whose requests wait behind a write (core's SerialRequests): while paused, frames the
// peer sends later are not read at all, and they are all delivered, in order, once reading resumes. No server pings:
// the paused connection then has no read and no timer in flight, and must still be alive when it resumes.
TEST_F(TransportWebSocketServer, APausedSocketIsNotReadUntilItResumes) {
    WebSocketOptions options = DefaultOptions();
    options.ping_interval = 0ms;
    StartServer(options);
    ConnectResult client = Connect();
    ASSERT_TRUE(client) << client.error;
    ASSERT_EQ(client->Request("pause"), "paused");
    ASSERT_TRUE(client->SendText("a"));
    ASSERT_TRUE(client->SendText("b"));
    EXPECT_EQ(client->Receive(300ms), std::nullopt) << "a frame was read while reading was paused";
    std::shared_ptr<Outbox> outbox = recorder_->Read<std::shared_ptr<Outbox>>(
        [](const Recorder& r) { return r.outboxes.empty() ? nullptr : r.outboxes.front(); });
    ASSERT_NE(outbox, nullptr);
    outbox->ResumeReading();
    EXPECT_EQ(client->Receive(kWait), "a");
    EXPECT_EQ(client->Receive(kWait), "b");
    outbox->ResumeReading();  // a second resume is a no-op: no second read in flight
    EXPECT_EQ(client->Request("c"), "c");
    EXPECT_EQ(client->Request("pause"), "paused");  // and it pauses again
    outbox->ResumeReading();
    EXPECT_EQ(client->Request("d"), "d");
}

TEST_F(TransportWebSocketServer, EmptyTextFrameReachesOnText) {
    StartServer();
    ConnectResult client = Connect();
    ASSERT_TRUE(client) << client.error;
    EXPECT_EQ(client->Request(""), "");
    EXPECT_EQ(client->Request("after"), "after");
}

TEST_F(TransportWebSocketServer, BinaryFrameReachesOnBinaryAndSocketStaysOpen) {
    StartServer();
    ConnectResult client = Connect();
    ASSERT_TRUE(client) << client.error;
    ASSERT_TRUE(client->SendBinary(std::string("\x00\x01\xff", 3)));
    EXPECT_EQ(client->Receive(), "binary:3");
    EXPECT_EQ(client->Request("still open"), "still open");
}

TEST_F(TransportWebSocketServer, FrameOverTheLimitClosesWith1009) {
    WebSocketOptions options = DefaultOptions();
    options.max_message_bytes = 1024;
    StartServer(options);
    ConnectResult client = Connect();
    ASSERT_TRUE(client) << client.error;
    const std::string at_limit(1024, 'a');
    EXPECT_EQ(client->Request(at_limit), at_limit);
    ASSERT_TRUE(client->SendText(std::string(1025, 'b')));
    EXPECT_EQ(client->WaitClosed(kWait), 1009);
    EXPECT_TRUE(recorder_->WaitFor([](const Recorder& r) { return r.closed == 1; }));
}

TEST_F(TransportWebSocketServer, InvalidUtf8TextClosesWith1007) {
    StartServer();
    auto raw = RawWebSocket(port_);
    ASSERT_TRUE(raw);
    // FIN + text, masked, 2 bytes, zero mask key, payload C3 28 (a truncated two-byte sequence).
    ASSERT_TRUE(raw->SendAll(std::string("\x81\x82\x00\x00\x00\x00\xc3\x28", 8)));
    const auto close_frame = raw->ReadExactly(4);
    ASSERT_TRUE(close_frame);
    EXPECT_EQ(static_cast<unsigned char>((*close_frame)[0]), 0x88);
    EXPECT_EQ(static_cast<unsigned char>((*close_frame)[2]) * 256 + static_cast<unsigned char>((*close_frame)[3]),
              1007);
}

TEST_F(TransportWebSocketServer, UnknownPathIsRefusedWith404) {
    StartServer();
    ConnectResult unknown = Connect("/ws/nope/");
    EXPECT_FALSE(unknown);
    EXPECT_EQ(unknown.http_status, 404);
    ConnectResult no_trailing_slash = Connect("/ws/echo");
    EXPECT_FALSE(no_trailing_slash);
    EXPECT_EQ(no_trailing_slash.http_status, 404);
    EXPECT_EQ(Opened(), 0);
}

TEST_F(TransportWebSocketServer, QueryStringIsIgnoredForRoutingAndHandshakeIsDescribed) {
    StartServer();
    ConnectResult client = Connect("/ws/echo/?token=a%20b+c&x=1",
                                   {{"X-Custom-Header", "Some Value"}, {"Cookie", "sessionid=abc123; theme=dark"}});
    ASSERT_TRUE(client) << client.error;
    const HandshakeRequest request =
        recorder_->Read<HandshakeRequest>([](const Recorder& r) { return r.requests.back(); });
    EXPECT_EQ(request.path, "/ws/echo/");
    EXPECT_EQ(request.query, "token=a%20b+c&x=1");
    EXPECT_EQ(request.QueryParam("token"), "a b c");
    EXPECT_EQ(request.QueryParam("x"), "1");
    EXPECT_EQ(request.Header("X-CUSTOM-HEADER"), "Some Value");
    EXPECT_EQ(request.Cookie("sessionid"), "abc123");
    EXPECT_EQ(request.Cookie("theme"), "dark");
    bool saw_lower_case_name = false;
    for (const auto& [name, value] : request.headers) {
        saw_lower_case_name = saw_lower_case_name || name == "x-custom-header";
    }
    EXPECT_TRUE(saw_lower_case_name);
    const std::string client_address = "127.0.0.1:";
    ASSERT_EQ(request.remote.rfind(client_address, 0), 0U) << request.remote;
    const int remote_port = std::stoi(request.remote.substr(client_address.size()));
    EXPECT_GT(remote_port, 0);
    EXPECT_NE(remote_port, port_);
}

TEST_F(TransportWebSocketServer, AdmitRefusalIsSentAsHttpStatus) {
    StartServer();
    ConnectResult denied = Connect("/ws/echo/?deny=1");
    EXPECT_FALSE(denied);
    EXPECT_EQ(denied.http_status, 403);
    ConnectResult admit_throws = Connect("/ws/echo/?admit_throws=1");
    EXPECT_FALSE(admit_throws);
    EXPECT_EQ(admit_throws.http_status, 500);
    EXPECT_EQ(Opened(), 0);
    ConnectResult allowed = Connect();
    ASSERT_TRUE(allowed) << allowed.error;
    EXPECT_EQ(allowed->Request("ok"), "ok");
}

TEST_F(TransportWebSocketServer, HealthzAnswersOverPlainHttpAndOtherPathsAre404) {
    StartServer();
    const auto health = HttpGet("127.0.0.1", port_, "/healthz");
    EXPECT_EQ(health.status, 200) << health.error;
    EXPECT_EQ(health.body, R"({"status":"ok"})");
    const auto health_with_query = HttpGet("127.0.0.1", port_, "/healthz?probe=1");
    EXPECT_EQ(health_with_query.status, 200) << health_with_query.error;
    const auto other = HttpGet("127.0.0.1", port_, "/other");
    EXPECT_EQ(other.status, 404) << other.error;
    const auto routed_path_without_upgrade = HttpGet("127.0.0.1", port_, kEchoPath);
    EXPECT_EQ(routed_path_without_upgrade.status, 404) << routed_path_without_upgrade.error;
}

TEST_F(TransportWebSocketServer, RepliesKeepFrameOrderPerSocketWithManyFramesInFlight) {
    WebSocketOptions options = DefaultOptions();
    options.workers = 4;
    StartServer(options);
    constexpr int kClients = 4;
    constexpr int kFrames = 3000;
    std::vector<std::unique_ptr<WsClient>> clients;
    for (int c = 0; c < kClients; ++c) {
        ConnectResult result = Connect();
        ASSERT_TRUE(result) << result.error;
        clients.push_back(std::move(result.client));
    }
    std::vector<std::thread> senders;
    for (int c = 0; c < kClients; ++c) {
        senders.emplace_back([&, c] {
            for (int i = 0; i < kFrames; ++i) {
                clients[c]->SendText(std::to_string(c) + "/" + std::to_string(i));
            }
        });
    }
    for (std::thread& sender : senders) {
        sender.join();
    }
    for (int c = 0; c < kClients; ++c) {
        for (int i = 0; i < kFrames; ++i) {
            const auto frame = clients[c]->Receive(kWait);
            ASSERT_TRUE(frame) << "client " << c << " frame " << i;
            ASSERT_EQ(*frame, std::to_string(c) + "/" + std::to_string(i));
        }
    }
}

TEST_F(TransportWebSocketServer, ServesManySocketsAtOnce) {
    StartServer();
    constexpr int kClients = 200;
    std::vector<std::unique_ptr<WsClient>> clients;
    for (int c = 0; c < kClients; ++c) {
        ConnectResult result = Connect();
        ASSERT_TRUE(result) << "client " << c << ": " << result.error;
        ASSERT_TRUE(result->SendText("client " + std::to_string(c)));
        clients.push_back(std::move(result.client));
    }
    for (int c = 0; c < kClients; ++c) {
        EXPECT_EQ(clients[c]->Receive(kWait), "client " + std::to_string(c));
    }
    // Every client got its echo, so every session is open.
    EXPECT_EQ(server_->connection_count(), static_cast<std::size_t>(kClients));
    clients.clear();
    EXPECT_TRUE(recorder_->WaitFor([](const Recorder& r) { return r.closed == kClients; }));
    EXPECT_EQ(server_->connection_count(), 0U);
}

TEST_F(TransportWebSocketServer, StopClosesOpenSocketsWith1001AfterQueuedFrames) {
    StartServer();
    ConnectResult flooded = Connect();
    ASSERT_TRUE(flooded) << flooded.error;
    ConnectResult idle = Connect();
    ASSERT_TRUE(idle) << idle.error;
    ASSERT_TRUE(idle->Request("ping"));  // its session is open

    constexpr int kFrames = 5000;  // ~5 MB: more than the socket buffers hold
    ASSERT_TRUE(flooded->SendText("flood:" + std::to_string(kFrames)));
    ASSERT_TRUE(recorder_->WaitFor([](const Recorder& r) { return r.floods_done == 1; }));
    server_->Stop();
    EXPECT_EQ(server_->connection_count(), 0U);
    EXPECT_EQ(Closed(), 2);

    for (int i = 0; i < kFrames; ++i) {
        const auto frame = flooded->Receive(kWait);
        ASSERT_TRUE(frame) << "frame " << i;
        ASSERT_EQ(frame->substr(0, frame->find(':')), std::to_string(i));
    }
    EXPECT_EQ(flooded->WaitClosed(kWait), 1001);
    EXPECT_EQ(flooded->close_reason(), "server shutting down");
    EXPECT_EQ(idle->WaitClosed(kWait), 1001);

    server_->Stop();  // idempotent
    EXPECT_FALSE(HttpGet("127.0.0.1", port_, "/healthz", 2s).status == 200) << "no longer accepting";
}

TEST_F(TransportWebSocketServer, StopIsBoundedWhenAPeerNeverAnswersTheClose) {
    WebSocketOptions options = DefaultOptions();
    options.shutdown_timeout = 300ms;
    StartServer(options);
    auto raw = RawWebSocket(port_);  // will never answer the close frame
    ASSERT_TRUE(raw);
    ASSERT_TRUE(recorder_->WaitFor([](const Recorder& r) { return r.opened == 1; }));

    server_->Stop();
    EXPECT_EQ(Closed(), 1) << "the session got OnClose even though the peer never completed the close";
    EXPECT_EQ(server_->connection_count(), 0U);
    // The close frame was sent anyway: FIN+close opcode, 2+20 byte payload, code 1001.
    const auto close_frame = raw->ReadExactly(4);
    ASSERT_TRUE(close_frame);
    EXPECT_EQ(static_cast<unsigned char>((*close_frame)[0]), 0x88);
    EXPECT_EQ(static_cast<unsigned char>((*close_frame)[2]) * 256 + static_cast<unsigned char>((*close_frame)[3]),
              1001);
}

TEST_F(TransportWebSocketServer, PongTimeoutClosesAPeerThatNeverAnswersPings) {
    WebSocketOptions options = DefaultOptions();
    options.ping_interval = 50ms;
    options.pong_timeout = 100ms;
    StartServer(options);
    WsClientOptions silent;
    silent.auto_pong = false;
    ConnectResult client = Connect(kEchoPath, {}, silent);
    ASSERT_TRUE(client) << client.error;
    EXPECT_EQ(client->WaitClosed(kWait), 1001);
    EXPECT_EQ(client->close_reason(), "pong timeout");
    EXPECT_GE(client->pings_received(), 1U);
    EXPECT_TRUE(recorder_->WaitFor([](const Recorder& r) { return r.closed == 1; }));
}

TEST_F(TransportWebSocketServer, AnsweredPingsKeepTheConnectionOpen) {
    WebSocketOptions options = DefaultOptions();
    options.ping_interval = 20ms;
    options.pong_timeout = 2s;  // generous: a loaded machine must not fail this test
    StartServer(options);
    ConnectResult client = Connect();
    ASSERT_TRUE(client) << client.error;
    // A ping goes out only once the previous one was answered, so 8 pings prove the pongs were seen; if they were
    // not, the server would stop pinging and close the socket when the pong timeout expires.
    ASSERT_TRUE(client->WaitPings(8, kWait));
    EXPECT_TRUE(client->is_open());
    EXPECT_EQ(client->Request("alive"), "alive");
}

TEST_F(TransportWebSocketServer, OutboxSendWorksFromAnotherThreadAndIsANoOpAfterClose) {
    StartServer();
    ConnectResult client = Connect();
    ASSERT_TRUE(client) << client.error;
    std::shared_ptr<Outbox> outbox = OnlyOutbox();
    ASSERT_TRUE(outbox);

    // Pushes from a foreign thread interleave with echo replies; each stream keeps its own order.
    constexpr int kFrames = 500;
    std::thread pusher([&] {
        for (int i = 0; i < kFrames; ++i) {
            outbox->Send("push:" + std::to_string(i));
        }
    });
    for (int i = 0; i < kFrames; ++i) {
        ASSERT_TRUE(client->SendText("echo:" + std::to_string(i)));
    }
    pusher.join();
    int next_push = 0;
    int next_echo = 0;
    while (next_push < kFrames || next_echo < kFrames) {
        const auto frame = client->Receive(kWait);
        ASSERT_TRUE(frame) << "push " << next_push << " echo " << next_echo;
        if (frame->rfind("push:", 0) == 0) {
            ASSERT_EQ(*frame, "push:" + std::to_string(next_push++));
        } else {
            ASSERT_EQ(*frame, "echo:" + std::to_string(next_echo++));
        }
    }

    client->Close();
    EXPECT_EQ(client->WaitClosed(kWait), 1000);
    ASSERT_TRUE(recorder_->WaitFor([](const Recorder& r) { return r.closed == 1; }));
    outbox->Send("too late");  // no-op, no crash
    outbox->Close(1000, "too late");
    EXPECT_EQ(outbox->BufferedBytes(), 0U);
}

TEST_F(TransportWebSocketServer, ASharedPushReachesEverySocketItIsSentToAndInvalidUtf8IsDroppedForAll) {
    StartServer();
    constexpr int kSockets = 3;
    std::vector<ConnectResult> clients;
    for (int i = 0; i < kSockets; ++i) {
        clients.push_back(Connect());
        ASSERT_TRUE(clients.back()) << clients.back().error;
    }
    ASSERT_TRUE(recorder_->WaitFor([](const Recorder& r) { return r.opened == kSockets; }));
    auto outboxes = recorder_->Read<std::vector<std::shared_ptr<Outbox>>>([](const Recorder& r) { return r.outboxes; });
    // One frame object for every socket, sent from several threads at once (the first send prepares it).
    auto frame = std::make_shared<const SharedFrame>("{\"push\":\"caf\xc3\xa9\"}");
    auto invalid = std::make_shared<const SharedFrame>(std::string("{\"bad\":\"\xff\"}"));
    std::vector<std::thread> senders;
    for (const auto& outbox : outboxes) {
        senders.emplace_back([&, outbox] {
            outbox->SendSharedPush(invalid, "k");
            outbox->SendSharedPush(frame, "k");
            outbox->Send("after");
        });
    }
    for (auto& t : senders) t.join();
    for (auto& client : clients) {
        auto first = client->Receive(kWait);
        ASSERT_TRUE(first);
        EXPECT_EQ(*first, frame->text());
        auto second = client->Receive(kWait);
        ASSERT_TRUE(second);
        EXPECT_EQ(*second, "after");
        EXPECT_TRUE(client->is_open());
    }
}

TEST_F(TransportWebSocketServer, BufferedBytesCountsWhatThePeerHasNotTakenYet) {
    WebSocketOptions options = DefaultOptions();
    options.max_queue_bytes = 64 << 20;  // the 32 MiB below stays under the slow-reader limits
    StartServer(options);
    auto raw = RawWebSocket(port_);
    ASSERT_TRUE(raw);
    ASSERT_TRUE(raw->SetReceiveBufferBytes(64 * 1024));  // so that the kernel cannot absorb the flood
    std::shared_ptr<Outbox> outbox = OnlyOutbox();
    ASSERT_TRUE(outbox);
    EXPECT_EQ(outbox->BufferedBytes(), 0U);

    constexpr std::size_t kFrameBytes = 256 * 1024;
    constexpr std::size_t kFrames = 128;  // 32 MiB, far more than the socket buffers hold (~4 MiB here)
    const std::string payload(kFrameBytes, 'z');
    for (std::size_t i = 0; i < kFrames; ++i) {
        outbox->Send(payload);
    }
    EXPECT_GT(outbox->BufferedBytes(), kFrameBytes * kFrames / 2);
    EXPECT_LE(outbox->BufferedBytes(), kFrameBytes * kFrames);

    // Take every frame (10-byte header: 0x81, 127, 8-byte length); the count then drains to zero.
    for (std::size_t i = 0; i < kFrames; ++i) {
        const auto header = raw->ReadExactly(10);
        ASSERT_TRUE(header) << "frame " << i;
        ASSERT_EQ(static_cast<unsigned char>((*header)[0]), 0x81);
        ASSERT_TRUE(raw->ReadExactly(kFrameBytes)) << "frame " << i;
    }
    // The server forgets a frame just after the write completes: poll that short window, with a deadline.
    const auto deadline = std::chrono::steady_clock::now() + kWait;
    while (outbox->BufferedBytes() != 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::yield();
    }
    EXPECT_EQ(outbox->BufferedBytes(), 0U);
}

// Pushes with one key sent from another thread while the reader is paused: the queue stays bounded (a waiting push is
// replaced by the newer one), frames keep their order, and the newest one arrives once the reader reads again.
TEST_F(TransportWebSocketServer, TheLatestPushOfAKeyReachesAReaderThatPaused) {
    StartServer();
    auto raw = RawWebSocket(port_);
    ASSERT_TRUE(raw);
    std::shared_ptr<Outbox> outbox = OnlyOutbox();
    ASSERT_TRUE(outbox);
    constexpr int kPushes = 100000;
    const std::string padding(1200, 'x');
    std::thread pusher([&] {
        for (int i = 0; i < kPushes; ++i) {
            outbox->SendSharedPush(std::make_shared<const SharedFrame>(std::to_string(i) + ":" + padding), "row");
        }
    });
    pusher.join();
    EXPECT_LT(outbox->BufferedBytes(), std::size_t{8} << 20) << "waiting pushes of one key replace each other";
    int last = -1;
    int frames = 0;
    while (last != kPushes - 1) {
        // FIN + text, then a 16-bit length (the frames are 1.2 KB).
        const auto header = raw->ReadExactly(4, kWait);
        ASSERT_TRUE(header) << "no frame after " << frames << " frames (last " << last << ")";
        ASSERT_EQ(static_cast<unsigned char>((*header)[0]), 0x81);
        const std::size_t length =
            static_cast<unsigned char>((*header)[2]) * 256 + static_cast<unsigned char>((*header)[3]);
        const auto body = raw->ReadExactly(length, kWait);
        ASSERT_TRUE(body);
        const int index = std::stoi(body->substr(0, body->find(':')));
        ASSERT_GT(index, last) << "frames out of order";
        last = index;
        ++frames;
    }
    EXPECT_LT(frames, kPushes) << "nothing was replaced";
}

// Sockets whose one write in flight cannot finish (the peer reads nothing: 32 MiB of replies queued against a 64 KiB
// receive buffer), for what waits behind that write.
class StuckWriteTest : public TransportWebSocketServer {
protected:
    static constexpr std::size_t kFillerBytes = 256 * 1024;
    static constexpr std::size_t kFillers = 128;

    // Starts the server with `coalesce_after`, connects, and queues the replies that hold the write.
    void StartStuck(std::chrono::milliseconds coalesce_after) {
        WebSocketOptions options = DefaultOptions();
        options.max_queue_bytes = 64 << 20;  // the replies stay under the slow-reader limits
        options.coalesce_after = coalesce_after;
        options.shutdown_timeout = std::chrono::milliseconds(200);  // the peer never answers the close
        StartServer(options);
        raw_ = RawWebSocket(port_);
        ASSERT_TRUE(raw_);
        ASSERT_TRUE(raw_->SetReceiveBufferBytes(64 * 1024));
        outbox_ = OnlyOutbox();
        ASSERT_TRUE(outbox_);
        const std::string filler(kFillerBytes, 'z');
        for (std::size_t i = 0; i < kFillers; ++i) outbox_->Send(filler);
    }

    // Reads the replies back (each: a 10-byte header, 0x81, 127, 8-byte length, then the payload), then the small
    // text frames after them up to "end" (not included).
    std::vector<std::string> ReadAfterFillers() {
        for (std::size_t i = 0; i < kFillers; ++i) {
            const auto header = raw_->ReadExactly(10, kWait);
            const auto payload = header ? raw_->ReadExactly(kFillerBytes, kWait) : std::nullopt;
            EXPECT_TRUE(payload) << "filler " << i;
            if (!payload) return {};
        }
        std::vector<std::string> frames;
        for (;;) {
            const auto header = raw_->ReadExactly(2, kWait);
            EXPECT_TRUE(header && static_cast<unsigned char>((*header)[0]) == 0x81) << "after " << frames.size();
            if (!header || static_cast<unsigned char>((*header)[0]) != 0x81) return frames;
            std::size_t length = static_cast<unsigned char>((*header)[1]);
            if (length == 126) {
                const auto extended = raw_->ReadExactly(2, kWait);
                if (!extended) return frames;
                length = static_cast<unsigned char>((*extended)[0]) * 256 + static_cast<unsigned char>((*extended)[1]);
            }
            const auto frame = raw_->ReadExactly(length, kWait);
            EXPECT_TRUE(frame);
            if (!frame || *frame == "end") return frames;
            frames.push_back(*frame);
        }
    }

    // 200 versions of one row's push, then "end".
    void PushVersions() {
        for (int v = 1; v <= kVersions; ++v) {
            outbox_->SendSharedPush(std::make_shared<const SharedFrame>("v" + std::to_string(v)), "row");
        }
        outbox_->Send("end");
    }

    static constexpr int kVersions = 200;
    std::optional<TcpConnection> raw_;
    std::shared_ptr<Outbox> outbox_;
};

// Until the oldest waiting frame has waited coalesce_after, every version of a row waits behind the write and
// arrives, in order: a socket that is not behind loses nothing.
TEST_F(StuckWriteTest, EveryVersionOfARowWaitsWhileTheSocketIsNotBehind) {
    StartStuck(std::chrono::hours(1));
    PushVersions();
    const std::vector<std::string> frames = ReadAfterFillers();
    ASSERT_EQ(frames.size(), static_cast<std::size_t>(kVersions));
    for (int v = 1; v <= kVersions; ++v) EXPECT_EQ(frames[static_cast<std::size_t>(v - 1)], "v" + std::to_string(v));
}

// Behind (coalesce_after 0: as soon as anything waits), each version replaces the one waiting: only the last
// arrives, and it is counted as coalesced.
TEST_F(StuckWriteTest, BehindEachVersionOfARowReplacesTheWaitingOne) {
    StartStuck(std::chrono::milliseconds(0));
    const std::uint64_t before = server_->stats().pushes_replaced;
    PushVersions();
    EXPECT_EQ(server_->stats().pushes_replaced - before, static_cast<std::uint64_t>(kVersions - 1));
    EXPECT_EQ(ReadAfterFillers(), std::vector<std::string>{"v" + std::to_string(kVersions)});
}

// Versions queued while the socket was not behind, still waiting once it is: the next write carries the newest
// version of the row only (the older ones are counted as coalesced), not every stale one.
TEST_F(StuckWriteTest, OnceBehindTheNextWriteCarriesOnlyTheNewestWaitingVersionOfARow) {
    constexpr auto kCoalesceAfter = std::chrono::seconds(2);  // the fillers and pushes are queued well within it
    StartStuck(kCoalesceAfter);
    const std::uint64_t before = server_->stats().pushes_replaced;
    PushVersions();
    ASSERT_EQ(server_->stats().pushes_replaced, before) << "queued while not behind: every version waits";
    std::this_thread::sleep_for(kCoalesceAfter + std::chrono::milliseconds(100));
    EXPECT_EQ(ReadAfterFillers(), std::vector<std::string>{"v" + std::to_string(kVersions)});
    EXPECT_EQ(server_->stats().pushes_replaced - before, static_cast<std::uint64_t>(kVersions - 1));
}

// A newer push replacing a waiting one goes to the back of the queue: a reply queued after the older push still
// arrives before it (the writer's reply before the push its own change causes, PROTOCOL.md section 6).
TEST_F(StuckWriteTest, APushThatReplacesAWaitingOneGoesAfterTheRepliesQueuedMeanwhile) {
    StartStuck(std::chrono::milliseconds(0));
    outbox_->SendSharedPush(std::make_shared<const SharedFrame>("other row"), "other");
    outbox_->SendSharedPush(std::make_shared<const SharedFrame>("update 1"), "row");
    outbox_->Send("reply");
    outbox_->SendSharedPush(std::make_shared<const SharedFrame>("update 2"), "row");
    outbox_->Send("end");
    EXPECT_EQ(ReadAfterFillers(), (std::vector<std::string>{"other row", "reply", "update 2"}));
}

// Held pushes (Outbox::HoldPushes, the session's bracket around each request) wait behind the replies queued
// meanwhile, a held push is replaced by a newer one of its row, and the holds nest as a count: the first release of
// two lets nothing go, the second lets them go in order.
TEST_F(TransportWebSocketServer, HeldPushesWaitForTheRepliesAndTheHoldsNest) {
    StartServer();
    ConnectResult client = Connect();
    ASSERT_TRUE(client) << client.error;
    std::shared_ptr<Outbox> outbox = OnlyOutbox();
    ASSERT_TRUE(outbox);
    const std::uint64_t replaced = server_->stats().pushes_replaced;
    outbox->HoldPushes();
    outbox->HoldPushes();
    outbox->SendSharedPush(std::make_shared<const SharedFrame>("row 1"), "row");
    outbox->SendPush("other row", "other");
    outbox->Send("reply 1");
    outbox->ReleasePushes();  // one hold remains
    outbox->Send("reply 2");
    outbox->SendSharedPush(std::make_shared<const SharedFrame>("row 2"), "row");
    outbox->ReleasePushes();
    outbox->Send("after");
    for (const char* expected : {"reply 1", "reply 2", "other row", "row 2", "after"}) {
        const auto frame = client->Receive(kWait);
        ASSERT_TRUE(frame) << "waiting for " << expected;
        EXPECT_EQ(*frame, expected);
    }
    EXPECT_EQ(server_->stats().pushes_replaced - replaced, 1U);
}

// A request that never ends (a detached writer stuck on something) while its row changes 100,000 times: the held
// tail keeps one version of the row, so the socket's queue stays one frame, and the last version arrives on release.
TEST_F(TransportWebSocketServer, AHoldThatLastsKeepsOneHeldVersionOfARow) {
    WebSocketOptions options = DefaultOptions();
    options.coalesce_after = std::chrono::hours(1);  // never behind: only the hold replaces
    options.max_queue_bytes = 256 << 20;             // so that without the rule the test fails on bytes, not a close
    StartServer(options);
    ConnectResult client = Connect();
    ASSERT_TRUE(client) << client.error;
    std::shared_ptr<Outbox> outbox = OnlyOutbox();
    ASSERT_TRUE(outbox);
    const std::string padding(1000, 'x');
    outbox->HoldPushes();
    for (int v = 1; v <= 100000; ++v) outbox->SendPush(std::to_string(v) + ":" + padding, "row");
    EXPECT_LT(outbox->BufferedBytes(), std::size_t{2000}) << "held versions of one row replace each other";
    outbox->ReleasePushes();
    const auto frame = client->Receive(kWait);
    ASSERT_TRUE(frame);
    EXPECT_EQ(frame->substr(0, frame->find(':')), "100000");
}

// A push queued before a hold is not held: it goes before the reply, and a push of its row queued while held goes
// after the reply, whether or not the first one was written yet (here it cannot be: the write is stuck).
TEST_F(StuckWriteTest, APushQueuedBeforeTheHoldGoesFirstAndItsRowsHeldVersionAfterTheReply) {
    StartStuck(std::chrono::hours(1));
    outbox_->SendSharedPush(std::make_shared<const SharedFrame>("update 1"), "row");
    outbox_->HoldPushes();
    outbox_->SendSharedPush(std::make_shared<const SharedFrame>("update 2"), "row");
    outbox_->SendSharedPush(std::make_shared<const SharedFrame>("update 3"), "row");
    outbox_->Send("reply");
    outbox_->ReleasePushes();
    outbox_->Send("end");
    EXPECT_EQ(ReadAfterFillers(), (std::vector<std::string>{"update 1", "reply", "update 3"}));
}

// Behind, a push replacing a waiting version of its row while pushes are held joins the held ones: it still goes
// after the reply.
TEST_F(StuckWriteTest, BehindAPushThatReplacesAWaitingOneWhileHeldGoesAfterTheReply) {
    StartStuck(std::chrono::milliseconds(0));
    outbox_->SendSharedPush(std::make_shared<const SharedFrame>("update 1"), "row");
    outbox_->HoldPushes();
    outbox_->SendSharedPush(std::make_shared<const SharedFrame>("update 2"), "row");
    outbox_->Send("reply");
    outbox_->ReleasePushes();
    outbox_->Send("end");
    EXPECT_EQ(ReadAfterFillers(), (std::vector<std::string>{"reply", "update 2"}));
}

// A peer that floods pings and reads nothing is owed one pong at a time (the latest ping's): the server queues at most
// two pongs for it (websocketpp used to queue one per ping, without limit), serves other sockets meanwhile, and closes
// it once it misses the server's own pings (it reads nothing, so it never answers them).
TEST_F(TransportWebSocketServer, APeerThatFloodsPingsAndNeverReadsCostsOnePongAndIsClosed) {
    WebSocketOptions options = DefaultOptions();
    options.ping_interval = 100ms;
    // The other client answers the server's pings too: 400 ms was too short for it under ThreadSanitizer on a loaded
    // machine (it was closed for a missed pong, and its request got no answer).
    options.pong_timeout = 2s;
    StartServer(options);
    auto raw = RawWebSocket(port_);
    ASSERT_TRUE(raw);
    ASSERT_TRUE(raw->SetSendTimeout(2s));
    std::shared_ptr<Outbox> outbox = OnlyOutbox();
    ASSERT_TRUE(outbox);
    ConnectResult other = Connect();
    ASSERT_TRUE(other) << other.error;

    // Masked pings with a zero key (so the payload goes as is) and the largest payload a control frame may carry.
    std::string ping("\x89\xfd\x00\x00\x00\x00", 6);
    ping += std::string(125, 'p');
    std::string batch;
    for (int i = 0; i < 1000; ++i) batch += ping;
    std::atomic<bool> stop{false};
    std::thread flooder([&] {
        while (!stop.load() && raw->SendAll(batch)) {
        }
    });
    struct StopOnExit {
        ~StopOnExit() {
            stop = true;
            thread.join();
        }
        std::atomic<bool>& stop;
        std::thread& thread;
    } stop_on_exit{stop, flooder};

    std::size_t most_queued = 0;
    // Measured: the flooder is closed after 6-8 s here (RelWithDebInfo and TSan alike); 30 s leaves room for a loaded CI.
    const auto deadline = std::chrono::steady_clock::now() + 3 * kWait;
    while (Closed() == 0 && std::chrono::steady_clock::now() < deadline) {
        most_queued = std::max(most_queued, outbox->BufferedBytes());
        ASSERT_EQ(other->Request("still served"), "still served");
    }
    EXPECT_EQ(Closed(), 1) << "the flooding peer was not closed";
    EXPECT_LE(most_queued, 2u * 125) << "more than one pong queued (plus one waiting)";
    EXPECT_EQ(other->Request("after"), "after");
}

// The raw HTTP response to a websocket handshake on a fresh socket (the server closes the socket after a refusal).
std::string RawHandshakeResponse(std::uint16_t port) {
    auto raw = TcpConnection::Connect("127.0.0.1", port);
    if (!raw || !raw->SendAll("GET /ws/echo/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n\r\n")) {
        return "";
    }
    return raw->ReadToEof(kWait).value_or("");
}

TEST_F(TransportWebSocketServer, AtMaxConnectionsAHandshakeGets503AndHealthzStillAnswers) {
    WebSocketOptions options = DefaultOptions();
    options.max_connections = 5;
    StartServer(options);
    std::vector<ConnectResult> clients;
    for (int i = 0; i < 5; ++i) {
        clients.push_back(Connect());
        ASSERT_TRUE(clients.back()) << "client " << i << ": " << clients.back().error;
    }
    ConnectResult sixth = Connect();
    EXPECT_FALSE(sixth);
    EXPECT_EQ(sixth.http_status, 503);
    const std::string response = RawHandshakeResponse(port_);
    EXPECT_EQ(response.rfind("HTTP/1.1 503", 0), 0U) << response;
    EXPECT_NE(response.find("Content-Type: application/json"), std::string::npos) << response;
    EXPECT_NE(response.find(R"({"detail":"Too many connections: the server's limit (max_connections 5) is reached. )"
                            R"(Try again later."})"),
              std::string::npos)
        << response;
    const auto health = HttpGet("127.0.0.1", port_, "/healthz");
    EXPECT_EQ(health.status, 200) << health.error;
    EXPECT_EQ(Opened(), 5);
    for (auto& client : clients) {
        EXPECT_EQ(client->Request("still served"), "still served");
    }
    // Closing one lets a new one in (once the server has seen the close).
    clients[0].client.reset();
    ASSERT_TRUE(recorder_->WaitFor([](const Recorder& r) { return r.closed == 1; }));
    ConnectResult again = Connect();
    ASSERT_TRUE(again) << again.error << " (HTTP " << again.http_status << ")";
    EXPECT_EQ(again->Request("in"), "in");
    EXPECT_EQ(Connect().http_status, 503);
}

// Sockets that never finish a handshake cannot hold every descriptor: beyond max_handshakes, the oldest is closed
// (long before websocketpp's own 5 s handshake timeout), and /healthz and new handshakes are served.
TEST_F(TransportWebSocketServer, BeyondMaxHandshakesTheOldestSocketInItsHandshakeIsClosed) {
    WebSocketOptions options = DefaultOptions();
    options.max_handshakes = 4;
    StartServer(options);
    std::vector<TcpConnection> idle;
    for (int i = 0; i < 4; ++i) {
        auto raw = TcpConnection::Connect("127.0.0.1", port_);
        ASSERT_TRUE(raw);
        ASSERT_TRUE(raw->SendAll("GET /ws/echo/ HTTP/1.1\r\n"));  // and nothing more
        idle.push_back(std::move(*raw));
    }
    // Every one of them is still open: nothing arrives and the socket has not ended.
    EXPECT_FALSE(idle[0].ReadToEof(200ms)) << "closed while the limit was not exceeded";
    // Two more: the two oldest are closed to make room.
    for (int i = 0; i < 2; ++i) {
        auto raw = TcpConnection::Connect("127.0.0.1", port_);
        ASSERT_TRUE(raw);
        ASSERT_TRUE(raw->SendAll("GET /ws/echo/ HTTP/1.1\r\n"));
        idle.push_back(std::move(*raw));
    }
    // websocketpp's own handshake timeout (5 s) would close them all at about the same time; eviction closes the two
    // oldest at once and leaves the others open.
    EXPECT_TRUE(idle[0].ReadToEof(3s)) << "the oldest socket in its handshake was not closed";
    EXPECT_TRUE(idle[1].ReadToEof(3s)) << "the second oldest socket in its handshake was not closed";
    EXPECT_FALSE(idle[2].ReadToEof(0ms)) << "a socket within the limit was closed";
    EXPECT_FALSE(idle[5].ReadToEof(0ms)) << "the newest one was closed";
    // A websocket connection is never a candidate: it was promoted when its handshake was accepted.
    ConnectResult client = Connect();
    ASSERT_TRUE(client) << client.error;
    for (int i = 0; i < 8; ++i) {
        auto raw = TcpConnection::Connect("127.0.0.1", port_);
        ASSERT_TRUE(raw);
        idle.push_back(std::move(*raw));
    }
    EXPECT_EQ(client->Request("alive"), "alive");
    const auto health = HttpGet("127.0.0.1", port_, "/healthz");
    EXPECT_EQ(health.status, 200) << health.error;
}

// A burst of honest clients larger than max_handshakes (everyone reconnecting after a restart) is served: a socket in
// its handshake is only closed for room once it has had handshake_grace to finish.
TEST_F(TransportWebSocketServer, ABurstOfHandshakesLargerThanMaxHandshakesIsServedWithinTheGrace) {
    WebSocketOptions options = DefaultOptions();
    options.max_handshakes = 4;
    options.handshake_grace = 5s;  // far longer than this test needs, even on a loaded machine
    StartServer(options);
    // Twelve sockets in their handshake at once: each sends its request line and waits, as a slow network would.
    std::vector<TcpConnection> burst;
    for (int i = 0; i < 12; ++i) {
        auto raw = TcpConnection::Connect("127.0.0.1", port_);
        ASSERT_TRUE(raw);
        ASSERT_TRUE(raw->SendAll("GET /ws/echo/ HTTP/1.1\r\n"));
        burst.push_back(std::move(*raw));
    }
    // Then every one finishes its handshake, the oldest first, and is answered 101.
    for (std::size_t i = 0; i < burst.size(); ++i) {
        ASSERT_TRUE(burst[i].SendAll("Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"))
            << "socket " << i << " was closed before it could finish its handshake";
        const auto head = burst[i].ReadUntil("\r\n\r\n");
        ASSERT_TRUE(head) << "socket " << i << " of the burst was not answered";
        EXPECT_EQ(head->rfind("HTTP/1.1 101", 0), 0u) << *head;
    }
    EXPECT_TRUE(recorder_->WaitFor([](const Recorder& r) { return r.opened == 12; }));
}

TEST_F(TransportWebSocketServer, SessionCloseSendsQueuedFramesFirst) {
    StartServer();
    ConnectResult client = Connect();
    ASSERT_TRUE(client) << client.error;
    ASSERT_TRUE(client->SendText("close:4000"));
    EXPECT_EQ(client->Receive(), "bye");
    EXPECT_EQ(client->WaitClosed(kWait), 4000);
    EXPECT_EQ(client->close_reason(), "requested");
}

TEST_F(TransportWebSocketServer, ASessionExceptionIsLoggedAndTheSocketStaysOpen) {
    StartServer();
    ConnectResult client = Connect();
    ASSERT_TRUE(client) << client.error;
    ConnectResult other = Connect();
    ASSERT_TRUE(other) << other.error;
    ASSERT_TRUE(client->SendText("throw"));
    EXPECT_EQ(client->Request("after"), "after");
    EXPECT_EQ(other->Request("unaffected"), "unaffected");
}

TEST_F(TransportWebSocketServer, AnOpenExceptionClosesThatSocketWith1011) {
    StartServer();
    ConnectResult client = Connect("/ws/echo/?open_throws=1");
    ASSERT_TRUE(client) << client.error;
    EXPECT_EQ(client->WaitClosed(kWait), 1011);
    ConnectResult other = Connect();
    ASSERT_TRUE(other) << other.error;
    EXPECT_EQ(other->Request("fine"), "fine");
}

TEST_F(TransportWebSocketServer, BindFailureNamesHostAndPort) {
    StartServer();
    WebSocketOptions options = DefaultOptions();
    options.port = port_;
    WebSocketServer second(options);
    try {
        second.Start();
        FAIL() << "binding a port in use must throw";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(port_)), std::string::npos) << e.what();
    }
}

TEST_F(TransportWebSocketServer, RouteAfterStartIsRejected) {
    StartServer();
    EXPECT_THROW(server_->Route("/late/", endpoint_), std::logic_error);
}

// Runs server.Run() on a thread of its own, blocking SIGTERM and SIGINT there first when `block_stop_signals`; if the
// test ends before Run returns, Stop() wakes it and the thread is joined.
class RunThread {
public:
    RunThread(WebSocketServer& server, bool block_stop_signals) : server_(server) {
        thread_ = std::thread([this, block_stop_signals] {
            if (block_stop_signals) {
                sigset_t stop_signals;
                sigemptyset(&stop_signals);
                sigaddset(&stop_signals, SIGINT);
                sigaddset(&stop_signals, SIGTERM);
                pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
            }
            exit_code_ = server_.Run();
        });
    }
    ~RunThread() {
        if (thread_.joinable()) Join();
    }
    RunThread(const RunThread&) = delete;
    RunThread& operator=(const RunThread&) = delete;
    std::thread::native_handle_type handle() { return thread_.native_handle(); }
    // Stop() waits for Run's own Stop to finish; then Run's return value.
    int Join() {
        server_.Stop();
        thread_.join();
        return exit_code_;
    }

private:
    WebSocketServer& server_;
    int exit_code_ = -1;
    std::thread thread_;
};

// Polls (bounded) until the server Run started listens; Run sets up its signal handling before it listens.
std::uint16_t WaitListening(const WebSocketServer& server) {
    const auto deadline = std::chrono::steady_clock::now() + kWait;
    while (server.port() == 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::yield();
    }
    return server.port();
}

TEST_F(TransportWebSocketServer, RunReturnsZeroAfterSigtermAndClosesSocketsWith1001) {
    server_ = std::make_unique<WebSocketServer>(DefaultOptions());
    server_->Route(kEchoPath, endpoint_);
    RunThread runner(*server_, false);
    port_ = WaitListening(*server_);
    ASSERT_NE(port_, 0);
    ConnectResult client = Connect();
    ASSERT_TRUE(client) << client.error;
    ASSERT_EQ(client->Request("before"), "before");

    ASSERT_EQ(::kill(::getpid(), SIGTERM), 0);
    EXPECT_EQ(client->WaitClosed(kWait), 1001);
    EXPECT_TRUE(recorder_->WaitFor([](const Recorder& r) { return r.closed == 1; }));
    EXPECT_EQ(server_->connection_count(), 0U);
    EXPECT_EQ(runner.Join(), 0);
}

// A calling thread that blocks SIGTERM and SIGINT (as the syncline binary's threads all do): Run reads the signal from
// a signalfd. Sent to that thread alone, it is never delivered to a handler anywhere, so only the signalfd sees it.
TEST_F(TransportWebSocketServer, RunReadsSigtermFromASignalfdWhenTheCallingThreadBlocksIt) {
    server_ = std::make_unique<WebSocketServer>(DefaultOptions());
    server_->Route(kEchoPath, endpoint_);
    RunThread runner(*server_, true);
    port_ = WaitListening(*server_);
    ASSERT_NE(port_, 0);
    ConnectResult client = Connect();
    ASSERT_TRUE(client) << client.error;
    ASSERT_EQ(client->Request("before"), "before");

    ASSERT_EQ(pthread_kill(runner.handle(), SIGTERM), 0);
    EXPECT_EQ(client->WaitClosed(kWait), 1001);
    EXPECT_TRUE(recorder_->WaitFor([](const Recorder& r) { return r.closed == 1; }));
    EXPECT_EQ(runner.Join(), 0);
}

}  // namespace
}  // namespace syncline::transport
