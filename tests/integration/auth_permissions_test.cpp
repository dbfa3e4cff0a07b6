// docs/protocol.md §8 over real websockets: permissions (can_connect, IsAuthenticated, ReadOnly, and/or/not,
// object-level owner checks on every detail action, list filtering in SQL and in memory, pushes for rows that become
// invisible, permissions that throw) and authentication (static tokens and HS256 JWTs from a query parameter, a Bearer
// header or a cookie; the anonymous and invalid-token policies; tokens never logged). Servers are built from the JSON
// config (the config keys) and from C++ (custom permissions).

#include <syncline/auth/fingerprint.hpp>
#include <syncline/auth/token_authenticator.hpp>
#include <syncline/config/config.hpp>
#include <syncline/core/consumer/permissions.hpp>
#include <syncline/core/consumer/subscriptions.hpp>
#include <syncline/core/support/log.hpp>
#include <syncline/test_support/jwt_mint.hpp>
#include <syncline/test_support/server_fixture.hpp>
#include <syncline/test_support/ws_client.hpp>
#include <syncline/transport/server.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <jwt.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <set>
#include <thread>

#include "../storage/test_db.hpp"

namespace syncline {
namespace {

// The authenticators that verify tokens: the auth module.
using auth::StaticTokenAuthenticator;
using auth::TokenFingerprint;

using test_support::Headers;
using test_support::WsClient;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kSecret = "integration-secret-7f3a";

// Users of the token table: alice (id 1), bob (id 2), carol (id 3, editors), dave (id 4, staff).
constexpr const char* kAliceToken = "tok-alice-5b1e";
constexpr const char* kBobToken = "tok-bob-93c2";
constexpr const char* kCarolToken = "tok-carol-11d4";

std::string Models() {
    return R"("models": {"posts": {"fields": {
        "id": {"type": "integer", "primary_key": true}, "title": {"type": "text", "max_length": 100},
        "owner_id": {"type": "integer", "default": 0}}}},)";
}

std::string AuthJson(const std::string& extra = "") {
    return std::string(R"("auth": {"tokens": {
        "tok-alice-5b1e": {"user": "alice", "id": 1}, "tok-bob-93c2": {"user": "bob", "id": 2},
        "tok-carol-11d4": {"user": "carol", "id": 3, "groups": ["editors"]}},
        "jwt": {"secret": "integration-secret-7f3a", "leeway_s": 30})") +
           extra + "},";
}

std::string Config(const std::string& auth) {
    const std::string all = R"(["list", "retrieve", "create", "update", "patch", "delete"])";
    return R"({"database": "auth.db", "listen": {"port": 0}, "workers": 2, )" + Models() + auth + R"(
      "routes": {
        "/ws/open/": {"model": "posts", "mixins": )" +
           all + R"(},
        "/ws/auth/": {"model": "posts", "permissions": ["is_authenticated"], "mixins": )" +
           all + R"(},
        "/ws/readonly/": {"model": "posts", "permissions": ["read_only"], "mixins": )" +
           all + R"(},
        "/ws/and/": {"model": "posts", "permissions": [{"and": ["is_authenticated", "read_only"]}],
                     "mixins": )" +
           all + R"(},
        "/ws/or/": {"model": "posts", "permissions": [{"or": [{"group": "editors"}, "read_only"]}],
                    "mixins": )" +
           all + R"(},
        "/ws/not/": {"model": "posts", "permissions": [{"not": "read_only"}], "mixins": )" +
           all + R"(},
        "/ws/mine/": {"model": "posts", "permissions": [{"owner": "owner_id"}], "filter_fields": ["title"],
                      "mixins": ["list", "retrieve", "update", "patch", "delete", "observe_instance",
                                 "observe_list"]},
        "/ws/mine-pages/": {"model": "posts", "permissions": [{"owner": "owner_id"}], "mixins": ["list", "retrieve"],
                            "pagination": "limit_offset", "page_size": 2},
        "/ws/mine-stream/": {"model": "posts", "permissions": [{"owner": "owner_id"}], "mixins": ["list", "retrieve"],
                             "pagination": "streamed", "page_size": 2},
        "/ws/mine-or-editor/": {"model": "posts", "mixins": ["list", "retrieve"], "group_by": "owner_id",
                                "permissions": [{"or": [{"owner": "owner_id"}, {"group": "editors"}]}]}}})";
}

std::int64_t Now() { return test_support::NowSeconds(); }

// A token as a user's backend would mint it; JWT_ALG_NONE gives an unsigned token.
std::string Mint(const std::string& payload_json, const std::string& secret = kSecret, jwt_alg_t alg = JWT_ALG_HS256) {
    return test_support::MintJwt(payload_json, secret, alg);
}

std::string JwtFor(const std::string& sub, std::int64_t exp_from_now) {
    return Mint(R"({"sub": ")" + sub + R"(", "name": "jwt-user", "exp": )" + std::to_string(Now() + exp_from_now) +
                "}");
}

