// docs/protocol.md §9 (multiplexing) and §10 (routed action handlers) over real websockets, against in-process servers
// built from the JSON config (and from C++ for the handshake cases): exact frames, pushes through a stream, bad
// frames that leave the socket open, subscriptions dropped on close.

#include <syncline/auth/token_authenticator.hpp>
#include <syncline/core/auth/auth.hpp>
#include <syncline/config/config.hpp>
#include <syncline/core/consumer/permissions.hpp>
#include <syncline/core/support/log.hpp>
#include <syncline/observer/observer.hpp>
#include <syncline/test_support/server_fixture.hpp>
#include <syncline/test_support/ws_client.hpp>
#include <syncline/transport/server.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <thread>

#include "../storage/test_db.hpp"

namespace syncline {
namespace {

// The authenticators that verify tokens: the auth module.
using auth::StaticTokenAuthenticator;

using test_support::WsClient;

constexpr const char* kConfig = R"({
  "database": "blog.db", "listen": {"port": 0}, "workers": 2,
  "models": {
    "posts": {"fields": {"id": {"type": "integer", "primary_key": true}, "title": {"type": "text", "max_length": 20},
                         "author": {"type": "text", "blank": true, "default": ""}}},
    "comments": {"fields": {"id": {"type": "integer", "primary_key": true}, "text": {"type": "text"}}}},
  "routes": {
    "/ws/posts/": {"model": "posts", "mixins": ["list", "create", "patch", "observe_instance"]},
    "/ws/comments/": {"model": "comments", "mixins": ["create", "observe_instance"]},
    "/ws/": {"streams": {"posts": "/ws/posts/", "comments": "/ws/comments/", "api": "/ws/api/"}},
    "/ws/api/": {"routepatterns": {
        "^posts/(?P<pk>[^/]+)/$": {"model": "posts", "fields": ["id", "title"],
                                   "handler": "RetrieveUpdateDestroyAPIActionHandler"},
        "^posts/$": {"model": "posts", "fields": ["id", "title"], "handler": "ListCreateAPIActionHandler"},
        "^comments/(?P<pk>\\d+)/$": {"model": "comments", "handler": "RetrieveAPIActionHandler"}}}}})";

// Every test runs on both engines (MultiplexRoutedTest.X/Sqlite, .../Postgres), and so do MultiplexHandshakeTest's.
class MultiplexRoutedTest : public test_support::ServerTest,
                            public ::testing::WithParamInterface<test_support::Engine> {
protected:
    void SetUp() override {
        if (!UseEngine(GetParam())) GTEST_SKIP() << test_support::kPgSkipReason;
        StartFromConfig(kConfig);
    }
    static std::string Call(WsClient& ws, const std::string& frame) { return ws.Request(frame).value_or("<none>"); }
};

TEST_P(MultiplexRoutedTest, TwoStreamsOnOneSocketGetTheirOwnWrappedReplies) {
    auto ws = Connect("/ws/");
    EXPECT_EQ(Call(*ws, R"({"stream": "posts", "payload": {"action": "create", "request_id": 1,
                                                           "data": {"title": "Hello", "author": "ann"}}})"),
              R"({"stream":"posts","payload":{"errors":[],"data":{"id":1,"title":"Hello","author":"ann"},)"
              R"("action":"create","response_status":201,"request_id":1}})");
    EXPECT_EQ(Call(*ws, R"({"stream": "comments", "payload": {"action": "create", "request_id": "c",
                                                              "data": {"text": "Grüße"}}})"),
              R"({"stream":"comments","payload":{"errors":[],"data":{"id":1,"text":"Grüße"},"action":"create",)"
              R"("response_status":201,"request_id":"c"}})");
    EXPECT_EQ(Call(*ws, R"({"stream": "posts", "payload": {"action": "list"}})"),
              R"({"stream":"posts","payload":{"errors":[],"data":[{"id":1,"title":"Hello","author":"ann"}],)"
              R"("action":"list","response_status":200,"request_id":null}})");
    // Each stream is its own consumer: "list" is not an action of the comments route.
    EXPECT_EQ(Call(*ws, R"({"stream": "comments", "payload": {"action": "list", "request_id": 2}})"),
              R"({"stream":"comments","payload":{"errors":["Method \"list\" not allowed."],"data":null,)"
              R"("action":"list","response_status":405,"request_id":2}})");
}

