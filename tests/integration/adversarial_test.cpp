// What a hostile client does to a server (issue 9), over real websockets: deep nesting, text that is not Unicode,
// oversized request_ids, subscription floods, filter oracles. Each test names the finding it guards; every one ends
// by checking that the server still answers an ordinary request on the same socket.

#include <syncline/config/config.hpp>
#include <syncline/core/support/log.hpp>
#include <syncline/observer/observer.hpp>
#include <syncline/test_support/server_fixture.hpp>
#include <syncline/test_support/ws_client.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <chrono>
#include <string>
#include <thread>

#include "../storage/test_db.hpp"

namespace syncline {
namespace {

using ::testing::HasSubstr;
using test_support::WsClient;

constexpr const char* kConfig = R"({
  "database": "blog.db", "listen": {"port": 0}, "workers": 2, "max_subscriptions_per_socket": 50,
  "max_list_filter_values_per_socket": 2500,
  "models": {
    "posts": {"fields": {"id": {"type": "integer", "primary_key": true}, "title": {"type": "text", "max_length": 100},
                         "author": {"type": "text", "blank": true, "default": ""},
                         "secret": {"type": "text", "blank": true, "default": ""},
                         "hidden": {"type": "boolean", "default": false}}}},
  "routes": {
    "/ws/posts/": {"model": "posts", "fields": ["id", "title", "author", "secret"], "write_only": ["secret"],
                   "filter_fields": ["author", "id"],
                   "mixins": ["list", "retrieve", "create", "patch", "delete", "observe_instance", "observe_list"]},
    "/ws/visible/": {"model": "posts", "fields": ["id", "title"], "queryset": {"hidden": false},
                     "mixins": ["retrieve", "observe_instance"]},
    "/ws/": {"streams": {"posts": "/ws/posts/"}},
    "/ws/api/": {"routepatterns": {
        "^posts/(?P<pk>[^/]+)/$": {"model": "posts", "fields": ["id", "title"],
                                   "handler": "RetrieveUpdateDestroyAPIActionHandler"},
        "^posts/$": {"model": "posts", "fields": ["id", "title"], "handler": "ListCreateAPIActionHandler"}}}}})";

rapidjson::Document Parse(const std::optional<std::string>& frame) {
    rapidjson::Document d;
    if (frame) d.Parse(frame->c_str());
    return d;
}