struct Frame {
    rapidjson::Document doc;
    std::string text;
    int status() const { return doc["response_status"].GetInt(); }
    std::string action() const { return doc["action"].IsString() ? doc["action"].GetString() : ""; }
    std::string request_id() const { return doc["request_id"].IsString() ? doc["request_id"].GetString() : ""; }
    const rapidjson::Value& data() const { return doc["data"]; }
    std::string error() const {
        return doc["errors"].IsArray() && doc["errors"].Size() && doc["errors"][0].IsString()
                   ? doc["errors"][0].GetString()
                   : "";
    }
};

Frame Next(WsClient& ws, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    Frame f;
    auto text = ws.Receive(timeout);
    if (!text) {
        f.doc.Parse(R"({"response_status": -1, "action": "<no frame>", "data": null, "request_id": null,
                        "errors": []})");
        return f;
    }
    f.text = *text;
    f.doc.Parse(text->c_str());
    return f;
}

Frame Call(WsClient& ws, const std::string& request) {
    EXPECT_TRUE(ws.SendText(request));
    return Next(ws);
}

int Status(WsClient& ws, const std::string& request) { return Call(ws, request).status(); }

std::set<std::int64_t> Ids(const rapidjson::Value& rows) {
    std::set<std::int64_t> ids;
    if (rows.IsArray()) {
        for (const auto& row : rows.GetArray()) ids.insert(row["id"].GetInt64());
    }
    return ids;
}

constexpr const char* kDenied = "You do not have permission to perform this action.";

// Captures core's log lines (installed after Server::Start, which installs its own spdlog sink).
class LogCapture {
public:
    LogCapture() {
        SetLogSink([this](LogLevel, std::string_view line) {
            std::lock_guard<std::mutex> lock(mutex_);
            text_ += std::string(line) + "\n";
        });
    }
    ~LogCapture() { SetLogSink(nullptr); }
    std::string text() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return text_;
    }
    // Waits for a line containing `needle` (the log may be written from another thread).
    bool WaitFor(const std::string& needle) const {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (std::chrono::steady_clock::now() < deadline) {
            if (text().find(needle) != std::string::npos) return true;
            std::this_thread::yield();
        }
        return false;
    }

private:
    mutable std::mutex mutex_;
    std::string text_;
};

// Every test runs on both engines (AuthPermissionsTest.X/Sqlite, .../Postgres); so do CppPermissionsTest's.
class AuthPermissionsTest : public test_support::ServerTest,
                            public ::testing::WithParamInterface<test_support::Engine> {
protected:
    void StartServer(const std::string& auth = AuthJson()) {
        StartFromConfig(Config(auth));
        // alice owns 1, 3, 5; bob owns 2, 4; nobody owns 6; 7 is alice's sentinel row.
        const std::int64_t owners[] = {1, 2, 1, 2, 1, 0, 1};
        for (std::int64_t owner : owners) {
            server_->database().Insert("posts", {{"title", "p" + std::to_string(owner)}, {"owner_id", Value(owner)}});
        }
        WaitRelayed(7);
    }
    void SetUp() override {
        if (!UseEngine(GetParam())) GTEST_SKIP() << test_support::kPgSkipReason;
        StartServer();
    }

    // A socket authenticated as the token's user, through the query parameter.
    std::unique_ptr<WsClient> As(const std::string& path, const char* token) {
        return Connect(path + "?token=" + token);
    }
    std::vector<std::int64_t> AllIds() {
        std::vector<std::int64_t> ids;
        for (const Row& row : server_->database().List("posts", Query{})) ids.push_back(row.at(0).AsInteger());
        return ids;
    }
};

TEST_P(AuthPermissionsTest, IsAuthenticatedConnectsAnonymousSocketsThenAnswers403PerAction) {
    auto anonymous = Connect("/ws/auth/");
    for (const char* request : {R"({"action": "list", "request_id": 1})", R"({"action": "retrieve", "pk": 1})",
                                R"({"action": "create", "data": {"title": "x"}})", R"({"action": "delete", "pk": 1})",
                                R"({"action": "fly"})", R"({"action": 5})"}) {
        Frame f = Call(*anonymous, request);
        EXPECT_EQ(f.status(), 403) << request << " -> " << f.text;  // 403 beats 405 for "fly" and 5
        EXPECT_EQ(f.error(), kDenied);
        EXPECT_TRUE(f.data().IsNull());
        EXPECT_TRUE(anonymous->is_open());
    }
    EXPECT_EQ(Call(*anonymous, R"({"action": "list", "request_id": "r"})").request_id(), "r");
    auto alice = As("/ws/auth/", kAliceToken);
    EXPECT_EQ(Status(*alice, R"({"action": "list"})"), 200);
    EXPECT_EQ(Status(*alice, R"({"action": "retrieve", "pk": 2})"), 200);
    EXPECT_EQ(Status(*alice, R"({"action": "fly"})"), 405);
}

