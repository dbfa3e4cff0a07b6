// Cross-site websocket hijacking (issue 9, item 10) through real handshakes: `allowed_origins` per server and per route
// (consumer, multiplexer and routed routes), and cookie tokens read only behind an origin allow-list.

#include <syncline/auth/token_authenticator.hpp>
#include <syncline/config/config.hpp>
#include <syncline/core/consumer/permissions.hpp>
#include <syncline/test_support/server_fixture.hpp>
#include <syncline/test_support/ws_client.hpp>
#include <syncline/transport/server.hpp>

#include <gtest/gtest.h>

#include "../storage/test_db.hpp"

namespace syncline {
namespace {

// The authenticators that verify tokens: the auth module.
using auth::StaticTokenAuthenticator;

using test_support::ConnectResult;
using test_support::Headers;
using test_support::WsClient;

constexpr const char* kToken = "tok-origin-7c1d";

// `open_origins`: the list of /ws/open/ ("*" unless cookie tokens are on, which require an allow-list everywhere).
std::string Config(const std::string& auth, const std::string& open_origins = R"(["*"])") {
    return R"({"database": "origins.db", "listen": {"port": 0}, "workers": 2, )" + auth + R"(
      "allowed_origins": ["https://app.example.com", "http://localhost:3000"],
      "models": {"posts": {"fields": {"id": {"type": "integer", "primary_key": true},
                                      "title": {"type": "text", "max_length": 100}}}},
      "routes": {
        "/ws/posts/": {"model": "posts", "mixins": ["list"], "permissions": ["is_authenticated"]},
        "/ws/open/": {"model": "posts", "mixins": ["list"], "allowed_origins": )" +
           open_origins + R"(},
        "/ws/other/": {"model": "posts", "mixins": ["list"], "allowed_origins": ["https://other.example.com"]},
        "/ws/": {"streams": {"posts": "/ws/posts/"}},
        "/ws/other-mux/": {"streams": {"posts": "/ws/posts/"}, "allowed_origins": ["https://other.example.com"]},
        "/ws/api/": {"routepatterns": {"^posts/$": {"model": "posts", "handler": "ListAPIActionHandler"}}},
        "/ws/other-api/": {"allowed_origins": ["https://other.example.com"],
                           "routepatterns": {"^posts/$": {"model": "posts", "handler": "ListAPIActionHandler"}}}}})";
}

class OriginTest : public test_support::ServerTest {
protected:
    void StartServer(const std::string& auth = "", const std::string& open_origins = R"(["*"])") {
        StartFromConfig(Config(auth, open_origins));
    }
    // The HTTP status of a handshake (101 when it opened).
    int Handshake(const std::string& path, const Headers& headers = {}) { return Try(path, headers).http_status; }
    int WithOrigin(const std::string& path, const std::string& origin) { return Handshake(path, {{"Origin", origin}}); }
};

TEST_F(OriginTest, AForeignOriginIsRefusedWith403AListedOneOrNoneOpens) {
    StartServer();
    EXPECT_EQ(WithOrigin("/ws/posts/", "https://evil.example.net"), 403);
    EXPECT_EQ(WithOrigin("/ws/posts/", "https://app.example.com"), 101);
    EXPECT_EQ(WithOrigin("/ws/posts/", "http://localhost:3000"), 101);
    EXPECT_EQ(Handshake("/ws/posts/"), 101) << "no Origin header: not a browser, nothing to hijack";
    // scheme://host[:port] exactly, the host case-insensitively.
    EXPECT_EQ(WithOrigin("/ws/posts/", "https://APP.Example.COM"), 101);
    EXPECT_EQ(WithOrigin("/ws/posts/", "http://app.example.com"), 403) << "another scheme";
    EXPECT_EQ(WithOrigin("/ws/posts/", "https://app.example.com:8443"), 403) << "another port";
    EXPECT_EQ(WithOrigin("/ws/posts/", "http://localhost:3001"), 403) << "another port";
    EXPECT_EQ(WithOrigin("/ws/posts/", "http://localhost"), 403) << "no port where one is listed";
    EXPECT_EQ(WithOrigin("/ws/posts/", "https://app.example.com.evil.example.net"), 403);
    EXPECT_EQ(WithOrigin("/ws/posts/", "null"), 403) << "an opaque origin (sandboxed frame, file://)";
    EXPECT_EQ(WithOrigin("/ws/posts/", ""), 403) << "an empty Origin header is not a missing one";
}

TEST_F(OriginTest, ARouteListOverridesTheServersAndAStarAllowsAny) {
    StartServer();
    EXPECT_EQ(WithOrigin("/ws/open/", "https://evil.example.net"), 101);
    EXPECT_EQ(WithOrigin("/ws/other/", "https://other.example.com"), 101);
    EXPECT_EQ(WithOrigin("/ws/other/", "https://app.example.com"), 403) << "the route's list replaces the server's";
}

TEST_F(OriginTest, MultiplexerAndRoutedRoutesCheckTheOriginToo) {
    StartServer();
    for (const std::string path : {"/ws/", "/ws/api/"}) {
        EXPECT_EQ(WithOrigin(path, "https://evil.example.net"), 403) << path;
        EXPECT_EQ(WithOrigin(path, "https://app.example.com"), 101) << path;
        EXPECT_EQ(Handshake(path), 101) << path;
    }
    for (const std::string path : {"/ws/other-mux/", "/ws/other-api/"}) {
        EXPECT_EQ(WithOrigin(path, "https://app.example.com"), 403) << path;
        EXPECT_EQ(WithOrigin(path, "https://other.example.com"), 101) << path;
    }
    // A refused handshake opened nothing; the server still serves.
    auto ws = WsClient::Connect("127.0.0.1", server_->port(), "/ws/api/", {{"Origin", "https://app.example.com"}});
    ASSERT_TRUE(ws) << ws.error;
    auto reply = ws->Request(R"({"action": "list", "route": "posts/"})");
    ASSERT_TRUE(reply);
    EXPECT_NE(reply->find("\"status\":200"), std::string::npos) << *reply;
}

