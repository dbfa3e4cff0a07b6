// Issue 9, item 12, over real websockets with several users: the owner rule compares ids exactly by type (a token
// whose id is "01" never reaches the rows of owner 1: not in lists, in SQL or in memory, not by retrieve, writes or
// subscriptions, not in pushes), and `owner_field` sets the owner from the authenticated user on create and keeps it
// out of the client's reach on create, update and patch (DRF's perform_create with serializer.save(owner=...)).

#include <syncline/config/config.hpp>
#include <syncline/test_support/jwt_mint.hpp>
#include <syncline/test_support/server_fixture.hpp>
#include <syncline/test_support/ws_client.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "../storage/test_db.hpp"

namespace syncline {
namespace {

using test_support::WsClient;

constexpr const char* kSecret = "owner-identity-secret-51";
// alice's id is the JSON integer 1, bob's 2; the impostor's is the string "01" (a user name that a sign-up form
// accepted, say).
constexpr const char* kAlice = "tok-alice-identity";
constexpr const char* kBob = "tok-bob-identity";
constexpr const char* kImpostor = "tok-impostor-identity";
constexpr const char* kDenied = "You do not have permission to perform this action.";

std::string Config() {
    return std::string(R"({"database": "owners.db", "listen": {"port": 0}, "workers": 2,
      "auth": {"tokens": {"tok-alice-identity": {"user": "alice", "id": 1}, "tok-bob-identity": {"user": "bob", "id": 2},
                          "tok-impostor-identity": {"user": "impostor", "id": "01"}},
               "jwt": {"secret": ")") +
           kSecret + R"("}},
      "models": {"posts": {"fields": {"id": {"type": "integer", "primary_key": true}, "title": {"type": "text"},
                 "owner_id": {"type": "integer", "default": 0}, "author": {"type": "text", "blank": true, "default": ""}}}},
      "routes": {
        "/ws/mine/": {"model": "posts", "owner_field": "owner_id", "permissions": [{"owner": "owner_id"}],
                      "mixins": ["list", "retrieve", "create", "update", "patch", "delete", "observe_instance",
                                 "observe_list"]},
        "/ws/either/": {"model": "posts", "permissions": [{"or": [{"owner": "owner_id"}, {"owner": "author"}]}],
                        "mixins": ["list", "retrieve", "observe_instance", "observe_list"]},
        "/ws/by-name/": {"model": "posts", "owner_field": "author", "permissions": [{"owner": "author"}],
                         "mixins": ["list", "retrieve", "create", "patch"]}}})";
}

struct Frame {
    rapidjson::Document doc;
    std::string text;
    int status() const { return doc.HasMember("response_status") ? doc["response_status"].GetInt() : -1; }
    std::string action() const {
        return doc.HasMember("action") && doc["action"].IsString() ? doc["action"].GetString() : "";
    }
    const rapidjson::Value& data() const { return doc["data"]; }
    std::string error() const {
        return doc["errors"].IsArray() && doc["errors"].Size() && doc["errors"][0].IsString()
                   ? doc["errors"][0].GetString()
                   : "";
    }
};

Frame Next(WsClient& ws) {
    Frame f;
    std::optional<std::string> text = ws.Receive(std::chrono::seconds(10));
    f.text = text.value_or(R"({"response_status": -1, "action": "<no frame>", "data": null, "errors": []})");
    f.doc.Parse(f.text.c_str());
    return f;
}

Frame Call(WsClient& ws, const std::string& request) {
    EXPECT_TRUE(ws.SendText(request));
    return Next(ws);
}

std::set<std::int64_t> Ids(const rapidjson::Value& rows) {
    std::set<std::int64_t> ids;
    if (rows.IsArray()) {
        for (const auto& row : rows.GetArray()) ids.insert(row["id"].GetInt64());
    }
    return ids;
}

// Every test runs on both engines (OwnerIdentityTest.X/Sqlite, .../Postgres).
class OwnerIdentityTest : public test_support::ServerTest, public ::testing::WithParamInterface<test_support::Engine> {
protected:
    void SetUp() override {
        if (!UseEngine(GetParam())) GTEST_SKIP() << test_support::kPgSkipReason;
        StartFromConfig(Config());
    }
    // Inserts a row directly (as another process would) and waits until the relay has seen it.
    std::int64_t Insert(const std::string& title, std::int64_t owner_id, const std::string& author) {
        Row row = server_->database().Insert(
            "posts", {{"title", title}, {"owner_id", Value(owner_id)}, {"author", Value(author)}});
        WaitRelayed(server_->database().RowVersion("posts", row.at(0)));
        return row.at(0).AsInteger();
    }
    std::unique_ptr<WsClient> As(const std::string& path, const std::string& token) {
        return Connect(path + "?token=" + token);
    }
};