TEST_P(AuthPermissionsTest, ReadOnlyRefusesWritesAndAllowsReads) {
    auto ws = As("/ws/readonly/", kAliceToken);
    EXPECT_EQ(Status(*ws, R"({"action": "list"})"), 200);
    EXPECT_EQ(Status(*ws, R"({"action": "retrieve", "pk": 1})"), 200);
    EXPECT_EQ(Status(*ws, R"({"action": "retrieve", "pk": 99})"), 404);
    for (const char* write :
         {R"({"action": "create", "data": {"title": "x"}})", R"({"action": "update", "pk": 1, "data": {"title": "x"}})",
          R"({"action": "patch", "pk": 1, "data": {"title": "x"}})", R"({"action": "delete", "pk": 1})",
          R"({"action": "delete", "pk": 99})"}) {
        Frame f = Call(*ws, write);
        EXPECT_EQ(f.status(), 403) << write;
        EXPECT_EQ(f.error(), kDenied);
    }
    EXPECT_EQ(Status(*ws, R"({"action": "fly"})"), 405);  // an unknown action is not a write: 405 follows
    EXPECT_EQ(server_->database().Get("posts", "id", Value(1))->at(1).AsText(), "p1");  // nothing was written
}

TEST_P(AuthPermissionsTest, AndOrNotCompose) {
    // and: authenticated AND read-only.
    auto anon_and = Connect("/ws/and/");
    EXPECT_EQ(Status(*anon_and, R"({"action": "list"})"), 403);
    auto alice_and = As("/ws/and/", kAliceToken);
    EXPECT_EQ(Status(*alice_and, R"({"action": "list"})"), 200);
    EXPECT_EQ(Status(*alice_and, R"({"action": "create", "data": {"title": "x"}})"), 403);
    // or: editors may write, everybody may read.
    auto anon_or = Connect("/ws/or/");
    EXPECT_EQ(Status(*anon_or, R"({"action": "list"})"), 200);
    EXPECT_EQ(Status(*anon_or, R"({"action": "create", "data": {"title": "x"}})"), 403);
    auto alice_or = As("/ws/or/", kAliceToken);
    EXPECT_EQ(Status(*alice_or, R"({"action": "patch", "pk": 1, "data": {"title": "x"}})"), 403);
    auto carol_or = As("/ws/or/", kCarolToken);
    EXPECT_EQ(Status(*carol_or, R"({"action": "create", "data": {"title": "by carol"}})"), 201);
    EXPECT_EQ(Status(*carol_or, R"({"action": "list"})"), 200);
    // not: the negation of read-only allows only writes (and refuses unknown actions, which read-only allows).
    auto anon_not = Connect("/ws/not/");
    EXPECT_EQ(Status(*anon_not, R"({"action": "list"})"), 403);
    EXPECT_EQ(Status(*anon_not, R"({"action": "retrieve", "pk": 1})"), 403);
    EXPECT_EQ(Status(*anon_not, R"({"action": "fly"})"), 403);
    EXPECT_EQ(Status(*anon_not, R"({"action": "create", "data": {"title": "x"}})"), 201);
}

TEST_P(AuthPermissionsTest, OwnerIsCheckedOnEveryDetailActionAfterTheLookup) {
    auto alice = As("/ws/mine/", kAliceToken);
    Frame own = Call(*alice, R"({"action": "retrieve", "pk": 1, "request_id": 1})");
    EXPECT_EQ(own.status(), 200);
    EXPECT_EQ(own.data()["owner_id"].GetInt(), 1);
    for (const char* request :
         {R"({"action": "retrieve", "pk": 2})",
          R"({"action": "update", "pk": 2, "data": {"title": "mine now", "owner_id": 1}})",
          R"({"action": "patch", "pk": 2, "data": {"owner_id": 1}})", R"({"action": "delete", "pk": 2})",
          R"({"action": "subscribe_instance", "pk": 2, "request_id": "s"})", R"({"action": "retrieve", "pk": 6})"}) {
        Frame f = Call(*alice, request);
        EXPECT_EQ(f.status(), 403) << request << " -> " << f.text;
        EXPECT_EQ(f.error(), kDenied);
    }
    EXPECT_EQ(server_->database().Get("posts", "id", Value(2))->at(2).AsInteger(), 2);  // bob's row is untouched
    EXPECT_EQ(Status(*alice, R"({"action": "retrieve", "pk": 99})"), 404);              // a missing row is still 404
    EXPECT_EQ(Status(*alice, R"({"action": "patch", "pk": 3, "data": {"title": "edited"}})"), 200);
    EXPECT_EQ(Status(*alice, R"({"action": "subscribe_instance", "pk": 3, "request_id": "s"})"), 201);
    EXPECT_EQ(Status(*alice, R"({"action": "delete", "pk": 5})"), 204);
    // Anonymous sockets own nothing.
    auto anonymous = Connect("/ws/mine/");
    EXPECT_EQ(Status(*anonymous, R"({"action": "retrieve", "pk": 1})"), 403);
    EXPECT_EQ(Call(*anonymous, R"({"action": "list"})").data().Size(), 0u);
    // Bob, authenticated by a JWT whose sub is his id, owns his rows.
    auto bob = Connect("/ws/mine/?token=" + JwtFor("2", 600));
    EXPECT_EQ(Status(*bob, R"({"action": "retrieve", "pk": 2})"), 200);
    EXPECT_EQ(Status(*bob, R"({"action": "retrieve", "pk": 1})"), 403);
}

