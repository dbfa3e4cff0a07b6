// Every attack of issue 9 at once, against `syncline serve`, while a victim client keeps working: the victim's
// replies and pushes stay correct and arrive in time, /healthz keeps answering, and the server's memory stays
// bounded. Attackers: deep nesting, text that is not Unicode, oversized request_ids and `__in` lists, filter oracles
// and `since` probes, a ping flood that never reads, subscription floods that never read, streamed lists that never
// read, list subscriptions with the largest filters allowed, and a connection flood up to max_connections.

#include <syncline/test_support/serve_process.hpp>
#include <syncline/test_support/ws_client.hpp>

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "raw_ws.hpp"

namespace syncline {
namespace {

using namespace std::chrono_literals;
using test_support::HttpGet;
using test_support::RssKiB;
using test_support::WsClient;
using testing::RawWebSocket;
using Clock = std::chrono::steady_clock;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr int kSlowdown = 4;  // sanitizers: everything is several times slower
#else
constexpr int kSlowdown = 1;
#endif

std::string Nested(std::size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

std::string Values(int n) {
    std::string list = "[";
    for (int i = 0; i < n; ++i) list += (i ? "," : "") + std::to_string(i + 1);
    return list + "]";
}

// The frames a hostile client cycles through; each answered with an error, none may hurt anyone else.
std::vector<std::pair<std::string, std::string>> HostileFrames() {
    const std::string deep = Nested(90000);
    return {
        {"/ws/posts/", R"({"action":"list","request_id":)" + deep + "}"},
        {"/ws/posts/", R"({"action":"create","request_id":1,"data":{"title":)" + deep + "}}"},
        {"/ws/", R"({"stream":"posts","payload":{"action":"list","request_id":)" + deep + "}}"},
        {"/ws/api/", R"({"action":"list","route":"posts/","request_id":)" + deep + "}"},
        {"/ws/posts/", R"({"action":"create","request_id":3,"data":{"title":"\udc00"}})"},
        {"/ws/posts/", R"({"action":"list","request_id":"\udc00"})"},
        {"/ws/posts/", R"({"action":"list","request_id":")" + std::string(100000, 'x') + "\"}"},
        {"/ws/posts/", R"({"action":"list","request_id":4,"filter":{"id__in":)" + Values(60000) + "}}"},
        {"/ws/posts/", R"({"action":"subscribe_list","request_id":5,"filter":{"secret__startswith":"h"}})"},
        {"/ws/visible/", R"({"action":"subscribe_instance","request_id":6,"pk":2,"since":0})"},
        {"/ws/posts/", R"({"action":"retrieve","request_id":7,"pk":"9999999999999999999"})"},
    };
}

class AbuseTest : public ::testing::Test {
protected:
    static constexpr int kRows = 400;

    void SetUp() override {
        std::string config =
            test_support::WriteConfig(dir_, R"({"database": "blog.db", "workers": 2, "action_threads": 2,
            "max_connections": 150, "max_queue_bytes": 262144, "slow_reader_timeout_ms": 1000,
            "models": {"posts": {"fields": {"id": {"type": "integer", "primary_key": true},
                "title": {"type": "text", "max_length": 100}, "author": {"type": "text", "blank": true, "default": ""},
                "secret": {"type": "text", "blank": true, "default": ""}, "hidden": {"type": "boolean", "default": false}}}},
            "routes": {
              "/ws/posts/": {"model": "posts", "fields": ["id", "title", "author", "secret"], "write_only": ["secret"],
                             "filter_fields": ["author", "id"],
                             "mixins": ["list", "retrieve", "create", "patch", "observe_instance", "observe_list"]},
              "/ws/stream/": {"model": "posts", "fields": ["id", "title"], "mixins": ["retrieve"],
                              "pagination": "streamed", "page_size": 1, "max_page_size": 1000},
              "/ws/visible/": {"model": "posts", "queryset": {"hidden": false}, "mixins": ["observe_instance"]},
              "/ws/": {"streams": {"posts": "/ws/posts/"}},
              "/ws/api/": {"routepatterns": {"^posts/$": {"model": "posts", "fields": ["id", "title"],
                                                          "handler": "ListCreateAPIActionHandler"}}}}})");
        server_ = std::make_unique<test_support::ServeProcess>(config, dir_.File("server.log"));
        port_ = server_->port();
        ASSERT_TRUE(server_->WaitHealthy()) << server_->Output();
        auto seed = Connect("/ws/posts/");
        ASSERT_TRUE(seed);
        for (int i = 1; i <= kRows; ++i) {
            ASSERT_TRUE(seed->SendText(R"({"action":"create","request_id":)" + std::to_string(i) +
                                       R"(,"data":{"title":"row )" + std::to_string(i) + R"(","author":"a"}})"));
        }
        for (int i = 1; i <= kRows; ++i) ASSERT_TRUE(seed->Receive(10s)) << "seeding row " << i;
    }