TEST_P(OwnerIdentityTest, AnIdOfZeroOneNeverReachesTheRowsOfOwnerOne) {
    const std::int64_t alices = Insert("alice's", 1, "alice");
    const std::int64_t also_alices = Insert("alice's too", 1, "1");
    const std::int64_t impostors = Insert("the impostor's, by name", 0, "01");
    const std::string by_jwt = test_support::MintJwt(
        R"({"sub": "01", "exp": )" + std::to_string(test_support::NowSeconds() + 600) + "}", kSecret);
    for (const std::string& token : {std::string(kImpostor), by_jwt}) {
        SCOPED_TRACE(token == kImpostor ? "token table id \"01\"" : "JWT sub \"01\"");
        // The owner rule in SQL: nothing of owner 1 in the list, 403 on every detail action, nothing changed.
        auto mine = As("/ws/mine/", token);
        EXPECT_EQ(Ids(Call(*mine, R"({"action": "list"})").data()), std::set<std::int64_t>{});
        const std::string pk = std::to_string(alices);
        for (const std::string& request :
             {R"({"action": "retrieve", "pk": )" + pk + "}",
              R"({"action": "patch", "pk": )" + pk + R"(, "data": {"title": "taken"}})",
              R"({"action": "update", "pk": )" + pk + R"(, "data": {"title": "taken"}})",
              R"({"action": "delete", "pk": )" + pk + "}",
              R"({"action": "subscribe_instance", "pk": )" + pk + R"(, "request_id": "s"})",
              R"({"action": "subscribe_instance", "pk": )" + pk + R"(, "request_id": "s", "since": 0})"}) {
            Frame f = Call(*mine, request);
            EXPECT_EQ(f.status(), 403) << request << " -> " << f.text;
            EXPECT_EQ(f.error(), kDenied);
        }
        // The owner rule in memory (an "or" of two owner rules has no SQL form): only the row named "01".
        auto either = As("/ws/either/", token);
        EXPECT_EQ(Ids(Call(*either, R"({"action": "list"})").data()), std::set<std::int64_t>{impostors});
        EXPECT_EQ(Call(*either, R"({"action": "retrieve", "pk": )" + pk + "}").status(), 403);
    }
    EXPECT_EQ(server_->database().Get("posts", "id", Value(alices))->at(1), Value("alice's"));
    // Alice, and a JWT whose sub is the integer 1, own both of alice's rows (and not the one named "01").
    const std::string alice_jwt = test_support::MintJwt(
        R"({"sub": 1, "exp": )" + std::to_string(test_support::NowSeconds() + 600) + "}", kSecret);
    for (const std::string& token : {std::string(kAlice), alice_jwt}) {
        auto either = As("/ws/either/", token);
        EXPECT_EQ(Ids(Call(*either, R"({"action": "list"})").data()), (std::set<std::int64_t>{alices, also_alices}));
    }

    // Pushes: the impostor's list and instance subscriptions never carry a row of owner 1. Alice's row changes first,
    // then the impostor's own row: the first push the impostor gets is its own row's.
    auto impostor = As("/ws/either/", kImpostor);
    ASSERT_EQ(Call(*impostor, R"({"action": "subscribe_list", "request_id": "list"})").status(), 201);
    ASSERT_EQ(Call(*impostor, R"({"action": "subscribe_instance", "pk": )" + std::to_string(impostors) +
                                  R"(, "request_id": "own"})")
                  .status(),
              201);
    server_->database().Patch("posts", Value(alices), {{"title", "alice edits"}});
    server_->database().Patch("posts", Value(also_alices), {{"author", "01 "}});  // near, not equal: still not his
    server_->database().Patch("posts", Value(impostors), {{"title", "sentinel"}});
    std::set<std::string> seen;
    for (int i = 0; i < 2; ++i) {
        Frame push = Next(*impostor);
        EXPECT_EQ(push.data()["id"].GetInt64(), impostors) << push.text;
        EXPECT_EQ(push.text.find("alice edits"), std::string::npos) << push.text;
        seen.insert(push.doc["request_id"].GetString());
    }
    EXPECT_EQ(seen, (std::set<std::string>{"list", "own"}));
}