TEST_P(AuthPermissionsTest, OwnerFiltersPlainPaginatedAndFilteredLists) {
    auto alice = As("/ws/mine/", kAliceToken);
    EXPECT_EQ(Ids(Call(*alice, R"({"action": "list"})").data()), (std::set<std::int64_t>{1, 3, 5, 7}));
    server_->database().Patch("posts", Value(5), {{"title", "special"}});
    server_->database().Patch("posts", Value(4), {{"title", "special"}});  // bob's
    Frame filtered = Call(*alice, R"({"action": "list", "filter": {"title": "special"}})");
    EXPECT_EQ(filtered.status(), 200);
    EXPECT_EQ(Ids(filtered.data()), (std::set<std::int64_t>{5}));

    auto pages = As("/ws/mine-pages/", kAliceToken);
    Frame first = Call(*pages, R"({"action": "list", "limit": 2, "offset": 0})");
    ASSERT_EQ(first.status(), 200) << first.text;
    EXPECT_EQ(first.data()["count"].GetInt(), 4);  // alice's rows, not the table's 7
    EXPECT_EQ(Ids(first.data()["results"]), (std::set<std::int64_t>{1, 3}));
    Frame second = Call(*pages, R"({"action": "list", "limit": 2, "offset": 2})");
    EXPECT_EQ(second.data()["count"].GetInt(), 4);
    EXPECT_EQ(Ids(second.data()["results"]), (std::set<std::int64_t>{5, 7}));
    Frame past = Call(*pages, R"({"action": "list", "limit": 2, "offset": 4})");
    EXPECT_EQ(past.data()["results"].Size(), 0u);
    auto bob = As("/ws/mine-pages/", kBobToken);
    Frame bobs = Call(*bob, R"({"action": "list"})");
    EXPECT_EQ(bobs.data()["count"].GetInt(), 2);
    EXPECT_EQ(Ids(bobs.data()["results"]), (std::set<std::int64_t>{2, 4}));
}

// The issue's invariant: for every user, a list never returns a row that user could not retrieve, and every row the
// user may retrieve is listed.
TEST_P(AuthPermissionsTest, AListNeverShowsARowTheSameUserCouldNotRetrieve) {
    struct Who {
        const char* name;
        std::string query;
    };
    std::vector<Who> users = {{"anonymous", ""},
                              {"alice", std::string("?token=") + kAliceToken},
                              {"bob", std::string("?token=") + kBobToken},
                              {"carol (editor)", std::string("?token=") + kCarolToken},
                              {"jwt user 1", "?token=" + JwtFor("1", 600)}};
    for (const char* route : {"/ws/mine/", "/ws/mine-or-editor/", "/ws/mine-pages/", "/ws/mine-stream/"}) {
        for (const Who& who : users) {
            auto ws = Connect(route + who.query);
            std::set<std::int64_t> listed;
            if (std::string(route) == "/ws/mine-stream/") {
                // Pages of 2 until the rows run out; every frame carries the count of this user's rows.
                ASSERT_TRUE(ws->SendText(R"({"action": "list", "request_id": "s"})"));
                for (;;) {
                    Frame page = Next(*ws);
                    ASSERT_EQ(page.status(), 200) << route << " " << who.name;
                    ASSERT_EQ(page.request_id(), "s");
                    for (std::int64_t id : Ids(page.data()["results"])) listed.insert(id);
                    std::int64_t seen = page.data()["offset"].GetInt64() + page.data()["results"].Size();
                    if (seen >= page.data()["count"].GetInt64()) {
                        EXPECT_EQ(static_cast<std::int64_t>(listed.size()), page.data()["count"].GetInt64());
                        break;
                    }
                }
            } else {
                Frame list = Call(*ws, R"({"action": "list", "limit": 100})");
                ASSERT_EQ(list.status(), 200) << route << " " << who.name;
                const rapidjson::Value& rows = list.data().IsObject() ? list.data()["results"] : list.data();
                listed = Ids(rows);
            }
            for (std::int64_t id : AllIds()) {
                Frame got = Call(*ws, R"({"action": "retrieve", "pk": )" + std::to_string(id) + "}");
                bool in_list = listed.count(id) > 0;
                EXPECT_EQ(got.status(), in_list ? 200 : 403) << route << " " << who.name << " row " << id;
            }
        }
    }
    // And the answers differ by user, so the check above is not vacuous.
    EXPECT_EQ(
        Ids(Call(*Connect(std::string("/ws/mine-or-editor/?token=") + kCarolToken), R"({"action": "list"})").data()),
        (std::set<std::int64_t>{1, 2, 3, 4, 5, 6, 7}));
    EXPECT_EQ(Ids(Call(*As("/ws/mine-or-editor/", kBobToken), R"({"action": "list"})").data()),
              (std::set<std::int64_t>{2, 4}));
    Frame streamed = Call(*As("/ws/mine-stream/", kAliceToken), R"({"action": "list"})");
    EXPECT_EQ(streamed.data()["count"].GetInt(), 4);  // alice's rows, not the table's 7
}