std::string Nested(std::size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

class AdversarialFixture : public test_support::ServerTest {
protected:
    static std::string Call(WsClient& ws, const std::string& frame) { return ws.Request(frame).value_or("<none>"); }
    // The socket still works: an ordinary request is answered.
    static void ExpectServed(WsClient& ws) {
        auto reply = Parse(ws.Request(R"({"action": "list", "request_id": "alive"})"));
        ASSERT_TRUE(reply.IsObject()) << "no answer to an ordinary request";
        EXPECT_EQ(reply["response_status"].GetInt(), 200);
        EXPECT_TRUE(ws.is_open());
    }
    // Waits (with a deadline) until the relay has published the first `changes` changes.
    void WaitRelayed(std::int64_t changes) {
        ServerTest::WaitRelayed(changes);
        ASSERT_GE(server_->relayed_seq(), changes);
    }
};

// Every test runs on both engines (AdversarialTest.X/Sqlite, .../Postgres), but for AdversarialSqliteTest below.
class AdversarialTest : public AdversarialFixture, public ::testing::WithParamInterface<test_support::Engine> {
protected:
    void SetUp() override {
        if (!UseEngine(GetParam())) GTEST_SKIP() << test_support::kPgSkipReason;
        StartFromConfig(kConfig);
    }
};

// Finding 1: ~87,300 nested arrays (175 KB, far under the message limit) killed the process with SIGSEGV.
TEST_P(AdversarialTest, DeepNestingIsRefusedOnEveryRouteAndTheSocketStaysOpen) {
    const std::string deep = Nested(90000);
    auto direct = Connect();
    for (const std::string& frame :
         {R"({"action":"list","request_id":)" + deep + "}",
          R"({"action":"create","request_id":1,"data":{"title":)" + deep + "}}", deep}) {
        auto reply = Parse(direct->Request(frame));
        ASSERT_TRUE(reply.IsObject()) << "no reply (did the server die?)";
        EXPECT_EQ(reply["response_status"].GetInt(), 400);
        EXPECT_STREQ(reply["errors"][0].GetString(), "Malformed message: nesting too deep");
        EXPECT_TRUE(reply["request_id"].IsNull());
    }
    ExpectServed(*direct);

    auto mux = Connect("/ws/");
    EXPECT_EQ(Call(*mux, R"({"stream":"posts","payload":{"action":"list","request_id":)" + deep + "}}"),
              R"({"stream":null,"payload":{"errors":["Malformed message: nesting too deep"],"data":null,)"
              R"("action":null,"response_status":400,"request_id":null}})");
    // A payload one level within the limit passes the envelope and is judged by its stream, with the same limit.
    EXPECT_THAT(Call(*mux, R"({"stream":"posts","payload":{"action":"list","request_id":)" + Nested(63) + "}}"),
                HasSubstr(R"("response_status":200)"));
    EXPECT_THAT(Call(*mux, R"({"stream":"posts","payload":{"action":"list","request_id":)" + Nested(64) + "}}"),
                HasSubstr("nesting too deep"));
    EXPECT_THAT(Call(*mux, R"({"stream":"posts","payload":{"action":"list","request_id":1}})"),
                HasSubstr(R"("response_status":200)"));

    auto routed = Connect("/ws/api/");
    EXPECT_EQ(Call(*routed, R"({"action":"list","route":"posts/","request_id":)" + deep + "}"),
              R"({"errors":["Malformed message: nesting too deep"],"data":null,"action":null,"route":null,)"
              R"("status":400})");
    EXPECT_THAT(Call(*routed, R"({"action":"list","route":"posts/","request_id":2})"), HasSubstr(R"("status":200)"));
}

// Finding 2: a lone low surrogate was stored as bytes that are not UTF-8, and every reply carrying the row was
// dropped from then on; as a request_id it suppressed the sender's own reply.
TEST_P(AdversarialTest, TextThatIsNotUnicodeIsRefusedAtTheDoorAndNothingIsStored) {
    auto ws = Connect();
    auto created = Parse(ws->Request(R"({"action":"create","request_id":3,"data":{"title":"\udc00"}})"));
    ASSERT_TRUE(created.IsObject()) << "the reply was dropped";
    EXPECT_EQ(created["response_status"].GetInt(), 400);
    EXPECT_STREQ(created["errors"][0].GetString(), R"(Malformed message: text is not valid Unicode in "data.title")");

    auto by_id = Parse(ws->Request(R"({"action":"list","request_id":"\udc00"})"));
    ASSERT_TRUE(by_id.IsObject()) << "the reply was dropped";
    EXPECT_EQ(by_id["response_status"].GetInt(), 400);
    EXPECT_STREQ(by_id["errors"][0].GetString(), R"(Malformed message: text is not valid Unicode in "request_id")");

    auto listed = Parse(ws->Request(R"({"action":"list","request_id":4})"));
    ASSERT_TRUE(listed.IsObject());
    EXPECT_EQ(listed["data"].Size(), 0u) << "nothing may have been stored";
    // A proper surrogate pair is ordinary text.
    auto emoji = Parse(ws->Request(R"({"action":"create","request_id":5,"data":{"title":"\ud83d\ude00"}})"));
    ASSERT_TRUE(emoji.IsObject());
    EXPECT_EQ(emoji["response_status"].GetInt(), 201);
    EXPECT_EQ(std::string(emoji["data"]["title"].GetString()), "\xF0\x9F\x98\x80");
}

// Issue 12: bad input gets the same answers on both engines (docs/protocol.md §4): field errors for values a column
// cannot hold and for unique values taken (a constraint PostgreSQL reports differently from SQLite), on create,
// update and patch, and the row is left as it was.
TEST_P(AdversarialTest, BadValuesAndTakenUniqueValuesGetTheSameFieldErrorsOnBothEngines) {
    server_.reset();
    StartFromConfig(R"({
      "database": "blog.db", "listen": {"port": 0}, "workers": 2,
      "models": {"tags": {"fields": {"slug": {"type": "text", "primary_key": true, "max_length": 20},
                                     "label": {"type": "text", "unique": true, "null": true},
                                     "n": {"type": "integer", "null": true}, "r": {"type": "real", "null": true},
                                     "b": {"type": "boolean", "null": true}}}},
      "routes": {"/ws/tags/": {"model": "tags", "mixins": ["retrieve", "create", "update", "patch"]}}})");
    auto ws = Connect("/ws/tags/");
    auto errors = [&](const std::string& action, const std::string& rest) {
        auto reply = Parse(ws->Request(R"({"action":")" + action + R"(","request_id":1,)" + rest + "}"));
        if (!reply.IsObject()) return std::string("<no reply>");
        rapidjson::StringBuffer out;
        rapidjson::Writer<rapidjson::StringBuffer> writer(out);
        reply["errors"].Accept(writer);
        return std::to_string(reply["response_status"].GetInt()) + " " + out.GetString();
    };
    EXPECT_EQ(errors("create", R"("data":{"slug":"a","label":"A","n":1})"), "201 []");
    EXPECT_EQ(errors("create", R"("data":{"slug":"c"})"), "201 []");
    EXPECT_EQ(errors("create", R"("data":{"slug":"a","label":"B"})"),
              R"(400 [{"slug":["tags with this slug already exists."]}])");
    EXPECT_EQ(errors("create", R"("data":{"slug":"b","label":"A"})"),
              R"(400 [{"label":["tags with this label already exists."]}])");
    EXPECT_EQ(errors("update", R"("pk":"c","data":{"slug":"c","label":"A"})"),
              R"(400 [{"label":["tags with this label already exists."]}])");
    EXPECT_EQ(errors("patch", R"("pk":"c","data":{"label":"A"})"),
              R"(400 [{"label":["tags with this label already exists."]}])");
    EXPECT_EQ(errors("patch", R"("pk":"c","data":{"slug":"a"})"),
              R"(400 [{"slug":["tags with this slug already exists."]}])");
    EXPECT_EQ(errors("create", R"("data":{"slug":"d","n":9223372036854775808})"),
              R"(400 [{"n":["A valid integer is required."]}])");
    EXPECT_EQ(errors("create", R"("data":{"slug":"d","n":1.5,"r":"nan","b":2})"),
              R"(400 [{"n":["A valid integer is required."],"r":["A valid number is required."],)"
              R"("b":["Must be a valid boolean."]}])");
    EXPECT_EQ(errors("patch", R"("pk":"a","data":{"r":"1e999"})"), R"(400 [{"r":["A valid number is required."]}])");
    // Nothing changed, and the socket goes on.
    auto row = Parse(ws->Request(R"({"action":"retrieve","request_id":2,"pk":"a"})"));
    ASSERT_TRUE(row.IsObject());
    EXPECT_STREQ(row["data"]["label"].GetString(), "A");
    EXPECT_EQ(row["data"]["n"].GetInt(), 1);
    EXPECT_TRUE(row["data"]["r"].IsNull());
    EXPECT_EQ(errors("retrieve", R"("pk":"c")"), "200 []");
    EXPECT_EQ(errors("retrieve", R"("pk":"b")"), R"(404 ["Not found"])");
}