TEST_P(MultiplexRoutedTest, PushesOfASubscriptionThroughAStreamArriveWrapped) {
    server_->database().Insert("posts", {{"title", "First"}});
    WaitRelayed(1);
    auto ws = Connect("/ws/");
    EXPECT_EQ(Call(*ws, R"({"stream": "posts", "payload": {"action": "subscribe_instance", "pk": 1,
                                                           "request_id": "sub"}})"),
              R"({"stream":"posts","payload":{"errors":[],"data":null,"action":"subscribe_instance",)"
              R"("response_status":201,"request_id":"sub","version":1,"epoch":")" +
                  server_->database().Epoch() + R"("}})");
    // Changed from another socket (a plain consumer route): the push comes wrapped in the stream it subscribed on.
    auto other = Connect("/ws/posts/");
    EXPECT_THAT(Call(*other, R"({"action": "patch", "pk": 1, "data": {"title": "Changed"}})"),
                ::testing::HasSubstr(R"("response_status":200)"));
    std::int64_t version = server_->database().RowVersion("posts", Value(1));
    EXPECT_EQ(ws->Receive().value_or("<none>"),
              R"({"stream":"posts","payload":{"errors":[],"data":{"id":1,"title":"Changed","author":""},)"
              R"("action":"update","response_status":200,"version":)" +
                  std::to_string(version) + R"(,"epoch":")" + server_->database().Epoch() +
                  R"(","request_id":"sub"}})");
    // The writer's own reply comes before the push its change causes, through the multiplexer too.
    ASSERT_TRUE(ws->SendText(R"({"stream": "posts", "payload": {"action": "patch", "pk": 1, "request_id": "w",
                                                                "data": {"author": "bob"}}})"));
    EXPECT_THAT(ws->Receive().value_or("<none>"), ::testing::HasSubstr(R"("action":"patch","response_status":200)"));
    EXPECT_THAT(ws->Receive().value_or("<none>"),
                ::testing::StartsWith(R"({"stream":"posts","payload":{"errors":[],"data":{"id":1,"title":"Changed",)"
                                      R"("author":"bob"},"action":"update")"));
}

TEST_P(MultiplexRoutedTest, BadFramesAnswerErrorFramesAndTheSocketStaysOpen) {
    auto ws = Connect("/ws/");
    struct Case {
        std::string frame;
        std::string reply;
    };
    const std::vector<Case> cases = {
        {R"({"stream": "tags", "payload": {"action": "list", "request_id": 3}})",
         R"({"stream":"tags","payload":{"errors":["Unknown stream \"tags\"."],"data":null,"action":"list",)"
         R"("response_status":400,"request_id":3}})"},
        {R"({"payload": {"action": "list"}})",
         R"({"stream":null,"payload":{"errors":["A multiplexed message needs \"stream\" and \"payload\"."],)"
         R"("data":null,"action":null,"response_status":400,"request_id":null}})"},
        {R"({"stream": "posts"})",
         R"({"stream":"posts","payload":{"errors":["A multiplexed message needs \"stream\" and \"payload\"."],)"
         R"("data":null,"action":null,"response_status":400,"request_id":null}})"},
        {R"({"stream": "posts", "payload": [1]})",
         R"({"stream":"posts","payload":{"errors":["Malformed message: expected a JSON object as payload, got )"
         R"(list"],"data":null,"action":null,"response_status":400,"request_id":null}})"},
        {"not json",
         R"x({"stream":null,"payload":{"errors":["Malformed message: Invalid value. (at offset 1)"],"data":null,)x"
         R"x("action":null,"response_status":400,"request_id":null}})x"},
        {R"("posts")",
         R"({"stream":null,"payload":{"errors":["Malformed message: expected a JSON object, got str"],"data":null,)"
         R"("action":null,"response_status":400,"request_id":null}})"},
    };
    for (const auto& c : cases) {
        EXPECT_EQ(Call(*ws, c.frame), c.reply) << c.frame;
        EXPECT_TRUE(ws->is_open()) << c.frame;
    }
    ASSERT_TRUE(ws->SendBinary(std::string("\x00\x01", 2)));
    EXPECT_EQ(ws->Receive().value_or("<none>"),
              R"({"stream":null,"payload":{"errors":["Malformed message: binary frames are not supported"],)"
              R"("data":null,"action":null,"response_status":400,"request_id":null}})");
    EXPECT_TRUE(ws->is_open());
    EXPECT_EQ(Call(*ws, R"({"stream": "posts", "payload": {"action": "list", "request_id": "after"}})"),
              R"({"stream":"posts","payload":{"errors":[],"data":[],"action":"list","response_status":200,)"
              R"("request_id":"after"}})");
}