TEST_P(AuthPermissionsTest, ARowThatBecomesInvisibleIsPushedAsADelete) {
    auto alice = As("/ws/mine/", kAliceToken);
    ASSERT_EQ(Status(*alice, R"({"action": "subscribe_instance", "pk": 1, "request_id": "one"})"), 201);
    ASSERT_EQ(Status(*alice, R"({"action": "subscribe_list", "request_id": "all"})"), 201);
    // Row 1 goes to bob: an instance delete and a list delete for alice.
    server_->database().Patch("posts", Value(1), {{"owner_id", Value(2)}});
    std::map<std::string, std::string> seen;
    for (int i = 0; i < 2; ++i) {
        Frame f = Next(*alice);
        seen[f.request_id()] = f.action() + ":" + std::to_string(f.status());
        if (f.request_id() == "one") {
            EXPECT_EQ(f.data()["pk"].GetInt(), 1) << f.text;
        }
    }
    EXPECT_EQ(seen["one"], "delete:204");
    EXPECT_EQ(seen["all"], "delete:200");
    // A change to a row alice cannot see is not shown to her: her instance subscription gets another delete (as
    // for a row outside the queryset), her list subscription nothing; the sentinel row's change comes next.
    server_->database().Patch("posts", Value(1), {{"title", "bob's now"}});
    server_->database().Patch("posts", Value(7), {{"title", "sentinel"}});
    Frame again = Next(*alice);
    EXPECT_EQ(again.request_id(), "one") << again.text;
    EXPECT_EQ(again.action(), "delete");
    EXPECT_THAT(again.text, Not(HasSubstr("bob's now")));
    Frame sentinel = Next(*alice);
    EXPECT_EQ(sentinel.request_id(), "all") << sentinel.text;
    EXPECT_EQ(sentinel.action(), "update");
    EXPECT_EQ(sentinel.data()["id"].GetInt(), 7);
    // Row 1 comes back to alice: it enters her list (create) and her instance subscription sees it again (update).
    server_->database().Patch("posts", Value(1), {{"owner_id", Value(1)}});
    seen.clear();
    for (int i = 0; i < 2; ++i) {
        Frame f = Next(*alice);
        seen[f.request_id()] = f.action();
    }
    EXPECT_EQ(seen["one"], "update");
    EXPECT_EQ(seen["all"], "create");
}

TEST_P(AuthPermissionsTest, GroupPushesFollowTheObjectPermission) {
    auto alice = As("/ws/mine-or-editor/", kAliceToken);
    auto carol = As("/ws/mine-or-editor/", kCarolToken);
    for (auto* ws : {alice.get(), carol.get()}) {
        ASSERT_EQ(Status(*ws, R"({"action": "subscribe_group", "request_id": "g"})"), 201);
    }
    server_->database().Patch("posts", Value(3), {{"owner_id", Value(2)}});  // alice's row 3 goes to bob
    Frame to_alice = Next(*alice);
    EXPECT_EQ(to_alice.action(), "delete") << to_alice.text;  // she may no longer see it: it left her group
    Frame to_carol = Next(*carol);
    EXPECT_EQ(to_carol.action(), "update") << to_carol.text;  // an editor sees every row
}

