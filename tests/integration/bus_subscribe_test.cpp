// Subscribing never waits for the bus (issue 13, item 2): the server subscribes every channel of its models on Redis
// before it listens (Observer::Start, Observer::WaitSubscribed), so a subscribe_instance is answered from this
// process's registry alone, even while Redis answers nothing, and the push still arrives once Redis is back.

#include <syncline/observer/observer.hpp>
#include <syncline/test_support/server_fixture.hpp>
#include <syncline/test_support/ws_client.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "own_servers.hpp"

namespace syncline {
namespace {

using namespace std::chrono_literals;
using test_support::OwnRedis;
using test_support::WsClient;
using ::testing::HasSubstr;

constexpr const char* kModels = R"("models": {"posts": {"fields": {"id": {"type": "integer", "primary_key": true},
                                                       "title": {"type": "text"}}}},
  "routes": {"/ws/posts/": {"model": "posts", "mixins": ["create", "retrieve", "patch", "observe_instance"]}})";

class BusSubscribeTest : public test_support::ServerTest {};

TEST_F(BusSubscribeTest, ASubscribeIsAnsweredWhileRedisAnswersNothingAndItsPushArrivesOnceRedisIsBack) {
    if (OwnRedis::RedisServer().empty()) GTEST_SKIP() << "no redis-server";
    OwnRedis redis(dir_, test_support::FreePort());
    StartFromConfig(std::string(R"({"database": "b.db", "listen": {"port": 0}, "workers": 2, "bus": {"redis": ")") +
                    redis.url() + R"("}, )" + kModels + "}");
    auto writer = WsClient::Connect("127.0.0.1", server_->port(), "/ws/posts/");
    auto subscriber = WsClient::Connect("127.0.0.1", server_->port(), "/ws/posts/");
    ASSERT_TRUE(writer && subscriber);
    ASSERT_THAT(writer->Request(R"({"action": "create", "request_id": 1, "data": {"title": "v1"}})").value_or(""),
                HasSubstr(R"("response_status":201)"));

    redis.Pause();
    // No channel was needed before this subscribe. Were it to subscribe its channel on Redis now and wait for the
    // confirmation (as it once did, for up to 2 s), it would not be answered within the second allowed here.
    const auto asked = std::chrono::steady_clock::now();
    auto reply = subscriber->Request(R"({"action": "subscribe_instance", "pk": 1, "request_id": "s"})", 1s);
    const auto waited = std::chrono::steady_clock::now() - asked;
    redis.Resume();
    ASSERT_TRUE(reply) << "no reply within 1 s while Redis was paused";
    EXPECT_THAT(*reply, HasSubstr(R"("response_status":201)"));
    EXPECT_LT(waited, 1s);

    ASSERT_THAT(writer->Request(R"({"action": "patch", "request_id": 2, "pk": 1, "data": {"title": "v2"}})")
                    .value_or(""),
                HasSubstr(R"("response_status":200)"));
    auto push = subscriber->Receive(10s);
    ASSERT_TRUE(push) << "the change made after the subscribe was not pushed";
    EXPECT_THAT(*push, HasSubstr(R"("title":"v2")"));
    EXPECT_THAT(*push, HasSubstr(R"("request_id":"s")"));
}

TEST_F(BusSubscribeTest, TheMostRowsWaitingForDeliveryComeFromTheConfig) {
    StartFromConfig(std::string(R"({"database": "b.db", "listen": {"port": 0}, "max_queued_rows": 321, )") + kModels +
                    "}");
    EXPECT_EQ(server_->observer().max_queued_rows(), 321u);
}

}  // namespace
}  // namespace syncline