// SQLite only: PostgreSQL (a UTF8 database) refuses text that is not UTF-8 from every client, so no row can hold it.
class AdversarialSqliteTest : public AdversarialFixture {
protected:
    void SetUp() override { StartFromConfig(kConfig); }
};

// Finding 2, the other half: a row another program stored with bytes that are not UTF-8 still goes out, in every
// reply and push, with U+FFFD in their place; it never silences the socket.
TEST_F(AdversarialSqliteTest, ARowWithBytesThatAreNotUtf8StillGoesOutEverywhere) {
    ASSERT_EQ(testing::SqliteShell(dir_.File("blog.db"),
                                   "INSERT INTO posts (id, title) VALUES (1, CAST(X'6F6BEDB08021' AS TEXT));"),
              0);
    WaitRelayed(1);
    const std::string repaired = "ok\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD!";
    auto ws = Connect();
    auto listed = Parse(ws->Request(R"({"action":"list","request_id":1})"));
    ASSERT_TRUE(listed.IsObject()) << "the list reply was dropped";
    ASSERT_EQ(listed["data"].Size(), 1u);
    EXPECT_EQ(std::string(listed["data"][0]["title"].GetString()), repaired);
    auto retrieved = Parse(ws->Request(R"({"action":"retrieve","request_id":2,"pk":1})"));
    ASSERT_TRUE(retrieved.IsObject()) << "the retrieve reply was dropped";
    EXPECT_EQ(std::string(retrieved["data"]["title"].GetString()), repaired);

    auto routed = Connect("/ws/api/");
    auto routed_list = Parse(routed->Request(R"({"action":"list","route":"posts/","request_id":3})"));
    ASSERT_TRUE(routed_list.IsObject()) << "the routed reply was dropped";
    EXPECT_EQ(std::string(routed_list["data"][0]["title"].GetString()), repaired);

    EXPECT_THAT(Call(*ws, R"({"action":"subscribe_instance","request_id":"s","pk":1})"),
                HasSubstr(R"("response_status":201)"));
    ASSERT_EQ(testing::SqliteShell(dir_.File("blog.db"), "UPDATE posts SET author = 'x' WHERE id = 1;"), 0);
    auto push = Parse(ws->Receive());
    ASSERT_TRUE(push.IsObject()) << "the push was dropped";
    EXPECT_STREQ(push["action"].GetString(), "update");
    EXPECT_EQ(std::string(push["data"]["title"].GetString()), repaired);
    // And it can be mended over the socket.
    auto patched = Parse(ws->Request(R"({"action":"patch","request_id":4,"pk":1,"data":{"title":"fine"}})"));
    ASSERT_TRUE(patched.IsObject());
    EXPECT_EQ(patched["response_status"].GetInt(), 200);
}