TEST_P(AuthPermissionsTest, TokensFromQueryParameterBearerHeaderAndCookie) {
    // Cookie tokens are read only behind an origin allow-list (a browser sends its cookies whichever site's page
    // opens the socket); a handshake without an Origin header is not a browser's.
    server_.reset();
    StartServer(AuthJson(R"(, "cookie": "token")") + R"("allowed_origins": ["https://app.example.com"],)");
    auto retrieve_own = [](WsClient& ws) { return Status(ws, R"({"action": "retrieve", "pk": 2})"); };
    auto by_query = Connect(std::string("/ws/mine/?token=") + kBobToken);
    EXPECT_EQ(retrieve_own(*by_query), 200);
    auto by_header = Connect("/ws/mine/", {{"Authorization", std::string("Bearer ") + kBobToken}});
    EXPECT_EQ(retrieve_own(*by_header), 200);
    auto by_cookie = Connect("/ws/mine/", {{"Cookie", std::string("theme=dark; token=") + kBobToken}});
    EXPECT_EQ(retrieve_own(*by_cookie), 200);
    auto jwt_header = Connect("/ws/mine/", {{"Authorization", "Bearer " + JwtFor("2", 600)}});
    EXPECT_EQ(retrieve_own(*jwt_header), 200);
    auto jwt_cookie = Connect("/ws/mine/", {{"Cookie", "token=" + JwtFor("2", 600)}});
    EXPECT_EQ(retrieve_own(*jwt_cookie), 200);
    auto anonymous = Connect("/ws/mine/");
    EXPECT_EQ(retrieve_own(*anonymous), 403);
}

// Default policy: anonymous allowed, an invalid token is anonymous. Each case is checked on the is_authenticated
// route: 200 means the socket is authenticated, 403 that it is anonymous.
TEST_P(AuthPermissionsTest, InvalidTokensAreAnonymousByDefaultAndNeverLogged) {
    LogCapture log;
    const std::string payload = R"({"sub": "1", "exp": )" + std::to_string(Now() + 600) + "}";
    struct Case {
        const char* name;
        std::string token;
        int status;
    };
    std::vector<Case> cases = {
        {"static token", kAliceToken, 200},
        {"jwt valid", JwtFor("1", 600), 200},
        {"jwt expired within the leeway", JwtFor("1", -10), 200},
        {"jwt expired beyond the leeway", JwtFor("1", -120), 403},
        {"jwt forged signature", Mint(payload, "not-the-secret"), 403},
        {"jwt alg none", Mint(payload, "", JWT_ALG_NONE), 403},
        {"jwt HS512", Mint(payload, kSecret, JWT_ALG_HS512), 403},
        {"garbage", "garbage-token-value", 403},
        {"unknown static token", "tok-mallory-0000", 403},
    };
    for (const Case& c : cases) {
        auto ws = Connect("/ws/auth/", {{"Authorization", "Bearer " + c.token}});
        ASSERT_TRUE(ws) << c.name;
        EXPECT_EQ(Status(*ws, R"({"action": "list"})"), c.status) << c.name;
    }
    auto missing = Connect("/ws/auth/");
    EXPECT_EQ(Status(*missing, R"({"action": "list"})"), 403);
    ASSERT_TRUE(log.WaitFor("unknown token"));
    // The chain (token table, then JWT) names both reasons.
    EXPECT_THAT(log.text(), HasSubstr("): unknown token; expired; connecting as anonymous"));
    EXPECT_THAT(log.text(), HasSubstr("fingerprint " + TokenFingerprint("garbage-token-value")));
    for (const Case& c : cases) {
        EXPECT_THAT(log.text(), Not(HasSubstr(c.token))) << c.name;
        EXPECT_THAT(log.text(), Not(HasSubstr(c.token.substr(c.token.size() - 8)))) << c.name;
    }
}

TEST_P(AuthPermissionsTest, RefusePolicies) {
    server_.reset();
    StartServer(AuthJson(R"(, "anonymous": "refuse", "invalid_token": "refuse")"));
    LogCapture log;
    const std::string payload = R"({"sub": "1", "exp": )" + std::to_string(Now() + 600) + "}";
    auto missing = Try("/ws/open/");
    EXPECT_FALSE(missing);
    EXPECT_EQ(missing.http_status, 401);
    for (const std::string& bad : {JwtFor("1", -120), Mint(payload, "not-the-secret"), Mint(payload, "", JWT_ALG_NONE),
                                   std::string("garbage"), std::string("tok-mallory-0000")}) {
        auto refused = Try("/ws/open/?token=" + bad);
        EXPECT_FALSE(refused);
        EXPECT_EQ(refused.http_status, 401) << bad;
        EXPECT_THAT(log.text(), Not(HasSubstr(bad)));
    }
    EXPECT_THAT(log.text(), HasSubstr("handshake refused with 401"));
    EXPECT_THAT(log.text(), HasSubstr("auth: no credentials from "));
    auto ok = Connect(std::string("/ws/auth/?token=") + kAliceToken);
    EXPECT_EQ(Status(*ok, R"({"action": "list"})"), 200);
    auto within_leeway = Connect("/ws/auth/", {{"Authorization", "Bearer " + JwtFor("1", -10)}});
    EXPECT_EQ(Status(*within_leeway, R"({"action": "list"})"), 200);
}

TEST_P(AuthPermissionsTest, AnonymousRefusedButInvalidTokensStillRefusedToo) {
    server_.reset();
    StartServer(AuthJson(R"(, "anonymous": "refuse")"));  // invalid_token defaults to anonymous, then refused
    EXPECT_EQ(Try("/ws/open/").http_status, 401);
    EXPECT_EQ(Try("/ws/open/?token=garbage").http_status, 401);
    EXPECT_TRUE(Try(std::string("/ws/open/?token=") + kAliceToken));
}

TEST_P(AuthPermissionsTest, InvalidTokensRefusedButAnonymousAllowed) {
    server_.reset();
    StartServer(AuthJson(R"(, "invalid_token": "refuse")"));
    EXPECT_EQ(Try("/ws/open/?token=" + JwtFor("1", -120)).http_status, 401);
    auto anonymous = Connect("/ws/auth/");
    EXPECT_EQ(Status(*anonymous, R"({"action": "list"})"), 403);
}

// Permissions that only C++ can express: can_connect, an object rule with no SQL form, and permissions that throw.

class StaffOnly final : public Permission {
public:
    bool CanConnect(const ConnectionContext& connection) const override {
        const auto& groups = connection.user().groups;
        return std::find(groups.begin(), groups.end(), "staff") != groups.end();
    }
    bool HasPermission(const ActionRequest&, const GenericConsumer&) const override { return true; }
};

// Object level, in memory only (no ObjectFilter): a row is visible when its title starts with the user's name.
class TitleStartsWithName final : public Permission {
public:
    bool HasPermission(const ActionRequest&, const GenericConsumer&) const override { return true; }
    bool HasObjectPermission(const ActionRequest& request, const GenericConsumer& consumer,
                             const Row& row) const override {
        const std::string& name = request.connection().user().name;
        const std::string& title = row.at(*consumer.schema().FieldIndex("title")).AsText();
        return !name.empty() && title.rfind(name, 0) == 0;
    }
};

// Throws when a request carries "explode", when the handshake has ?explode_connect, and on pushes of row 1.
class Exploding final : public Permission {
public:
    bool CanConnect(const ConnectionContext& connection) const override {
        if (connection.request().QueryParam("explode_connect")) throw std::runtime_error("can_connect exploded");
        return true;
    }
    bool HasPermission(const ActionRequest& request, const GenericConsumer&) const override {
        if (request.Arg("explode")) throw std::runtime_error("has_permission exploded");
        // The observer's request for a push carries the row's pk and no request_id.
        const rapidjson::Value* pk = request.Arg("pk");
        if (request.action() == "subscribe_instance" && !request.Arg("request_id") && pk && pk->IsInt64() &&
            pk->GetInt64() == 1) {
            throw std::runtime_error("push permission exploded");
        }
        return true;
    }
    bool HasObjectPermission(const ActionRequest& request, const GenericConsumer&, const Row&) const override {
        if (request.Arg("explode_object")) throw std::runtime_error("has_object_permission exploded");
        return true;
    }
    std::optional<std::vector<Filter>> ObjectFilter(const ActionRequest& request,
                                                    const GenericConsumer&) const override {
        if (request.Arg("explode_object")) throw std::runtime_error("object_filter exploded");
        return std::vector<Filter>{};
    }
};

class CppPermissionsTest : public test_support::ServerTest, public ::testing::WithParamInterface<test_support::Engine> {
protected:
    void SetUp() override {
        if (!UseEngine(GetParam())) GTEST_SKIP() << test_support::kPgSkipReason;
        transport::ServerOptions options = test_support::TestServerOptions(dir_, "cpp.db", 2);
        options.database = engine_db_->database();
        User ann, dave;
        ann.id = "10";
        ann.name = "ann";
        dave.id = "11";
        dave.name = "dave";
        dave.groups = {"staff"};
        options.auth.authenticator = std::make_shared<StaticTokenAuthenticator>(
            std::map<std::string, User>{{"tok-ann", ann}, {"tok-dave", dave}});
        server_ = std::make_unique<transport::Server>(options);
        server_->AddModel(Schema::FromJson("posts", R"({"fields": {"id": {"type": "integer", "primary_key": true},
                                                         "title": {"type": "text"}}})"));
        auto route = [&](const std::string& path, PermissionPtr permission, std::vector<Mixin> mixins,
                         std::int64_t page_size = 0) {
            ConsumerOptions o;
            o.model = "posts";
            o.permissions = {std::move(permission)};
            o.mixins = std::move(mixins);
            o.page_size = page_size;
            server_->Route(path, std::make_shared<GenericConsumer>(o));
        };
        route("/ws/staff/", std::make_shared<StaffOnly>(), {ListModelMixin()});
        route("/ws/prefix/", std::make_shared<TitleStartsWithName>(), {ListModelMixin(), RetrieveModelMixin()});
        route("/ws/prefix-pages/", std::make_shared<TitleStartsWithName>(),
              {PaginatedModelListMixin(), RetrieveModelMixin()}, 2);
        route("/ws/prefix-and-staff/", And(std::make_shared<TitleStartsWithName>(), std::make_shared<StaffOnly>()),
              {ListModelMixin()});
        route("/ws/explode/", std::make_shared<Exploding>(),
              {ListModelMixin(), PatchModelMixin(), ObserverModelInstanceMixin()});
        server_->Start();
        for (const char* title : {"ann 1", "dave 1", "ann 2", "x", "ann 3", "dave 2", "ann 4", "ann 5"}) {
            server_->database().Insert("posts", {{"title", title}});
        }
        WaitRelayed(8);
    }
};

