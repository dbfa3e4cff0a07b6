// The `syncline serve` binary and the C++ example as child processes: start from a config, serve CRUD, refuse a bad
// config with one line, drain on SIGTERM.

#include <syncline/test_support/serve_process.hpp>
#include <syncline/test_support/ws_client.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <fstream>

#include "../storage/test_db.hpp"

namespace syncline {
namespace {

using test_support::ChildProcess;
using test_support::ServeProcess;
using test_support::WaitHealthy;
using test_support::WsClient;
using ::testing::HasSubstr;

constexpr const char* kModels = R"("models": {"posts": {"fields": {
      "id": {"type": "integer", "primary_key": true}, "title": {"type": "text", "max_length": 100},
      "body": {"type": "text", "blank": true, "default": ""},
      "author": {"type": "text", "max_length": 50, "blank": true, "default": ""}}}})";

std::string WriteBlogConfig(const testing::TempDir& dir, const std::string& mixins) {
    const std::string route = R"({"model": "posts", "read_only": ["id"], "mixins": )" + mixins + "}";
    return test_support::WriteConfig(dir, std::string(R"({"database": "blog.db", "workers": 2, )") + kModels +
                                              R"(, "routes": {"/ws/posts/": )" + route + "}}");
}

rapidjson::Document Parse(const std::optional<std::string>& frame) {
    rapidjson::Document d;
    if (frame) d.Parse(frame->c_str());
    return d;
}

TEST(ServeProcessTest, ServesTheConfigAndDrainsOnSigterm) {
    testing::TempDir dir;
    std::string config = WriteBlogConfig(dir, R"(["list", "retrieve", "create", "update", "patch", "delete"])");
    ServeProcess server(config, dir.File("server.log"));
    const std::uint16_t port = server.port();
    ASSERT_TRUE(server.WaitHealthy()) << server.Output();

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
    std::string config = WriteBlogConfig(dir, R"(["list", "lst"])");
    ChildProcess server({testing::BinDir() + "/syncline", "serve", "--config", config}, dir.File("server.log"));
    EXPECT_EQ(server.Wait(std::chrono::seconds(15)), 2);
    std::string output = server.Output();
    EXPECT_EQ(output,
              "syncline: config error: routes./ws/posts/.mixins[1]: unknown mixin \"lst\"; valid mixins: list, "
              "retrieve, create, update, patch, delete, observe_instance, observe_list\n");
}

TEST(ServeProcessTest, CppExampleServesItsConsumer) {
    testing::TempDir dir;
    std::uint16_t port = test_support::FreePort();
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