// Finding 6 (part): 300 subscribes with 1 MB request_ids held 238 MB. A request_id has a size limit on every
// action; the limit is answered with 400 and the socket stays open.
TEST_P(AdversarialTest, OversizedRequestIdsAreRefused) {
    auto ws = Connect();
    const std::string big(300, 'x');
    auto reply = Parse(ws->Request(R"({"action":"subscribe_instance","pk":1,"request_id":")" + big + "\"}"));
    ASSERT_TRUE(reply.IsObject());
    EXPECT_EQ(reply["response_status"].GetInt(), 400);
    EXPECT_STREQ(reply["errors"][0].GetString(), "request_id is too long (the limit is 256 bytes of JSON).");
    EXPECT_STREQ(reply["action"].GetString(), "subscribe_instance");
    EXPECT_TRUE(reply["request_id"].IsNull());
    auto as_object = Parse(ws->Request(R"({"action":"list","request_id":{"k":")" + big + "\"}}"));
    EXPECT_EQ(as_object["response_status"].GetInt(), 400);
    auto routed = Connect("/ws/api/");
    EXPECT_THAT(Call(*routed, R"({"action":"list","route":"posts/","request_id":")" + big + "\"}"),
                HasSubstr(R"("status":400)"));
    // Exactly at the limit is fine: 254 characters plus the quotes.
    EXPECT_THAT(Call(*ws, R"({"action":"list","request_id":")" + std::string(254, 'y') + "\"}"),
                HasSubstr(R"("response_status":200)"));
    ExpectServed(*ws);
}

// Finding 6: a socket held 50,000 subscriptions (and with them the server's lock). A subscribe beyond the socket's
// limit answers 429, subscribes nothing, and the socket goes on.
TEST_P(AdversarialTest, SubscriptionsPerSocketAreLimited) {
    ASSERT_EQ(server_->database().Insert("posts", {{"title", "t"}}).at(0), Value(1));
    auto ws = Connect();
    for (int i = 0; i < 50; ++i) {
        ASSERT_THAT(Call(*ws, R"({"action":"subscribe_instance","pk":1,"request_id":)" + std::to_string(i) + "}"),
                    HasSubstr(R"("response_status":201)"));
    }
    // The same subscription again is not a new one.
    EXPECT_THAT(Call(*ws, R"({"action":"subscribe_instance","pk":1,"request_id":7})"), HasSubstr("201"));
    auto refused = Parse(ws->Request(R"({"action":"subscribe_instance","pk":1,"request_id":50})"));
    EXPECT_EQ(refused["response_status"].GetInt(), 429);
    EXPECT_STREQ(refused["errors"][0].GetString(),                  "Too many subscriptions on this socket (the limit is 50 subscriptions, and 2500 filter values in "
                 "list subscriptions).");
    EXPECT_EQ(Parse(ws->Request(R"({"action":"subscribe_list","request_id":"L"})"))["response_status"].GetInt(), 429);
    EXPECT_EQ(server_->observer().subscription_count(), 50u);
    // Another socket has its own allowance; unsubscribing frees room.
    auto other = Connect();
    EXPECT_THAT(Call(*other, R"({"action":"subscribe_instance","pk":1,"request_id":0})"), HasSubstr("201"));
    EXPECT_THAT(Call(*ws, R"({"action":"unsubscribe_instance","pk":1,"request_id":3})"), HasSubstr("204"));
    EXPECT_THAT(Call(*ws, R"({"action":"subscribe_list","request_id":"L"})"), HasSubstr("201"));
    ExpectServed(*ws);
}

