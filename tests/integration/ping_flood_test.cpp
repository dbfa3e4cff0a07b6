// A client that floods pings and never reads (issue 9, item 3) against `syncline serve`: websocketpp used to answer
// every ping with a pong of its own, queued without limit, so the server's memory grew by the size of the flood. Pongs
// now go through the connection's outbox (at most one outstanding, the latest ping's), so memory stays bounded, and
// another client keeps being served meanwhile.

#include <syncline/test_support/serve_process.hpp>
#include <syncline/test_support/ws_client.hpp>

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <thread>

#include "raw_ws.hpp"

namespace syncline {
namespace {

using namespace std::chrono_literals;
using test_support::RssKiB;
using test_support::WsClient;
using testing::RawWebSocket;

class PingFloodTest : public ::testing::Test {
protected:
    void StartServer() {
        // No server pings: the flooding socket must stay open for the whole flood, whatever the machine's speed.
        std::string config =
            test_support::WriteConfig(dir_, R"({"database": "blog.db", "workers": 2, "ping_interval_ms": 0,
            "models": {"posts": {"fields": {"id": {"type": "integer", "primary_key": true},
                                            "title": {"type": "text", "max_length": 100}}}},
            "routes": {"/ws/posts/": {"model": "posts", "mixins": ["list", "create"]}}})");
        server_ = std::make_unique<test_support::ServeProcess>(config, dir_.File("server.log"));
        port_ = server_->port();
        ASSERT_TRUE(server_->WaitHealthy()) << server_->Output();
    }

    test_support::TempDir dir_;
    std::uint16_t port_ = 0;
    std::unique_ptr<test_support::ServeProcess> server_;
};

TEST_F(PingFloodTest, PongsToAClientThatNeverReadsStayBoundedAndAnotherClientIsServed) {
    StartServer();
    auto victim = WsClient::Connect("127.0.0.1", port_, "/ws/posts/");
    ASSERT_TRUE(victim) << victim.error;
    auto flood = RawWebSocket::Open(port_, "/ws/posts/");
    ASSERT_TRUE(flood);
    // The client's receive buffer stays at its default: a tiny one makes loopback TCP stall the client's own sends
    // (the server then advertises a zero window), which floods nothing.
    ASSERT_TRUE(flood->SetSendTimeout(5s));  // never block for long on a server that stopped reading

    // 1,000 pings with the largest payload a control frame may carry (125 bytes) per write.
    std::string batch;
    for (int i = 0; i < 1000; ++i) batch += RawWebSocket::Frame(0x89, std::string(125, 'p'));
    constexpr long kMaxPings = 400000;  // ~53 MB of pings; unbounded pongs cost far more than that in the server
    auto created = victim->Request(R"({"action": "create", "request_id": 0, "data": {"title": "victim"}})", 10s);
    ASSERT_TRUE(created && created->find("\"response_status\":201") != std::string::npos);
    const long rss_before = RssKiB(server_->pid());
    std::atomic<long> pings_sent{0};
    std::atomic<bool> flood_failed{false};
    std::atomic<bool> flood_done{false};
    std::thread flooder([&] {
        const auto stop_at = std::chrono::steady_clock::now() + 3s;
        while (pings_sent.load() < kMaxPings && std::chrono::steady_clock::now() < stop_at) {
            if (!flood->SendBytes(batch)) {
                flood_failed = true;
                break;
            }
            pings_sent += 1000;
        }
        flood_done = true;
    });
    struct JoinOnExit {
        ~JoinOnExit() { thread.join(); }
        std::thread& thread;
    } join_on_exit{flooder};

    // The victim keeps being answered while the flood runs.
    int replies = 0;
    while (!flood_done.load()) {
        auto reply = victim->Request(R"({"action": "list", "request_id": 1})", 10s);
        ASSERT_TRUE(reply) << "the victim got no reply during the flood";
        ASSERT_NE(reply->find("\"title\":\"victim\""), std::string::npos) << *reply;
        ++replies;
    }
    EXPECT_FALSE(flood_failed.load()) << "the server stopped reading the flooding socket or closed it: "
                                      << server_->Output();
    // The server has read most of the flood by now; one more reply on the victim, then RSS.
    auto after = victim->Request(R"({"action": "list", "request_id": 2})", 10s);
    ASSERT_TRUE(after) << "the victim got no reply after the flood";
    EXPECT_NE(after->find("\"response_status\":200"), std::string::npos) << *after;
    const long rss_after = RssKiB(server_->pid());
    std::printf("ping flood: %ld pings sent, %d victim replies meanwhile, server RSS %ld -> %ld KiB\n",
                pings_sent.load(), replies, rss_before, rss_after);
    EXPECT_GE(pings_sent.load(), 20000) << "the flood was too small to show anything";
#if !defined(__SANITIZE_ADDRESS__)
    // AddressSanitizer's quarantine keeps freed memory resident, so RSS follows allocation churn there.
    EXPECT_LT(rss_after - rss_before, 16 * 1024) << "server grew from " << rss_before << " to " << rss_after << " KiB";
#endif
    EXPECT_FALSE(server_->Wait(0ms)) << "the server died: " << server_->Output();
}

}  // namespace
}  // namespace syncline