TEST_P(MultiplexRoutedTest, ClosingTheSocketDropsTheSubscriptionsOfEveryStream) {
    server_->database().Insert("posts", {{"title", "P"}});
    server_->database().Insert("comments", {{"text", "C"}});
    WaitRelayed(2);
    std::size_t before = server_->observer().subscription_count();
    auto ws = Connect("/ws/");
    EXPECT_THAT(Call(*ws, R"({"stream": "posts", "payload": {"action": "subscribe_instance", "pk": 1,
                                                             "request_id": 1}})"),
                ::testing::HasSubstr(R"("response_status":201)"));
    EXPECT_THAT(Call(*ws, R"({"stream": "comments", "payload": {"action": "subscribe_instance", "pk": 1,
                                                                "request_id": 2}})"),
                ::testing::HasSubstr(R"("response_status":201)"));
    EXPECT_EQ(server_->observer().subscription_count(), before + 2);
    ws->Close();
    EXPECT_TRUE(ws->WaitClosed());
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (server_->observer().subscription_count() != before && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::yield();
    }
    EXPECT_EQ(server_->observer().subscription_count(), before);
}

TEST_P(MultiplexRoutedTest, RoutedActionsOverASocket) {
    auto ws = Connect("/ws/api/");
    EXPECT_EQ(Call(*ws, R"({"action": "create", "route": "posts/", "data": {"title": "One"}})"),
              R"({"errors":[],"data":{"id":1,"title":"One"},"action":"create","route":"posts/","status":201})");
    EXPECT_EQ(Call(*ws, R"({"action": "list", "route": "posts/", "request_id": 7})"),
              R"({"errors":[],"data":[{"id":1,"title":"One"}],"action":"list","route":"posts/","status":200,)"
              R"("request_id":7})");
    EXPECT_EQ(Call(*ws, R"({"action": "retrieve", "route": "posts/1/"})"),
              R"({"errors":[],"data":{"id":1,"title":"One"},"action":"retrieve","route":"posts/1/","status":200})");
    EXPECT_EQ(Call(*ws, R"({"action": "update", "route": "posts/1/", "data": {"title": "Uno"}})"),
              R"({"errors":[],"data":{"id":1,"title":"Uno"},"action":"update","route":"posts/1/","status":200})");
    EXPECT_EQ(Call(*ws, R"({"action": "partial_update", "route": "posts/1/", "data": {"title": "Eins"}})"),
              R"({"errors":[],"data":{"id":1,"title":"Eins"},"action":"partial_update","route":"posts/1/",)"
              R"("status":200})");
    EXPECT_EQ(Call(*ws, R"({"action": "remove", "route": "posts/1/"})"),
              R"({"errors":[],"data":null,"action":"remove","route":"posts/1/","status":204})");
    EXPECT_EQ(Call(*ws, R"({"action": "retrieve", "route": "posts/1/"})"),
              R"({"errors":["Not found"],"data":null,"action":"retrieve","route":"posts/1/","status":404})");
    EXPECT_EQ(server_->database().Count("posts", {}), 0);
}