// Findings 4 and 5: `__in` lists of 250,000-500,000 values cost hundreds of MB (a prepared statement per length;
// a list subscription's filter evaluated on every write). Lists are bounded, everywhere filters are taken.
TEST_P(AdversarialTest, InFiltersAreBoundedEverywhere) {
    auto ws = Connect();
    auto values = [](int n) {
        std::string list = "[";
        for (int i = 0; i < n; ++i) list += (i ? ",7" : "7");
        return list + "]";
    };
    auto list = Parse(ws->Request(R"({"action":"list","request_id":1,"filter":{"id__in":)" + values(250000) + "}}"));
    EXPECT_EQ(list["response_status"].GetInt(), 400);
    EXPECT_STREQ(list["errors"][0].GetString(), "Filter \"id__in\" has 250000 values; the limit is 1000.");
    auto sub = Parse(ws->Request(R"({"action":"subscribe_list","request_id":2,"filter":{"id__in":)" + values(1001) +
                                 "}}"));
    EXPECT_EQ(sub["response_status"].GetInt(), 400);
    EXPECT_THAT(Call(*ws, R"({"action":"list","request_id":3,"filter":{"id__in":)" + values(1000) + "}}"),
                HasSubstr(R"("response_status":200)"));
    // Nor can one frame carry thousands of conditions by repeating a key.
    std::string repeated = R"({"action":"list","request_id":4,"filter":{"author":"a")";
    for (int i = 0; i < 5000; ++i) repeated += R"(,"author":"a")";
    auto twice = Parse(ws->Request(repeated + "}}"));
    EXPECT_EQ(twice["response_status"].GetInt(), 400);
    EXPECT_STREQ(twice["errors"][0].GetString(), "Filter \"author\" is given more than once.");
    EXPECT_EQ(server_->observer().subscription_count(), 0u);
    ExpectServed(*ws);
}

// Finding 5, the rest: the largest filters allowed, on as many list subscriptions as allowed, would still hold
// millions of values per socket (and cost the observer that much per write). The socket's list subscriptions share a
// budget of filter values (an __in list counts its values, any other condition one).
TEST_P(AdversarialTest, ListSubscriptionsShareABudgetOfFilterValues) {
    auto ws = Connect();
    auto subscribe = [&](const std::string& id, int n, const std::string& more = "") {
        std::string list = "[";
        for (int i = 0; i < n; ++i) list += (i ? "," : "") + std::to_string(i + 1);
        auto reply = Parse(ws->Request(R"({"action":"subscribe_list","request_id":")" + id +
                                       R"(","filter":{"id__in":)" + list + "]" + more + "}}"));
        return reply.IsObject() ? reply["response_status"].GetInt() : 0;
    };
    EXPECT_EQ(subscribe("a", 1000), 201);
    EXPECT_EQ(subscribe("b", 1000), 201);
    EXPECT_EQ(subscribe("c", 1000), 429);  // 3000 > 2500
    EXPECT_EQ(server_->observer().subscription_count(), 2u);
    EXPECT_EQ(subscribe("c", 499, R"(,"author":"x")"), 201);  // 2500: at the limit
    EXPECT_EQ(subscribe("a", 1000), 201);  // replacing a subscription's filter counts only the new one
    EXPECT_EQ(subscribe("d", 1), 429);
    EXPECT_THAT(Call(*ws, R"({"action":"unsubscribe_list","request_id":"b"})"), HasSubstr("204"));
    EXPECT_EQ(subscribe("d", 1000), 201);  // unsubscribing gave its values back
    EXPECT_EQ(server_->observer().subscription_count(), 3u);
    // Another socket has a budget of its own.
    auto other = Connect();
    EXPECT_THAT(Call(*other, R"({"action":"subscribe_list","request_id":"x","filter":{"author":"x"}})"),
                HasSubstr("201"));
    ExpectServed(*ws);
}