TEST_P(CppPermissionsTest, CanConnectFalseRefusesTheHandshakeWith403) {
    auto anonymous = Try("/ws/staff/");
    EXPECT_FALSE(anonymous);
    EXPECT_EQ(anonymous.http_status, 403);
    auto ann = Try("/ws/staff/?token=tok-ann");
    EXPECT_EQ(ann.http_status, 403);
    auto dave = Try("/ws/staff/", {{"Authorization", "Bearer tok-dave"}});
    ASSERT_TRUE(dave) << dave.error;
    EXPECT_EQ(Status(*dave, R"({"action": "list"})"), 200);
    // Composed: And keeps the can_connect of its parts.
    EXPECT_EQ(Try("/ws/prefix-and-staff/?token=tok-ann").http_status, 403);
    auto dave_and = Try("/ws/prefix-and-staff/?token=tok-dave");
    ASSERT_TRUE(dave_and);
    EXPECT_EQ(Ids(Call(*dave_and, R"({"action": "list"})").data()), (std::set<std::int64_t>{2, 6}));
}

TEST_P(CppPermissionsTest, ObjectRuleWithoutSqlFormFiltersListsInMemoryWithExactCounts) {
    auto ann = Connect("/ws/prefix/?token=tok-ann");
    EXPECT_EQ(Ids(Call(*ann, R"({"action": "list"})").data()), (std::set<std::int64_t>{1, 3, 5, 7, 8}));
    auto pages = Connect("/ws/prefix-pages/?token=tok-ann");
    std::vector<std::set<std::int64_t>> expected = {{1, 3}, {5, 7}, {8}, {}};
    for (int page = 0; page < 4; ++page) {
        Frame f = Call(*pages, R"({"action": "list", "limit": 2, "offset": )" + std::to_string(page * 2) + "}");
        ASSERT_EQ(f.status(), 200) << f.text;
        EXPECT_EQ(f.data()["count"].GetInt(), 5) << f.text;
        EXPECT_EQ(Ids(f.data()["results"]), expected[static_cast<std::size_t>(page)]) << f.text;
    }
    // And the same rows are exactly those retrieve allows.
    for (std::int64_t id = 1; id <= 8; ++id) {
        bool visible = id == 1 || id == 3 || id == 5 || id == 7 || id == 8;
        EXPECT_EQ(Status(*pages, R"({"action": "retrieve", "pk": )" + std::to_string(id) + "}"), visible ? 200 : 403)
            << id;
    }
    auto anonymous = Connect("/ws/prefix-pages/");
    EXPECT_EQ(Call(*anonymous, R"({"action": "list"})").data()["count"].GetInt(), 0);
}

