// docs/protocol.md §1-§5 over real websockets against an in-process syncline::transport::Server built from the blog
// config.

#include <syncline/test_support/server_fixture.hpp>
#include <syncline/test_support/ws_client.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <atomic>
#include <thread>

namespace syncline {
namespace {

using ::testing::HasSubstr;
using test_support::WsClient;

constexpr const char* kBlogConfig = R"({
  "database": "blog.db", "listen": {"host": "127.0.0.1", "port": 0}, "workers": 2, "max_message_bytes": 4096,
  "models": {"posts": {"fields": {
      "id":     {"type": "integer", "primary_key": true},
      "title":  {"type": "text", "max_length": 100},
      "body":   {"type": "text", "blank": true, "default": ""},
      "author": {"type": "text", "max_length": 50, "blank": true, "default": ""}}}},
  "routes": {"/ws/posts/": {"model": "posts", "fields": ["id", "title", "body", "author"], "read_only": ["id"],
                            "mixins": ["list", "retrieve", "create", "update", "patch", "delete"]}}})";

rapidjson::Document Parse(const std::optional<std::string>& frame) {
    rapidjson::Document d;
    if (frame) d.Parse(frame->c_str());
    return d;
}

// Every test runs on both engines: the wire answers (docs/protocol.md's error table) do not depend on the database.
class ProtocolSocketTest : public test_support::ServerTest, public ::testing::WithParamInterface<test_support::Engine> {
protected:
    void SetUp() override {
        if (!UseEngine(GetParam())) GTEST_SKIP() << test_support::kPgSkipReason;
        StartFromConfig(kBlogConfig);
    }
};

TEST_P(ProtocolSocketTest, EveryCrudActionOverASocket) {
    auto ws = Connect();
    auto created = Parse(ws->Request(R"({"action": "create", "request_id": 1, "data": {"title": "Hello", "author": "ann"}})"));
    ASSERT_TRUE(created.IsObject());
    EXPECT_EQ(created["response_status"].GetInt(), 201);
    EXPECT_EQ(created["data"]["id"].GetInt(), 1);
    EXPECT_EQ(created["request_id"].GetInt(), 1);
    EXPECT_EQ(created["errors"].Size(), 0u);

    auto listed = Parse(ws->Request(R"({"action": "list", "request_id": 2})"));
    EXPECT_EQ(listed["response_status"].GetInt(), 200);
    ASSERT_TRUE(listed["data"].IsArray());
    EXPECT_EQ(listed["data"].Size(), 1u);

    auto retrieved = Parse(ws->Request(R"({"action": "retrieve", "request_id": 3, "pk": 1})"));
    EXPECT_EQ(retrieved["response_status"].GetInt(), 200);
    EXPECT_STREQ(retrieved["data"]["title"].GetString(), "Hello");

    auto updated = Parse(ws->Request(R"({"action": "update", "request_id": 4, "pk": 1, "data": {"title": "Hi"}})"));
    EXPECT_EQ(updated["response_status"].GetInt(), 200);
    EXPECT_STREQ(updated["data"]["author"].GetString(), "ann");

    auto patched = Parse(ws->Request(R"({"action": "patch", "request_id": 5, "pk": 1, "data": {"body": "text"}})"));
    EXPECT_EQ(patched["response_status"].GetInt(), 200);
    EXPECT_STREQ(patched["data"]["title"].GetString(), "Hi");
    EXPECT_STREQ(patched["data"]["body"].GetString(), "text");

    auto deleted = Parse(ws->Request(R"({"action": "delete", "request_id": 6, "pk": 1})"));
    EXPECT_EQ(deleted["response_status"].GetInt(), 204);
    EXPECT_TRUE(deleted["data"].IsNull());
    EXPECT_EQ(Parse(ws->Request(R"({"action": "retrieve", "pk": 1})"))["response_status"].GetInt(), 404);
    // The four writes ran on the batch writer on SQLite, on the write pool on PostgreSQL (PrefersBatchedWrites).
    EXPECT_EQ(server_->batched_writes().writes, GetParam() == test_support::Engine::kSqlite ? 4u : 0u);
}

