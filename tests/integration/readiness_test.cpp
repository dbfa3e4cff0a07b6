// GET /readyz (issue 14, item 2): 200 while the server can serve; 503 with a one-line reason while the Redis bus is
// down or the relay is behind the change feed (the database case is in pg_outage_test.cpp). /healthz stays liveness:
// 200 throughout.

#include <syncline/test_support/server_fixture.hpp>
#include <syncline/test_support/ws_client.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "own_servers.hpp"

namespace syncline {
namespace {

using namespace std::chrono_literals;
using test_support::HttpGet;
using test_support::HttpResponse;
using test_support::OwnRedis;
using ::testing::HasSubstr;

constexpr const char* kModels = R"("models": {"posts": {"fields": {"id": {"type": "integer", "primary_key": true},
                                                       "title": {"type": "text"}}}},
  "routes": {"/ws/posts/": {"model": "posts", "mixins": ["create", "retrieve"]}})";

class ReadinessTest : public test_support::ServerTest {
protected:
    HttpResponse Get(const std::string& path) { return HttpGet("127.0.0.1", server_->port(), path); }

    // Polls /readyz (with a deadline) until its status is `status`; returns the last answer.
    HttpResponse WaitReady(int status, std::chrono::milliseconds every = 20ms) {
        const auto deadline = std::chrono::steady_clock::now() + test_support::kServerWait;
        HttpResponse response = Get("/readyz");
        while (response.status != status && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(every);  // polls an HTTP endpoint; nothing to wait on
            response = Get("/readyz");
        }
        return response;
    }
};

TEST_F(ReadinessTest, ReadyWithTheEmbeddedDefaults) {
    StartFromConfig(std::string(R"({"database": "r.db", "listen": {"port": 0}, "workers": 1, )") + kModels + "}");
    HttpResponse ready = WaitReady(200);
    EXPECT_EQ(ready.status, 200);
    EXPECT_EQ(ready.body, R"({"status":"ok"})");
    EXPECT_EQ(Get("/healthz").status, 200);
}

TEST_F(ReadinessTest, NotReadyWhileTheRedisBusIsDownAndReadyAgainAfter) {
    if (OwnRedis::RedisServer().empty()) GTEST_SKIP() << "no redis-server";
    OwnRedis redis(dir_, test_support::FreePort());
    StartFromConfig(std::string(R"({"database": "r.db", "listen": {"port": 0}, "workers": 1, "bus": {"redis": ")") +
                    redis.url() + R"("}, )" + kModels + "}");
    ASSERT_EQ(WaitReady(200).status, 200);
    redis.Kill();
    HttpResponse down = WaitReady(503);
    EXPECT_EQ(down.status, 503);
    EXPECT_THAT(down.body, HasSubstr(R"("status":"not ready")"));
    EXPECT_THAT(down.body, HasSubstr("bus disconnected: Redis at " + redis.url() + " is unreachable"));
    EXPECT_EQ(Get("/healthz").status, 200) << "liveness does not depend on the bus";
    redis.Start();
    EXPECT_EQ(WaitReady(200).status, 200) << "still not ready after Redis came back";
}

TEST_F(ReadinessTest, NotReadyWhileTheRelayIsBehindTheFeed) {
    // Behind for more than 1 ms: any run of full batches. 20,000 changes in one transaction are 40 batches.
    StartFromConfig(std::string(R"({"database": "r.db", "listen": {"port": 0}, "workers": 1,
                                    "ready_max_relay_lag_ms": 1, )") +
                    kModels + "}");
    ASSERT_EQ(WaitReady(200).status, 200);
    {
        std::unique_ptr<storage::Transaction> tx = server_->database().Begin();
        for (int i = 0; i < 20000; ++i) tx->Insert("posts", {{"title", Value("t")}});
        tx->Commit();
    }
    HttpResponse behind = WaitReady(503, 1ms);  // the relay catches up within a few hundred ms
    EXPECT_EQ(behind.status, 503);
    EXPECT_THAT(behind.body, HasSubstr("relay behind the change feed"));
    EXPECT_EQ(WaitReady(200).status, 200) << "still not ready once the relay caught up";
}

}  // namespace
}  // namespace syncline