// Finding 8: subscribe_list took filters on write-only fields and on fields outside filter_fields, so
// {"secret__startswith": "h"} told a secret's prefix by what was pushed. Every filter obeys list's rules.
TEST_P(AdversarialTest, FiltersOnWriteOnlyOrUndeclaredFieldsAreRefusedEverywhere) {
    auto ws = Connect();
    for (const char* filter : {R"({"secret__startswith": "h", "id": 2})", R"({"secret": "x"})", R"({"title": "t"})",
                               R"({"author__nope": "x"})"}) {
        for (const char* action : {"subscribe_list", "list"}) {
            auto reply = Parse(ws->Request(std::string(R"({"action":")") + action +
                                           R"(","request_id":"f","filter":)" + filter + "}"));
            EXPECT_EQ(reply["response_status"].GetInt(), 400) << action << " " << filter;
            EXPECT_THAT(reply["errors"][0].GetString(), HasSubstr("is not allowed")) << action << " " << filter;
        }
    }
    EXPECT_EQ(server_->observer().subscription_count(), 0u);
    EXPECT_THAT(Call(*ws, R"({"action":"subscribe_list","request_id":"ok","filter":{"author":"ann","id__gte":1}})"),
                HasSubstr("201"));
    // A config that lists a write-only field as filterable is refused up front.
    std::string bad = kConfig;
    bad.replace(bad.find(R"("filter_fields": ["author", "id"])"), 32, R"("filter_fields": ["author", "secret"])");
    EXPECT_THROW(config::ParseConfig(bad), config::ConfigError);
}

// Finding 9: on a route whose queryset hides a row, retrieve and subscribe answered 404 but subscribe with
// "since": 0 answered 201 and pushed a delete at every later change of the row: its existence and change times
// leaked. `since` follows retrieve's rules, also once the row is gone.
TEST_P(AdversarialTest, SinceNeverRevealsARowOutsideTheQueryset) {
    storage::Backend& db = server_->database();
    db.Insert("posts", {{"title", "public"}});
    db.Insert("posts", {{"title", "hidden"}, {"hidden", true}});
    WaitRelayed(2);
    auto ws = Connect("/ws/visible/");
    EXPECT_THAT(Call(*ws, R"({"action":"retrieve","request_id":1,"pk":2})"), HasSubstr(R"("response_status":404)"));
    EXPECT_THAT(Call(*ws, R"({"action":"subscribe_instance","request_id":2,"pk":2})"), HasSubstr("404"));
    EXPECT_THAT(Call(*ws, R"({"action":"subscribe_instance","request_id":3,"pk":2,"since":0})"),
                HasSubstr(R"("response_status":404)"));
    // Deleted: the row this socket never saw stays unknown to it; the visible one's delete is pushed.
    db.Delete("posts", Value(2));
    db.Delete("posts", Value(1));
    WaitRelayed(4);
    EXPECT_THAT(Call(*ws, R"({"action":"subscribe_instance","request_id":4,"pk":2,"since":0})"),
                HasSubstr(R"("response_status":404)"));
    EXPECT_THAT(Call(*ws, R"({"action":"subscribe_instance","request_id":5,"pk":1,"since":0})"),
                HasSubstr(R"("response_status":201)"));
    auto push = Parse(ws->Receive());
    ASSERT_TRUE(push.IsObject());
    EXPECT_STREQ(push["action"].GetString(), "delete");
    EXPECT_EQ(push["data"]["pk"].GetInt(), 1);
    EXPECT_EQ(push["request_id"].GetInt(), 5);
    EXPECT_FALSE(ws->Receive(std::chrono::milliseconds(200))) << "nothing else may be pushed";
    EXPECT_EQ(server_->observer().subscription_count(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Engines, AdversarialTest, test_support::AllEngines(), test_support::EngineParamName);

}  // namespace
}  // namespace syncline