TEST_P(ProtocolSocketTest, BadFramesAnswerAndKeepTheSocketOpen) {
    auto ws = Connect();
    for (const char* frame : {"garbage", "", "[1]", "{\"request_id\": 9}", "{\"action\": \"fly\"}",
                              "{\"action\": \"retrieve\"}", "{\"action\": \"retrieve\", \"pk\": \"x\"}",
                              "{\"action\": \"create\"}", "{\"action\": \"create\", \"data\": \"s\"}",
                              "{\"action\": \"create\", \"data\": {}}"}) {
        auto reply = Parse(ws->Request(frame));
        ASSERT_TRUE(reply.IsObject()) << "no reply to " << frame;
        int status = reply["response_status"].GetInt();
        EXPECT_TRUE(status == 400 || status == 404 || status == 405) << frame << " -> " << status;
        EXPECT_TRUE(ws->is_open()) << frame;
    }
    ASSERT_TRUE(ws->SendBinary(std::string("\x00\x01", 2)));
    EXPECT_THAT(*ws->Receive(), HasSubstr("binary frames are not supported"));
    EXPECT_EQ(Parse(ws->Request(R"({"action": "list"})"))["response_status"].GetInt(), 200);
}

TEST_P(ProtocolSocketTest, OversizedFrameClosesWith1009) {
    auto ws = Connect();
    ASSERT_TRUE(ws->SendText(R"({"action": "create", "data": {"title": ")" + std::string(8192, 'x') + "\"}}"));
    EXPECT_EQ(ws->WaitClosed(), 1009);
    auto again = Connect();  // the server is fine
    EXPECT_EQ(Parse(again->Request(R"({"action": "list"})"))["response_status"].GetInt(), 200);
}

TEST_P(ProtocolSocketTest, UnknownPathIs404AndHealthzIs200) {
    auto refused = WsClient::Connect("127.0.0.1", server_->port(), "/ws/nothing/");
    EXPECT_FALSE(refused);
    EXPECT_EQ(refused.http_status, 404);
    auto health = test_support::HttpGet("127.0.0.1", server_->port(), "/healthz");
    EXPECT_EQ(health.status, 200);
}

TEST_P(ProtocolSocketTest, UnicodeRoundTripOverTheWire) {
    auto ws = Connect();
    auto created = Parse(ws->Request(R"({"action": "create", "data": {"title": "Grüße 世界 🚀"}})"));
    ASSERT_EQ(created["response_status"].GetInt(), 201);
    auto got = Parse(ws->Request(R"({"action": "retrieve", "pk": )" + std::to_string(created["data"]["id"].GetInt()) + "}"));
    EXPECT_STREQ(got["data"]["title"].GetString(), "Grüße 世界 🚀");
}

TEST_P(ProtocolSocketTest, RepliesComeInRequestOrderOnOneSocket) {
    auto ws = Connect();
    constexpr int kRequests = 300;
    for (int i = 0; i < kRequests; ++i) {
        std::string frame = i % 3 == 0 ? R"({"action": "create", "data": {"title": "p)" + std::to_string(i) + "\"}"
                            : i % 3 == 1 ? R"({"action": "list")"
                                         : R"({"action": "retrieve", "pk": 1)";
        ASSERT_TRUE(ws->SendText(frame + ", \"request_id\": " + std::to_string(i) + "}"));
    }
    for (int i = 0; i < kRequests; ++i) {
        auto reply = Parse(ws->Receive());
        ASSERT_TRUE(reply.IsObject()) << "missing reply " << i;
        EXPECT_EQ(reply["request_id"].GetInt(), i);
    }
}

TEST_P(ProtocolSocketTest, ManySocketsAtOnce) {
    constexpr int kSockets = 64;
    constexpr int kPerSocket = 10;
    std::vector<std::thread> threads;
    std::atomic<int> created{0};
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            std::vector<std::unique_ptr<WsClient>> sockets;
            for (int s = 0; s < kSockets / 4; ++s) sockets.push_back(Connect());
            for (int i = 0; i < kPerSocket; ++i) {
                for (auto& ws : sockets) {
                    ws->SendText(R"({"action": "create", "data": {"title": "t)" + std::to_string(t) + "\"}}");
                }
                for (auto& ws : sockets) {
                    if (Parse(ws->Receive())["response_status"] == 201) ++created;
                }
            }
        });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(created.load(), kSockets * kPerSocket);
    EXPECT_EQ(server_->database().Count("posts", {}), kSockets * kPerSocket);
}

TEST_P(ProtocolSocketTest, StopClosesOpenSocketsWith1001AfterQueuedReplies) {
    auto ws = Connect();
    ASSERT_TRUE(ws->SendText(R"({"action": "create", "request_id": "last", "data": {"title": "x"}})"));
    auto reply = Parse(ws->Receive());
    EXPECT_STREQ(reply["request_id"].GetString(), "last");
    server_->Stop();
    EXPECT_EQ(ws->WaitClosed(), 1001);
}

}  // namespace
INSTANTIATE_TEST_SUITE_P(Engines, ProtocolSocketTest, test_support::AllEngines(), test_support::EngineParamName);

}  // namespace syncline
