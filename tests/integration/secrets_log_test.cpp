// Issue 9, item 11: secrets never reach the log of `syncline serve`. The server runs as a child process (its whole
// stdout and stderr are the log) against a redis-server of the test's own that requires a password: the password of
// the bus URL is absent from the start-up lines, the connection events (up, lost, failed attempts, restored) and the
// start-up error of a malformed URL; a bad token appears only as its fingerprint.

#include <syncline/test_support/serve_process.hpp>
#include <syncline/test_support/ws_client.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <string>
#include <thread>

#include "../observer/redis_test_support.hpp"
#include "../storage/test_db.hpp"

namespace syncline {
namespace {

using test_support::ChildProcess;
using test_support::ServeProcess;
using test_support::WsClient;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kPassword = "redis-pw-4f9d2b";
constexpr const char* kBadToken = "tok-mallory-8e51a0";

std::string WriteBusConfig(const testing::TempDir& dir, const std::string& redis_url) {
    return test_support::WriteConfig(dir, R"({"database": "secrets.db", "workers": 2, "bus": {"redis": ")" + redis_url +
                                              R"("},
        "auth": {"tokens": {"tok-alice-0001": {"user": "alice", "id": 1}}},
        "models": {"posts": {"fields": {"id": {"type": "integer", "primary_key": true}, "title": {"type": "text"}}}},
        "routes": {"/ws/posts/": {"model": "posts", "mixins": ["list"]}}})");
}

// Polls the child's log (a file, no event to wait on) until it contains `needle` or the deadline passes.
bool WaitForOutput(ChildProcess& process, const std::string& needle) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (process.Output().find(needle) == std::string::npos) {
        if (std::chrono::steady_clock::now() > deadline || process.Wait(std::chrono::milliseconds(0))) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling a file with a deadline
    }
    return true;
}

class SecretsLogTest : public ::testing::Test {
protected:
    void SetUp() override {
        auto binary = observer::testing::FindRedisServer();
        if (!binary) GTEST_SKIP() << "redis-server is not installed (not on PATH)";
        redis_ = std::make_unique<observer::testing::RedisServer>(*binary);
        redis_->StartOnFreePort({"--requirepass", kPassword});
        address_ = "127.0.0.1:" + std::to_string(redis_->port()) + "/0";
    }

    testing::TempDir dir_;
    std::unique_ptr<observer::testing::RedisServer> redis_;
    std::string address_;
};

TEST_F(SecretsLogTest, ServeNeverLogsTheBusPasswordOrATokenThroughAnOutage) {
    std::string config = WriteBusConfig(dir_, std::string("redis://default:") + kPassword + "@" + address_);
    ServeProcess server(config, dir_.File("server.log"));
    const std::uint16_t port = server.port();
    ASSERT_TRUE(WaitForOutput(server, "subscribe connection to " + address_ + " up")) << server.Output();
    ASSERT_TRUE(WaitForOutput(server, "publish connection to " + address_ + " up")) << server.Output();
    // Logged by another thread than the connection lines: wait for it too (it raced them under load).
    EXPECT_TRUE(WaitForOutput(server, "bus: redis://default:***@" + address_ + " (16 channels per table)"))
        << server.Output();
    // The bus comes up before the server listens: wait for the port before connecting.
    ASSERT_TRUE(server.WaitHealthy()) << server.Output();

    // A bad token is logged by its fingerprint only (keyed per process: this test cannot compute it, by design).
    auto ws = WsClient::Connect("127.0.0.1", port, std::string("/ws/posts/?token=") + kBadToken);
    ASSERT_TRUE(ws);
    ASSERT_TRUE(WaitForOutput(server, "unknown token")) << server.Output();
    EXPECT_TRUE(
        std::regex_search(server.Output(), std::regex("query parameter \"token\", fingerprint [0-9a-f]{12}\\)")))
        << server.Output();

    // An outage: lost, failed attempts while Redis is away, restored.
    const std::uint16_t redis_port = redis_->port();
    redis_->Kill();
    ASSERT_TRUE(WaitForOutput(server, "lost")) << server.Output();
    ASSERT_TRUE(WaitForOutput(server, "failed")) << server.Output();
    ASSERT_TRUE(redis_->Start(redis_port, {"--requirepass", kPassword}));
    ASSERT_TRUE(WaitForOutput(server, "restored")) << server.Output();

    ws.client.reset();
    server.Signal(SIGTERM);
    EXPECT_EQ(server.Wait(std::chrono::seconds(15)), 0) << server.Output();
    const std::string output = server.Output();
    EXPECT_THAT(output, Not(HasSubstr(kPassword)));
    EXPECT_THAT(output, Not(HasSubstr("4f9d2b")));
    EXPECT_THAT(output, Not(HasSubstr(kBadToken)));
    EXPECT_THAT(output, Not(HasSubstr("8e51a0")));
}

TEST_F(SecretsLogTest, AMalformedBusUrlStopsStartupWithoutPrintingThePassword) {
    // The port is not a number: RedisBus refuses the URL when the server starts (exit 1, one error line).
    std::string config = WriteBusConfig(dir_, std::string("redis://default:") + kPassword + "@127.0.0.1:redis/0");
    ServeProcess server(config, dir_.File("server.log"), {}, 0);
    EXPECT_EQ(server.Wait(std::chrono::seconds(15)), 1) << server.Output();
    const std::string output = server.Output();
    EXPECT_THAT(output, HasSubstr("cannot start: RedisBus: bad Redis URL \"redis://default:***@127.0.0.1:redis/0\": "
                                  "port \"redis\" is not a number from 1 to 65535"));
    EXPECT_THAT(output, Not(HasSubstr(kPassword)));
    EXPECT_THAT(output, Not(HasSubstr("4f9d2b")));
}

}  // namespace
}  // namespace syncline