TEST_P(CppPermissionsTest, APermissionThatThrowsAnswers500AndTheSocketStaysOpen) {
    auto ws = Connect("/ws/explode/");
    LogCapture log;
    for (const char* request : {R"({"action": "list", "explode": 1, "request_id": 1})",
                                R"({"action": "list", "explode_object": 1, "request_id": 2})",
                                R"({"action": "patch", "pk": 1, "data": {"title": "t"}, "explode_object": 1})",
                                R"({"action": "fly", "explode": 1})", R"({"action": 5, "explode": 1})"}) {
        Frame f = Call(*ws, request);
        EXPECT_EQ(f.status(), 500) << request << " -> " << f.text;
        EXPECT_EQ(f.error(), "Internal server error");
        EXPECT_TRUE(ws->is_open());
    }
    EXPECT_EQ(server_->database().Get("posts", "id", Value(1))->at(1).AsText(), "ann 1");
    EXPECT_EQ(Status(*ws, R"({"action": "list"})"), 200);
    EXPECT_THAT(log.text(), HasSubstr("has_permission exploded"));
    EXPECT_THAT(log.text(), HasSubstr("has_object_permission exploded"));
}

TEST_P(CppPermissionsTest, ACanConnectThatThrowsRefusesTheHandshakeWith500) {
    LogCapture log;
    auto refused = Try("/ws/explode/?explode_connect=1");
    EXPECT_FALSE(refused);
    EXPECT_EQ(refused.http_status, 500);
    EXPECT_THAT(log.text(), HasSubstr("can_connect on /ws/explode/ failed"));
    EXPECT_THAT(log.text(), HasSubstr("can_connect exploded"));
    EXPECT_TRUE(Try("/ws/explode/"));
}

TEST_P(CppPermissionsTest, APermissionThatThrowsOnAPushSkipsThatPushAndLogsOnce) {
    auto a = Connect("/ws/explode/");
    auto b = Connect("/ws/explode/");
    for (auto* ws : {a.get(), b.get()}) {
        ASSERT_EQ(Status(*ws, R"({"action": "subscribe_instance", "pk": 1, "request_id": "one"})"), 201);
        ASSERT_EQ(Status(*ws, R"({"action": "subscribe_instance", "pk": 2, "request_id": "two"})"), 201);
    }
    LogCapture log;
    server_->database().Patch("posts", Value(1), {{"title", "skipped"}});
    server_->database().Patch("posts", Value(2), {{"title", "delivered"}});
    for (auto* ws : {a.get(), b.get()}) {
        Frame f = Next(*ws);  // events go out in commit order: row 1's push was skipped if row 2's comes first
        EXPECT_EQ(f.request_id(), "two") << f.text;
        EXPECT_STREQ(f.data()["title"].GetString(), "delivered");
        EXPECT_TRUE(ws->is_open());
    }
    std::string text = log.text();
    std::size_t lines = 0;
    for (std::size_t pos = text.find("push permission exploded"); pos != std::string::npos;
         pos = text.find("push permission exploded", pos + 1)) {
        ++lines;
    }
    EXPECT_EQ(lines, 1u) << text;  // two sockets refused, one line for the event
}

INSTANTIATE_TEST_SUITE_P(Engines, AuthPermissionsTest, test_support::AllEngines(), test_support::EngineParamName);
INSTANTIATE_TEST_SUITE_P(Engines, CppPermissionsTest, test_support::AllEngines(), test_support::EngineParamName);

}  // namespace
}  // namespace syncline