TEST_P(MultiplexRoutedTest, RoutedErrorsOverASocketKeepItOpen) {
    server_->database().Insert("comments", {{"text", "C"}});
    auto ws = Connect("/ws/api/");
    struct Case {
        std::string frame;
        std::string reply;
    };
    const std::vector<Case> cases = {
        {R"({"action": "retrieve", "route": "users/1/"})",
         R"({"errors":["No route matches \"users/1/\"."],"data":null,"action":"retrieve","route":"users/1/",)"
         R"("status":404})"},
        {R"({"action": "list", "route": ["posts/"]})",
         R"({"errors":["route must be a string."],"data":null,"action":"list","route":["posts/"],"status":400})"},
        {R"({"action": "remove", "route": "comments/1/"})",
         R"({"errors":["Method \"remove\" not allowed."],"data":null,"action":"remove","route":"comments/1/",)"
         R"("status":405})"},
        {R"({"action": "create", "route": "posts/", "data": {"title": "This title is far too long"}})",
         R"({"errors":[{"title":["Ensure this field has no more than 20 characters."]}],"data":null,)"
         R"("action":"create","route":"posts/","status":400})"},
        {R"({"route": "posts/"})",
         R"({"errors":["Unable to find action in message body."],"data":null,"action":null,"route":"posts/",)"
         R"("status":404})"},
        {"{]",
         R"x({"errors":["Malformed message: Missing a name for object member. (at offset 1)"],"data":null,)x"
         R"x("action":null,"route":null,"status":400})x"},
    };
    for (const auto& c : cases) {
        EXPECT_EQ(Call(*ws, c.frame), c.reply) << c.frame;
        EXPECT_TRUE(ws->is_open()) << c.frame;
    }
    // Named group "pk" from the route; the comments handler has the default serializer.
    EXPECT_EQ(Call(*ws, R"({"action": "retrieve", "route": "comments/1/"})"),
              R"({"errors":[],"data":{"id":1,"text":"C"},"action":"retrieve","route":"comments/1/","status":200})");
}

TEST_P(MultiplexRoutedTest, ARoutedConsumerAsAStream) {
    auto ws = Connect("/ws/");
    EXPECT_EQ(Call(*ws, R"({"stream": "api", "payload": {"action": "list", "route": "posts/"}})"),
              R"({"stream":"api","payload":{"errors":[],"data":[],"action":"list","route":"posts/","status":200}})");
}

// Handshakes: the multiplexer admits when one stream's consumer admits, and answers 403 in the refused streams.
class RefuseConnect final : public Permission {
public:
    bool CanConnect(const ConnectionContext& connection) const override {
        (void)connection;
        return false;
    }
    bool HasPermission(const ActionRequest& request, const GenericConsumer& consumer) const override {
        (void)request;
        (void)consumer;
        return true;
    }
};

// Servers built from C++, on a database of either engine.
class MultiplexHandshakeTest : public ::testing::TestWithParam<test_support::Engine> {
protected:
    void SetUp() override {
        if (!db_.available()) GTEST_SKIP() << test_support::kPgSkipReason;
    }
    transport::ServerOptions Options(unsigned workers) const {
        transport::ServerOptions options = test_support::TestServerOptions(dir_, "mux.db", workers);
        options.database = db_.database();
        return options;
    }
    testing::TempDir dir_;
    test_support::EngineDatabase db_{GetParam(), dir_, "mux.db"};
};

TEST_P(MultiplexHandshakeTest, RefusedStreamsAnswer403AndAllRefusedIsAnHttp403) {
    transport::Server server(Options(1));
    server.AddModel(testing::PostsSchema());
    ConsumerOptions open;
    open.model = "posts";
    open.serializer.fields = {"id", "title"};
    ConsumerOptions closed = open;
    closed.permissions = {std::make_shared<RefuseConnect>()};
    server.Route<ListAPIConsumer>("/ws/open/", open);
    server.Route<ListAPIConsumer>("/ws/closed/", closed);
    server.Multiplex("/ws/", {{"open", "/ws/open/"}, {"closed", "/ws/closed/"}});
    server.Multiplex("/ws/none/", {{"closed", "/ws/closed/"}});
    server.Start();

    auto refused = WsClient::Connect("127.0.0.1", server.port(), "/ws/none/");
    EXPECT_FALSE(refused);
    EXPECT_EQ(refused.http_status, 403);
    auto ws = WsClient::Connect("127.0.0.1", server.port(), "/ws/");
    ASSERT_TRUE(ws) << ws.error;
    EXPECT_EQ(ws->Request(R"({"stream": "closed", "payload": {"action": "list", "request_id": 1}})").value_or(""),
              R"({"stream":"closed","payload":{"errors":["You do not have permission to perform this action."],)"
              R"("data":null,"action":"list","response_status":403,"request_id":1}})");
    EXPECT_EQ(ws->Request(R"({"stream": "open", "payload": {"action": "list", "request_id": 2}})").value_or(""),
              R"({"stream":"open","payload":{"errors":[],"data":[],"action":"list","response_status":200,)"
              R"("request_id":2}})");
}