TEST_P(OwnerIdentityTest, OwnerFieldIsTheCreatorAndNoClientCanChangeIt) {
    auto alice = As("/ws/mine/", kAlice);
    auto bob = As("/ws/mine/", kBob);
    // Alice's pushes go to a socket of their own, so they never interleave with the replies checked below.
    auto alice_watch = As("/ws/mine/", kAlice);
    ASSERT_EQ(Call(*alice_watch, R"({"action": "subscribe_list", "request_id": "mine"})").status(), 201);

    // Bob claims alice as the owner: ignored (read-only), the row is bob's. Alice is not pushed bob's row.
    Frame bobs = Call(*bob, R"({"action": "create", "data": {"title": "by bob", "owner_id": 1}})");
    ASSERT_EQ(bobs.status(), 201) << bobs.text;
    EXPECT_EQ(bobs.data()["owner_id"].GetInt(), 2);
    const std::int64_t bob_row = bobs.data()["id"].GetInt64();
    Frame alices = Call(*alice, R"({"action": "create", "data": {"title": "by alice"}})");
    ASSERT_EQ(alices.status(), 201) << alices.text;
    EXPECT_EQ(alices.data()["owner_id"].GetInt(), 1);
    const std::int64_t alice_row = alices.data()["id"].GetInt64();
    Frame pushed = Next(*alice_watch);  // the first push alice gets is her own row's creation, not bob's
    EXPECT_EQ(pushed.action(), "create") << pushed.text;
    EXPECT_EQ(pushed.data()["id"].GetInt64(), alice_row) << pushed.text;

    // Nobody can hand a row to someone else or take it: update and patch ignore the owner field.
    const std::string a = std::to_string(alice_row);
    Frame patched = Call(*alice, R"({"action": "patch", "pk": )" + a + R"(, "data": {"owner_id": 2, "title": "t"}})");
    EXPECT_EQ(patched.status(), 200) << patched.text;
    EXPECT_EQ(patched.data()["owner_id"].GetInt(), 1);
    Frame updated = Call(*alice, R"({"action": "update", "pk": )" + a + R"(, "data": {"owner_id": 2, "title": "u"}})");
    EXPECT_EQ(updated.status(), 200) << updated.text;
    EXPECT_EQ(updated.data()["owner_id"].GetInt(), 1);
    EXPECT_EQ(Call(*bob, R"({"action": "patch", "pk": )" + a + R"(, "data": {"owner_id": 2}})").status(), 403);
    EXPECT_EQ(server_->database().Get("posts", "id", Value(alice_row))->at(2), Value(1));
    EXPECT_EQ(server_->database().Get("posts", "id", Value(bob_row))->at(2), Value(2));
    EXPECT_EQ(Ids(Call(*alice, R"({"action": "list"})").data()), std::set<std::int64_t>{alice_row});
    EXPECT_EQ(Ids(Call(*bob, R"({"action": "list"})").data()), std::set<std::int64_t>{bob_row});

    // Who cannot own an integer row cannot create one: anonymous, and the id "01". Nothing is stored.
    for (const std::string& path : {std::string("/ws/mine/"), std::string("/ws/mine/?token=") + kImpostor}) {
        auto ws = Connect(path);
        Frame refused = Call(*ws, R"({"action": "create", "data": {"title": "x", "owner_id": 1}})");
        EXPECT_EQ(refused.status(), 403) << path << " -> " << refused.text;
        EXPECT_EQ(refused.error(), kDenied);
    }
    EXPECT_EQ(server_->database().List("posts", Query{}).size(), 2u);

    // A text owner field holds the exact id text: "01" for the impostor, "1" for alice; each sees only their own.
    auto impostor_by_name = As("/ws/by-name/", kImpostor);
    auto alice_by_name = As("/ws/by-name/", kAlice);
    Frame named = Call(*impostor_by_name, R"({"action": "create", "data": {"title": "n", "author": "1"}})");
    ASSERT_EQ(named.status(), 201) << named.text;
    EXPECT_STREQ(named.data()["author"].GetString(), "01");
    Frame alice_named = Call(*alice_by_name, R"({"action": "create", "data": {"title": "m"}})");
    ASSERT_EQ(alice_named.status(), 201) << alice_named.text;
    EXPECT_STREQ(alice_named.data()["author"].GetString(), "1");
    EXPECT_EQ(Ids(Call(*impostor_by_name, R"({"action": "list"})").data()),
              std::set<std::int64_t>{named.data()["id"].GetInt64()});
    EXPECT_EQ(Ids(Call(*alice_by_name, R"({"action": "list"})").data()),
              std::set<std::int64_t>{alice_named.data()["id"].GetInt64()});
}

INSTANTIATE_TEST_SUITE_P(Engines, OwnerIdentityTest, test_support::AllEngines(), test_support::EngineParamName);

}  // namespace
}  // namespace syncline