// With an origin allow-list, a cookie token authenticates the socket of a listed origin (and of a client that sends
// no Origin); a foreign origin never gets that far.
TEST_F(OriginTest, CookieTokensAuthenticateBehindTheAllowList) {
    StartServer(std::string(R"("auth": {"tokens": {")") + kToken + R"(": {"user": "alice", "id": 1}},
                                        "cookie": "token"},)",
                R"(["https://open.example.com"])");
    const std::string cookie = std::string("theme=dark; token=") + kToken;
    auto status_of_list = [&](const Headers& headers) {
        auto ws = WsClient::Connect("127.0.0.1", server_->port(), "/ws/posts/", headers);
        EXPECT_TRUE(ws) << ws.error << " (HTTP " << ws.http_status << ")";
        if (!ws) return 0;
        auto reply = ws->Request(R"({"action": "list"})");
        return reply && reply->find("\"response_status\":200") != std::string::npos ? 200 : 403;
    };
    EXPECT_EQ(status_of_list({{"Origin", "https://app.example.com"}, {"Cookie", cookie}}), 200);
    EXPECT_EQ(status_of_list({{"Cookie", cookie}}), 200);
    EXPECT_EQ(status_of_list({{"Origin", "https://app.example.com"}}), 403) << "anonymous without the cookie";
    EXPECT_EQ(Handshake("/ws/posts/", {{"Origin", "https://evil.example.net"}, {"Cookie", cookie}}), 403);
}

// Cookie authentication is off by default: a cookie named "token" is not a credential unless configured.
TEST_F(OriginTest, CookiesAreNotReadByDefault) {
    StartServer(std::string(R"("auth": {"tokens": {")") + kToken + R"(": {"user": "alice", "id": 1}}},)");
    auto ws = WsClient::Connect("127.0.0.1", server_->port(), "/ws/posts/",
                                {{"Origin", "https://app.example.com"}, {"Cookie", std::string("token=") + kToken}});
    ASSERT_TRUE(ws) << ws.error;
    auto reply = ws->Request(R"({"action": "list"})");
    ASSERT_TRUE(reply);
    EXPECT_NE(reply->find("\"response_status\":403"), std::string::npos) << "the socket is anonymous: " << *reply;
    auto by_query = WsClient::Connect("127.0.0.1", server_->port(), std::string("/ws/posts/?token=") + kToken);
    ASSERT_TRUE(by_query) << by_query.error;
    reply = by_query->Request(R"({"action": "list"})");
    ASSERT_TRUE(reply);
    EXPECT_NE(reply->find("\"response_status\":200"), std::string::npos) << *reply;
}

// From C++, a cookie source without an origin allow-list is ignored (with one warning at start), whatever sends the
// cookie: the combination cannot open an authenticated socket for a page of another site.
TEST(OriginCppTest, CookieCredentialsAreIgnoredWithoutAnAllowList) {
    testing::TempDir dir;
    transport::ServerOptions options = test_support::TestServerOptions(dir, "cookies.db", 2);
    User alice;
    alice.id = "1";
    alice.name = "alice";
    TokenSources sources;
    sources.cookie = "token";
    options.auth.authenticator =
        std::make_shared<StaticTokenAuthenticator>(std::map<std::string, User>{{kToken, alice}}, sources);
    transport::Server server(options);
    server.AddModel(Schema::FromJson("posts", R"({"fields": {"title": {"type": "text"}}})"));
    ConsumerOptions posts;
    posts.model = "posts";
    posts.permissions = {std::make_shared<IsAuthenticated>()};
    posts.mixins = {ListModelMixin()};
    server.Route("/ws/posts/", std::make_shared<GenericConsumer>(posts));
    ConsumerOptions guarded = posts;
    EndpointOptions guarded_options;
    guarded_options.allowed_origins = std::vector<std::string>{"https://app.example.com"};
    server.Route("/ws/guarded/", std::make_shared<GenericConsumer>(guarded), guarded_options);
    server.Start();
    auto list_status = [&](const std::string& path, const Headers& headers) {
        auto ws = WsClient::Connect("127.0.0.1", server.port(), path, headers);
        EXPECT_TRUE(ws) << ws.error;
        if (!ws) return 0;
        auto reply = ws->Request(R"({"action": "list"})");
        return reply && reply->find("\"response_status\":200") != std::string::npos ? 200 : 403;
    };
    const Headers cookie = {{"Origin", "https://evil.example.net"}, {"Cookie", std::string("token=") + kToken}};
    EXPECT_EQ(list_status("/ws/posts/", cookie), 403) << "the cookie is ignored: the socket is anonymous";
    EXPECT_EQ(list_status("/ws/guarded/", {{"Origin", "https://app.example.com"}, cookie[1]}), 200);
    EXPECT_EQ(list_status("/ws/posts/?token=" + std::string(kToken), {}), 200) << "other sources still work";
    server.Stop();
}

}  // namespace
}  // namespace syncline