TEST_P(MultiplexHandshakeTest, TheSocketIsAuthenticatedOnceAndEveryStreamSeesItsUser) {
    transport::ServerOptions options = Options(1);
    User alice;
    alice.id = "1";
    alice.name = "alice";
    options.auth.authenticator =
        std::make_shared<StaticTokenAuthenticator>(std::map<std::string, User>{{"tok-alice", alice}});
    transport::Server server(options);
    server.AddModel(testing::PostsSchema());
    ConsumerOptions open;
    open.model = "posts";
    open.serializer.fields = {"id", "title"};
    ConsumerOptions members = open;
    members.permissions = {std::make_shared<IsAuthenticated>()};
    server.Route<ListAPIConsumer>("/ws/open/", open);
    server.Route<ListAPIConsumer>("/ws/members/", members);
    server.Multiplex("/ws/", {{"open", "/ws/open/"}, {"members", "/ws/members/"}});
    server.Start();
    std::mutex log_mutex;
    std::vector<std::string> lines;
    SetLogSink([&](LogLevel, std::string_view line) {  // after Start: the server installs its own sink
        std::lock_guard<std::mutex> lock(log_mutex);
        lines.emplace_back(line);
    });

    auto status = [](WsClient& ws, const std::string& stream) {
        auto reply = ws.Request(R"({"stream": ")" + stream + R"(", "payload": {"action": "list"}})");
        if (!reply) return -1;
        auto at = reply->find("\"response_status\":");
        return at == std::string::npos ? -1 : std::stoi(reply->substr(at + 18));
    };
    auto signed_in = WsClient::Connect("127.0.0.1", server.port(), "/ws/?token=tok-alice");
    ASSERT_TRUE(signed_in) << signed_in.error;
    EXPECT_EQ(status(*signed_in, "members"), 200);
    EXPECT_EQ(status(*signed_in, "open"), 200);
    auto anonymous = WsClient::Connect("127.0.0.1", server.port(), "/ws/");
    ASSERT_TRUE(anonymous) << anonymous.error;
    EXPECT_EQ(status(*anonymous, "members"), 403);
    EXPECT_EQ(status(*anonymous, "open"), 200);
    auto forged = WsClient::Connect("127.0.0.1", server.port(), "/ws/?token=tok-mallory");
    ASSERT_TRUE(forged) << forged.error;
    EXPECT_EQ(status(*forged, "members"), 403);
    server.Stop();
    SetLogSink(nullptr);
    // One line for the bad token of the one socket, not one per stream; and never the token itself.
    std::lock_guard<std::mutex> lock(log_mutex);
    int token_lines = 0;
    for (const auto& line : lines) {
        if (line.find("unknown token") != std::string::npos) ++token_lines;
        EXPECT_EQ(line.find("tok-mallory"), std::string::npos) << line;
    }
    EXPECT_EQ(token_lines, 1) << ::testing::PrintToString(lines);
}

TEST_P(MultiplexHandshakeTest, AStreamNamingNoRouteStopsStart) {
    transport::Server server(Options(0));
    server.AddModel(testing::PostsSchema());
    ConsumerOptions posts;
    posts.model = "posts";
    server.Route<ListAPIConsumer>("/ws/posts/", posts);
    server.Multiplex("/ws/", {{"posts", "/ws/post/"}});
    try {
        server.Start();
        ADD_FAILURE() << "Start did not throw";
    } catch (const std::invalid_argument& e) {
        EXPECT_STREQ(e.what(), "route /ws/: stream \"posts\" names \"/ws/post/\", which is not a consumer route");
    }
}

INSTANTIATE_TEST_SUITE_P(Engines, MultiplexRoutedTest, test_support::AllEngines(), test_support::EngineParamName);
INSTANTIATE_TEST_SUITE_P(Engines, MultiplexHandshakeTest, test_support::AllEngines(), test_support::EngineParamName);

}  // namespace
}  // namespace syncline