    std::unique_ptr<WsClient> Connect(const std::string& path) {
        auto result = WsClient::Connect("127.0.0.1", port_, path);
        return std::move(result.client);
    }

    // Runs `attack` on its own thread until the test stops the attackers.
    void Attack(std::function<void()> attack) {
        attackers_.emplace_back([this, attack = std::move(attack)] {
            while (!stop_.load()) attack();
        });
    }

    void StopAttackers() {
        stop_.store(true);
        for (auto& t : attackers_) t.join();
        attackers_.clear();
    }

    void TearDown() override { StopAttackers(); }

    test_support::TempDir dir_;
    std::uint16_t port_ = 0;
    std::unique_ptr<test_support::ServeProcess> server_;
    std::atomic<bool> stop_{false};
    std::atomic<long> refused_{0};       // hostile frames answered with a 4xx
    std::atomic<std::size_t> held_{0};  // connections the flood got before the server answered 503
    std::vector<std::thread> attackers_;
};

TEST_F(AbuseTest, AVictimStaysServedWhileAttackersRunEveryAttackAtOnce) {
    // The victim connects first (the connection flood below fills the server up to max_connections).
    auto writer = Connect("/ws/posts/");
    auto watcher = Connect("/ws/posts/");
    auto streamer = Connect("/ws/stream/");
    ASSERT_TRUE(writer && watcher && streamer);
    auto subscribed = watcher->Request(R"({"action":"subscribe_instance","pk":1,"request_id":"v"})");
    ASSERT_TRUE(subscribed && subscribed->find(R"("response_status":201)") != std::string::npos);
    const long rss_before = RssKiB(server_->pid());

    // 1. Garbage of every kind, from two sockets per route, reconnecting whenever closed.
    for (int n = 0; n < 2; ++n) {
        Attack([this, frames = HostileFrames(), i = std::size_t{0}]() mutable {
            const auto& [path, frame] = frames[i++ % frames.size()];
            auto ws = Connect(path);
            for (int k = 0; ws && k < 20 && !stop_.load(); ++k) {
                if (!ws->SendText(frame)) break;
                if (auto reply = ws->Receive(2s); reply && reply->find(R"("response_status":4)") != std::string::npos) {
                    ++refused_;
                }
            }
        });
    }
    // 2. A ping flood that never reads.
    Attack([this] {
        auto raw = RawWebSocket::Open(port_, "/ws/posts/");
        if (!raw) return;
        raw->SetReceiveBufferBytes(4096);
        raw->SetSendTimeout(200ms);
        std::string pings;
        for (int i = 0; i < 500; ++i) pings += RawWebSocket::Frame(0x89, std::string(125, 'p'));
        while (!stop_.load() && raw->SendBytes(pings)) {
        }
    });
    // 3. 1,000 subscriptions (the limit) to the victim's row, then never read: its pushes pile up until the server
    //    closes it as a slow reader.
    Attack([this] {
        auto raw = RawWebSocket::Open(port_, "/ws/posts/");
        if (!raw) return;
        raw->SetReceiveBufferBytes(4096);
        raw->SetSendTimeout(200ms);
        std::string subscribes;
        for (int i = 0; i < 1100; ++i) {
            subscribes += RawWebSocket::Frame(0x81, R"({"action":"subscribe_instance","pk":1,"request_id":)" +
                                                        std::to_string(i) + "}");
        }
        raw->SendBytes(subscribes);
        while (!stop_.load() && raw->SendBytes(RawWebSocket::Frame(0x89, ""))) std::this_thread::sleep_for(50ms);
    });
    // 4. Two streamed lists of the whole table that are never read (with two action threads).
    for (int n = 0; n < 2; ++n) {
        Attack([this] {
            auto raw = RawWebSocket::Open(port_, "/ws/stream/");
            if (!raw) return;
            raw->SetReceiveBufferBytes(4096);
            raw->SetSendTimeout(200ms);
            raw->SendText(R"({"action":"list","request_id":"hog"})");
            raw->SendText(R"({"action":"list","request_id":"hog2"})");
            while (!stop_.load() && raw->SendBytes(RawWebSocket::Frame(0x89, ""))) std::this_thread::sleep_for(50ms);
        });
    }
    // 5. List subscriptions with the largest filters allowed, as many as allowed, read normally.
    Attack([this] {
        auto ws = Connect("/ws/posts/");
        if (!ws) return;
        for (int i = 0; i < 1000 && !stop_.load(); ++i) {
            ws->SendText(R"({"action":"subscribe_list","request_id":)" + std::to_string(i) +
                         R"(,"filter":{"id__in":)" + Values(1000) + "}}");
            ws->Receive(2s);
        }
        while (!stop_.load() && ws->is_open()) ws->Receive(200ms);
    });
    // 6. A connection flood up to max_connections, held.
    Attack([this] {
        std::vector<RawWebSocket> held;
        while (!stop_.load() && held.size() < 400) {
            auto ws = RawWebSocket::Open(port_, "/ws/posts/");
            if (!ws) break;  // 503: the server is full
            held.push_back(std::move(*ws));
        }
        held_.store(held.size());
        while (!stop_.load()) std::this_thread::sleep_for(50ms);
    });

    // The victim, meanwhile: writes, watches its row, streams a page range, and asks /healthz.
    const std::chrono::milliseconds deadline = std::chrono::seconds(5 * kSlowdown);
    auto left = [&deadline](Clock::time_point t0) {
        auto rest = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - (Clock::now() - t0));
        return std::max(rest, std::chrono::milliseconds(1));
    };
    Clock::duration worst_reply{}, worst_push{}, worst_stream{}, worst_health{};
    long rss_peak = rss_before;
    std::string last_title;
    // At least 8 s, and until every attack is in full swing (the flood has reached the cap and the hostile frames
    // have been answered a hundred times): on a loaded machine or under sanitizers the attackers start slower.
    const auto start = Clock::now();
    auto attacks_ran = [this] { return held_.load() > 0 && refused_.load() > 100; };
    for (int i = 0; Clock::now() < start + 8s || (!attacks_ran() && Clock::now() < start + 60s * kSlowdown); ++i) {
        last_title = "victim " + std::to_string(i);
        auto t0 = Clock::now();
        auto reply = writer->Request(R"({"action":"patch","request_id":)" + std::to_string(i) +
                                         R"(,"pk":1,"data":{"title":")" + last_title + "\"}}",
                                     deadline);
        ASSERT_TRUE(reply) << "the victim's patch " << i << " got no reply within the deadline";
        ASSERT_NE(reply->find(R"("response_status":200)"), std::string::npos) << *reply;
        worst_reply = std::max(worst_reply, Clock::now() - t0);
        // Its push (or a later one: the latest state may replace it) arrives in time.
        bool seen = false;
        while (!seen) {
            auto push = watcher->Receive(left(t0));
            ASSERT_TRUE(push) << "no push of \"" << last_title << "\" within the deadline";
            seen = push->find("\"" + last_title + "\"") != std::string::npos;
        }
        worst_push = std::max(worst_push, Clock::now() - t0);
        if (i % 5 == 0) {
            t0 = Clock::now();
            ASSERT_TRUE(streamer->SendText(R"({"action":"list","request_id":"s","limit":1,"offset":396})"));
            for (int page = 0; page < 4; ++page) {
                auto frame = streamer->Receive(left(t0));
                ASSERT_TRUE(frame) << "the victim's streamed list stalled at page " << page;
                ASSERT_NE(frame->find(R"("response_status":200)"), std::string::npos) << *frame;
            }
            worst_stream = std::max(worst_stream, Clock::now() - t0);
            t0 = Clock::now();
            EXPECT_EQ(HttpGet("127.0.0.1", port_, "/healthz", deadline).status, 200);
            worst_health = std::max(worst_health, Clock::now() - t0);
        }
        rss_peak = std::max(rss_peak, RssKiB(server_->pid()));
    }
    StopAttackers();
    // The final state reached the watcher, and the server is still whole.
    auto retrieved = writer->Request(R"({"action":"retrieve","request_id":"r","pk":1})", deadline);
    ASSERT_TRUE(retrieved);
    EXPECT_NE(retrieved->find("\"" + last_title + "\""), std::string::npos) << *retrieved;
    auto ms = [](Clock::duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
    std::printf("abuse: %ld hostile frames refused with 4xx, %zu flood connections held\n", refused_.load(),
                held_.load());
    // The attacks ran: hostile frames were answered (not dropped, not crashing anything), and the flood reached the
    // cap (150, less the victims' and the other attackers' sockets).
    EXPECT_GT(refused_.load(), 100);
    EXPECT_GT(held_.load(), 120u);
    EXPECT_LT(held_.load(), 150u);
    std::printf("abuse: worst reply %lld ms, push %lld ms, streamed list %lld ms, /healthz %lld ms; server RSS %ld -> "
                "%ld KiB (peak)\n",
                static_cast<long long>(ms(worst_reply)), static_cast<long long>(ms(worst_push)),
                static_cast<long long>(ms(worst_stream)), static_cast<long long>(ms(worst_health)), rss_before,
                rss_peak);
    // Bounded: the ping flood alone once took 2 GB in 10 s. Limits allow some tens of MB per attacker.
    EXPECT_LT(rss_peak - rss_before, 400L * 1024 * kSlowdown) << "server memory grew without bound";
}

}  // namespace
}  // namespace syncline
