// The `syncline serve` binary and the C++ example as child processes: start from a config, serve CRUD, refuse a bad
// config with one line, drain on SIGTERM.

#include <syncline/test_support/ws_client.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <fstream>

#include "../storage/test_db.hpp"
#include "child_process.hpp"

namespace syncline {
namespace {

using ::testing::HasSubstr;
using test_support::WsClient;
using testing::ChildProcess;

constexpr const char* kModels = R"("models": {"posts": {"fields": {
      "id": {"type": "integer", "primary_key": true}, "title": {"type": "text", "max_length": 100},
      "body": {"type": "text", "blank": true, "default": ""},
      "author": {"type": "text", "max_length": 50, "blank": true, "default": ""}}}})";

std::string WriteConfig(const testing::TempDir& dir, const std::string& mixins) {
    std::string path = dir.File("config.json");
    std::ofstream(path) << R"({"database": "blog.db", "workers": 2, )" << kModels
                        << R"(, "routes": {"/ws/posts/": {"model": "posts", "read_only": ["id"], "mixins": )" << mixins
                        << "}}}";
    return path;
}

// Waits until GET /healthz answers 200 (the server is listening), or the deadline passes.
bool WaitHealthy(std::uint16_t port, ChildProcess& process) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
        if (test_support::HttpGet("127.0.0.1", port, "/healthz", std::chrono::milliseconds(200)).status == 200) {
            return true;
        }
        if (process.Wait(std::chrono::milliseconds(20))) return false;  // it exited
    }
    return false;
}

rapidjson::Document Parse(const std::optional<std::string>& frame) {
    rapidjson::Document d;
    if (frame) d.Parse(frame->c_str());
    return d;
}

TEST(ServeProcessTest, ServesTheConfigAndDrainsOnSigterm) {
    testing::TempDir dir;
    std::string config = WriteConfig(dir, R"(["list", "retrieve", "create", "update", "patch", "delete"])");
    std::uint16_t port = testing::FreePort();
    ChildProcess server({testing::BinDir() + "/syncline", "serve", "--config", config, "--port", std::to_string(port)},
                        dir.File("server.log"));
    ASSERT_TRUE(WaitHealthy(port, server)) << server.Output();

    auto a = WsClient::Connect("127.0.0.1", port, "/ws/posts/");
    auto b = WsClient::Connect("127.0.0.1", port, "/ws/posts/");
    ASSERT_TRUE(a && b);
    auto created = Parse(a->Request(R"({"action": "create", "request_id": 1, "data": {"title": "from a"}})"));
    EXPECT_EQ(created["response_status"].GetInt(), 201);
    auto seen = Parse(b->Request(R"({"action": "retrieve", "request_id": 2, "pk": 1})"));
    EXPECT_STREQ(seen["data"]["title"].GetString(), "from a");
    // The database file sits next to the config (relative paths resolve against the config's directory).
    EXPECT_TRUE(std::ifstream(dir.File("blog.db")).good());

    server.Signal(SIGTERM);
    EXPECT_EQ(a->WaitClosed(std::chrono::seconds(10)), 1001);
    EXPECT_EQ(b->WaitClosed(std::chrono::seconds(10)), 1001);
    EXPECT_EQ(server.Wait(std::chrono::seconds(15)), 0) << server.Output();
    EXPECT_THAT(server.Output(), HasSubstr("SIGTERM"));
}

TEST(ServeProcessTest, ConfigErrorStopsStartupWithOneLine) {
    testing::TempDir dir;
    std::string config = WriteConfig(dir, R"(["list", "lst"])");
    ChildProcess server({testing::BinDir() + "/syncline", "serve", "--config", config}, dir.File("server.log"));
    EXPECT_EQ(server.Wait(std::chrono::seconds(15)), 2);
    std::string output = server.Output();
    EXPECT_EQ(output,
              "syncline: config error: routes./ws/posts/.mixins[1]: unknown mixin \"lst\"; valid mixins: list, "
              "retrieve, create, update, patch, delete, observe_instance, observe_list\n");
}

TEST(ServeProcessTest, CppExampleServesItsConsumer) {
    testing::TempDir dir;
    std::uint16_t port = testing::FreePort();
    ChildProcess server({testing::BinDir() + "/syncline_example_cpp", std::to_string(port), dir.File("example.db")},
                        dir.File("example.log"));
    ASSERT_TRUE(WaitHealthy(port, server)) << server.Output();
    auto ws = WsClient::Connect("127.0.0.1", port, "/ws/posts/");
    ASSERT_TRUE(ws);
    auto created = Parse(ws->Request(R"({"action": "create", "data": {"title": "Hello"}})"));
    EXPECT_EQ(created["response_status"].GetInt(), 201);
    EXPECT_STREQ(created["data"]["author"].GetString(), "anonymous");  // the overridden PerformCreate
    EXPECT_FALSE(created["data"].HasMember("published"));              // not a serializer field
    // The custom actions: a detached word count, and unpublish (needs its row, which it then hides).
    ASSERT_EQ(Parse(ws->Request(
                  R"({"action": "create", "data": {"title": "Two", "body": "three words here"}})"))["response_status"]
                  .GetInt(),
              201);
    auto counted = Parse(ws->Request(R"({"action": "word_count", "request_id": "wc"})"));
    EXPECT_EQ(counted["response_status"].GetInt(), 200);
    EXPECT_EQ(counted["data"]["posts"].GetInt(), 2);
    EXPECT_EQ(counted["data"]["words"].GetInt(), 3);
    auto unpublished = Parse(ws->Request(R"({"action": "unpublish", "pk": 1})"));
    EXPECT_EQ(unpublished["response_status"].GetInt(), 200);
    EXPECT_EQ(unpublished["data"]["unpublished"].GetInt(), 1);
    EXPECT_EQ(Parse(ws->Request(R"({"action": "unpublish", "pk": 1})"))["response_status"].GetInt(), 404);
    EXPECT_EQ(Parse(ws->Request(R"({"action": "unpublish"})"))["response_status"].GetInt(), 400);
    server.Signal(SIGTERM);
    EXPECT_EQ(server.Wait(std::chrono::seconds(15)), 0) << server.Output();
}

}  // namespace
}  // namespace syncline
