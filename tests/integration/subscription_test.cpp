// docs/protocol.md §6-§7 over real websockets against an in-process server (in-process bus): instance subscriptions,
// unsubscribe semantics (including where DCRF goes wrong), pushes for writes from other sockets, a sqlite3 shell and
// transactions, `since`, querysets, lookup fields, list and group subscriptions.

#include <syncline/config/config.hpp>
#include <syncline/core/consumer/permissions.hpp>
#include <syncline/core/consumer/subscriptions.hpp>
#include <syncline/observer/observer.hpp>
#include <syncline/test_support/server_fixture.hpp>
#include <syncline/test_support/ws_client.hpp>
#include <syncline/transport/server.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <atomic>
#include <map>
#include <thread>

#include "../storage/test_db.hpp"

namespace syncline {
namespace {

using ::testing::HasSubstr;
using test_support::WsClient;

constexpr const char* kConfig = R"({
  "database": "blog.db", "listen": {"port": 0}, "workers": 2,
  "models": {"posts": {"fields": {
      "id": {"type": "integer", "primary_key": true}, "title": {"type": "text", "max_length": 100},
      "body": {"type": "text", "blank": true, "default": ""},
      "author": {"type": "text", "max_length": 50, "blank": true, "default": ""}}}},
  "routes": {
    "/ws/posts/": {"model": "posts", "read_only": ["id"], "group_by": "author",
                   "filter_fields": ["author"],
                   "mixins": ["list", "create", "update", "patch", "delete", "observe_instance", "observe_list"]},
    "/ws/alice/": {"model": "posts", "queryset": {"author": "alice"}, "mixins": ["observe_instance", "patch"]},
    "/ws/by-title/": {"model": "posts", "lookup_field": "title", "fields": ["title", "author"],
                      "mixins": ["observe_instance"]}}})";

struct Frame {
    rapidjson::Document doc;
    std::string text;
    int status() const { return doc["response_status"].GetInt(); }
    std::string action() const { return doc["action"].IsString() ? doc["action"].GetString() : ""; }
    std::string request_id() const { return doc["request_id"].IsString() ? doc["request_id"].GetString() : ""; }
    std::int64_t version() const { return doc.HasMember("version") ? doc["version"].GetInt64() : -1; }
    const rapidjson::Value& data() const { return doc["data"]; }
};

// Every test runs on both engines (SubscriptionTest.X/Sqlite, .../Postgres).
class SubscriptionTest : public test_support::ServerTest, public ::testing::WithParamInterface<test_support::Engine> {
protected:
    void SetUp() override {
        if (!UseEngine(GetParam())) GTEST_SKIP() << test_support::kPgSkipReason;
        StartFromConfig(kConfig);
        server_->database().Insert("posts", {{"title", "First"}, {"author", "alice"}});
        server_->database().Insert("posts", {{"title", "Second"}, {"author", "bob"}});
        server_->database().Insert("posts", {{"title", "Sentinel"}, {"author", "nobody"}});  // id 3
        // The relay must have published these inserts before a test subscribes, or they would be pushed to it.
        WaitRelayed(3);
    }
    // Proves that nothing was pushed for the writes made before: a change to the sentinel row (id 3), which `ws`
    // subscribed with WatchSentinel, must be the very next frame, since events are delivered in commit order.
    void WatchSentinel(WsClient& ws) {
        EXPECT_EQ(Call(ws, R"({"action": "subscribe_instance", "pk": 3, "request_id": "sentinel"})").status(), 201);
    }
    void ExpectOnlySentinel(std::initializer_list<WsClient*> sockets) {
        std::string token = "t" + std::to_string(++sentinel_count_);
        server_->database().Patch("posts", Value(3), {{"body", token}});
        for (WsClient* ws : sockets) {
            Frame f = Next(*ws);
            EXPECT_EQ(f.request_id(), "sentinel") << "unexpected frame: " << f.text;
            if (f.request_id() == "sentinel") {
                EXPECT_STREQ(f.data()["body"].GetString(), token.c_str());
            }
        }
    }
    int sentinel_count_ = 0;
    static Frame Next(WsClient& ws, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        Frame f;
        auto text = ws.Receive(timeout);
        if (!text) {
            f.doc.Parse(R"({"response_status": -1, "action": "<no frame>", "data": null, "request_id": null})");
            return f;
        }
        f.text = *text;
        f.doc.Parse(text->c_str());
        return f;
    }
    static Frame Call(WsClient& ws, const std::string& request) {
        EXPECT_TRUE(ws.SendText(request));
        return Next(ws);
    }
    // No frame arrives: proven by a marker request whose reply must be the very next frame.
    static void ExpectNothingPending(WsClient& ws) {
        Frame marker = Call(ws, R"({"action": "nothing", "request_id": "marker"})");
        EXPECT_EQ(marker.request_id(), "marker") << "unexpected frame: " << marker.text;
    }
};

TEST_P(SubscriptionTest, UpdateFromAnotherSocketIsPushedWithVersion) {
    auto a = Connect();
    auto b = Connect();
    Frame sub = Call(*a, R"({"action": "subscribe_instance", "pk": 1, "request_id": "sub-1"})");
    EXPECT_EQ(sub.status(), 201);
    EXPECT_TRUE(sub.data().IsNull());
    Frame reply = Call(*b, R"({"action": "patch", "pk": 1, "data": {"title": "Changed"}, "request_id": 9})");
    EXPECT_EQ(reply.status(), 200);
    Frame push = Next(*a);
    EXPECT_EQ(push.action(), "update");
    EXPECT_EQ(push.status(), 200);
    EXPECT_EQ(push.request_id(), "sub-1");
    EXPECT_STREQ(push.data()["title"].GetString(), "Changed");
    EXPECT_EQ(push.data()["id"].GetInt(), 1);
    EXPECT_EQ(push.doc["errors"].Size(), 0u);
    EXPECT_EQ(push.version(), server_->database().RowVersion("posts", Value(1)));
    ExpectNothingPending(*b);  // b did not subscribe
    // One process, no Redis: the relay's events reached the observer through the in-process bus, as events.
    auto* bus = dynamic_cast<observer::InProcessBus*>(&server_->bus());
    ASSERT_NE(bus, nullptr);
    EXPECT_GE(bus->delivered(), 1u);
}

TEST_P(SubscriptionTest, WritersReplyComesBeforeThePushItCauses) {
    auto a = Connect();
    Call(*a, R"({"action": "subscribe_instance", "pk": 1, "request_id": "s"})");
    for (int i = 0; i < 20; ++i) {
        ASSERT_TRUE(a->SendText(R"({"action": "patch", "pk": 1, "request_id": )" + std::to_string(i) +
                                R"(, "data": {"body": "v)" + std::to_string(i) + "\"}}"));
        Frame reply = Next(*a);
        EXPECT_EQ(reply.action(), "patch") << reply.text;
        Frame push = Next(*a);
        EXPECT_EQ(push.action(), "update") << push.text;
        EXPECT_STREQ(push.data()["body"].GetString(), ("v" + std::to_string(i)).c_str());
    }
}

TEST_P(SubscriptionTest, AnotherClientsWritesArePushedIncludingDelete) {
    auto a = Connect();
    Call(*a, R"({"action": "subscribe_instance", "pk": 2, "request_id": "s2"})");
    ExecOutside("UPDATE posts SET title = 'shell' WHERE id = 2;");  // the sqlite3 shell, or psql
    Frame push = Next(*a);
    EXPECT_EQ(push.action(), "update");
    EXPECT_STREQ(push.data()["title"].GetString(), "shell");
    ExecOutside("DELETE FROM posts WHERE id = 2;");
    Frame gone = Next(*a);
    EXPECT_EQ(gone.action(), "delete");
    EXPECT_EQ(gone.status(), 204);
    EXPECT_EQ(gone.data()["pk"].GetInt(), 2);
    EXPECT_GT(gone.version(), push.version());
}

TEST_P(SubscriptionTest, TwoRequestIdsOnOneRowAndUnsubscribingOne) {
    auto a = Connect();
    auto b = Connect();
    WatchSentinel(*a);
    Call(*a, R"({"action": "subscribe_instance", "pk": 1, "request_id": "first"})");
    Call(*a, R"({"action": "subscribe_instance", "pk": 1, "request_id": "second"})");
    Call(*a, R"({"action": "subscribe_instance", "pk": 1, "request_id": "first"})");  // again: no change
    Call(*b, R"({"action": "patch", "pk": 1, "data": {"body": "x"}})");
    EXPECT_EQ(Next(*a).request_id(), "first");  // in subscription order
    EXPECT_EQ(Next(*a).request_id(), "second");
    ExpectOnlySentinel({a.get()});
    Frame unsub = Call(*a, R"({"action": "unsubscribe_instance", "pk": 1, "request_id": "first"})");
    EXPECT_EQ(unsub.status(), 204);
    Call(*b, R"({"action": "patch", "pk": 1, "data": {"body": "y"}})");
    EXPECT_EQ(Next(*a).request_id(), "second");  // DCRF would have silenced both
    ExpectOnlySentinel({a.get()});
    EXPECT_EQ(Call(*a, R"({"action": "unsubscribe_instance", "pk": 1})").status(), 204);  // all of them
    Call(*b, R"({"action": "patch", "pk": 1, "data": {"body": "z"}})");
    ExpectOnlySentinel({a.get()});
}

TEST_P(SubscriptionTest, OneRequestIdOnTwoRows) {
    auto a = Connect();
    auto b = Connect();
    WatchSentinel(*a);
    Call(*a, R"({"action": "subscribe_instance", "pk": 1, "request_id": "both"})");
    Call(*a, R"({"action": "subscribe_instance", "pk": 2, "request_id": "both"})");
    Call(*a, R"({"action": "unsubscribe_instance", "pk": 1, "request_id": "both"})");
    Call(*b, R"({"action": "patch", "pk": 1, "data": {"body": "x"}})");
    Call(*b, R"({"action": "patch", "pk": 2, "data": {"body": "y"}})");
    Frame push = Next(*a);
    EXPECT_EQ(push.data()["id"].GetInt(), 2);  // row 2 stays subscribed (DCRF drops it from every pk)
    ExpectOnlySentinel({a.get()});
}

TEST_P(SubscriptionTest, SubscribeAndUnsubscribeEdgeCases) {
    auto a = Connect();
    EXPECT_THAT(Call(*a, R"({"action": "subscribe_instance", "pk": 1})").text,
                HasSubstr(R"("errors":["request_id is required to subscribe."])"));
    EXPECT_EQ(Call(*a, R"({"action": "subscribe_instance", "pk": 99, "request_id": "x"})").status(), 404);
    EXPECT_EQ(Call(*a, R"({"action": "subscribe_instance", "pk": "abc", "request_id": "x"})").status(), 404);
    EXPECT_EQ(Call(*a, R"({"action": "unsubscribe_instance", "pk": 1, "request_id": "never"})").status(), 204);
    Call(*a, R"({"action": "subscribe_instance", "pk": 2, "request_id": "d"})");
    server_->database().Delete("posts", Value(2));
    EXPECT_EQ(Next(*a).action(), "delete");
    EXPECT_EQ(Call(*a, R"({"action": "unsubscribe_instance", "pk": 2, "request_id": "d"})").status(), 204);
    EXPECT_EQ(Call(*a, R"({"action": "unsubscribe_instance"})").status(), 400);
}

TEST_P(SubscriptionTest, TransactionGivesOnePushWithTheFinalStateAndRollbackNone) {
    auto a = Connect();
    WatchSentinel(*a);
    Call(*a, R"({"action": "subscribe_instance", "pk": 1, "request_id": "t"})");
    {
        auto tx = server_->database().Begin();
        tx->Patch("posts", Value(1), {{"body", "one"}});
        tx->Patch("posts", Value(1), {{"body", "two"}});
        tx->Patch("posts", Value(1), {{"body", "three"}});
        tx->Commit();
    }
    Frame push = Next(*a);
    EXPECT_STREQ(push.data()["body"].GetString(), "three");
    {
        auto tx = server_->database().Begin();
        tx->Patch("posts", Value(1), {{"body", "never"}});
        tx->Rollback();
    }
    ExpectOnlySentinel({a.get()});
    server_->database().Patch("posts", Value(1), {{"body", "four"}});
    EXPECT_STREQ(Next(*a).data()["body"].GetString(), "four");
}

TEST_P(SubscriptionTest, SinceDeliversWhatAReconnectingClientMissed) {
    std::int64_t version = 0;
    {
        auto a = Connect();
        Call(*a, R"({"action": "subscribe_instance", "pk": 1, "request_id": "r"})");
        server_->database().Patch("posts", Value(1), {{"body", "seen"}});
        version = Next(*a).version();
    }
    server_->database().Patch("posts", Value(1), {{"body", "missed"}});
    auto a = Connect();
    Frame sub = Call(*a, R"({"action": "subscribe_instance", "pk": 1, "request_id": "r", "since": )" +
                             std::to_string(version) + "}");
    EXPECT_EQ(sub.status(), 201);
    Frame push = Next(*a);
    EXPECT_STREQ(push.data()["body"].GetString(), "missed");
    EXPECT_GT(push.version(), version);
    // Up to date: nothing more.
    auto b = Connect();
    Call(*b, R"({"action": "subscribe_instance", "pk": 1, "request_id": "r", "since": )" +
                 std::to_string(push.version()) + "}");
    ExpectNothingPending(*b);
    // Deleted while away: the 201 is followed by the delete.
    server_->database().Delete("posts", Value(1));
    auto c = Connect();
    EXPECT_EQ(Call(*c, R"({"action": "subscribe_instance", "pk": 1, "request_id": "r", "since": )" +
                           std::to_string(push.version()) + "}")
                  .status(),
              201);
    EXPECT_EQ(Next(*c).action(), "delete");
}

TEST_P(SubscriptionTest, RowLeavingTheQuerysetIsPushedAsDelete) {
    auto a = Connect("/ws/alice/");
    Call(*a, R"({"action": "subscribe_instance", "pk": 1, "request_id": "q"})");
    EXPECT_EQ(Call(*a, R"({"action": "subscribe_instance", "pk": 2, "request_id": "q"})").status(), 404);  // bob's
    server_->database().Patch("posts", Value(1), {{"author", "bob"}});
    Frame push = Next(*a);
    EXPECT_EQ(push.action(), "delete");
    EXPECT_EQ(push.data()["pk"].GetInt(), 1);
}

TEST_P(SubscriptionTest, AnyLookupFieldWorks) {
    auto a = Connect("/ws/by-title/");
    EXPECT_EQ(Call(*a, R"({"action": "subscribe_instance", "title": "Second", "request_id": "t"})").status(), 201);
    server_->database().Patch("posts", Value(2), {{"author", "zoe"}});
    Frame push = Next(*a);
    EXPECT_EQ(push.action(), "update");
    EXPECT_STREQ(push.data()["author"].GetString(), "zoe");
    EXPECT_FALSE(push.data().HasMember("id"));  // this route's serializer
    EXPECT_EQ(Call(*a, R"({"action": "unsubscribe_instance", "title": "Second", "request_id": "t"})").status(), 204);
    EXPECT_EQ(Call(*a, R"({"action": "subscribe_instance", "title": "Sentinel", "request_id": "sentinel"})").status(),
              201);
    server_->database().Patch("posts", Value(2), {{"author", "yan"}});
    server_->database().Patch("posts", Value(3), {{"author", "last"}});
    EXPECT_EQ(Next(*a).request_id(), "sentinel");
}

TEST_P(SubscriptionTest, ListSubscriptionSeesRowsEnterChangeAndLeave) {
    auto a = Connect();
    WatchSentinel(*a);
    EXPECT_EQ(Call(*a, R"({"action": "subscribe_list", "request_id": "L", "filter": {"author": "carol"}})").status(),
              201);
    EXPECT_EQ(Call(*a, R"({"action": "subscribe_list", "request_id": "bad", "filter": {"nope": 1}})").status(), 400);
    Row row = server_->database().Insert("posts", {{"title", "New"}, {"author", "carol"}});
    Frame created = Next(*a);
    EXPECT_EQ(created.action(), "create");
    EXPECT_EQ(created.status(), 200);
    EXPECT_EQ(created.request_id(), "L");
    server_->database().Patch("posts", row[0], {{"title", "Newer"}});
    EXPECT_EQ(Next(*a).action(), "update");
    server_->database().Patch("posts", row[0], {{"author", "dave"}});
    Frame left = Next(*a);
    EXPECT_EQ(left.action(), "delete");
    EXPECT_STREQ(left.data()["title"].GetString(), "Newer");
    server_->database().Patch("posts", Value(1), {{"body", "not carol's"}});
    ExpectOnlySentinel({a.get()});
    EXPECT_EQ(Call(*a, R"({"action": "unsubscribe_list", "request_id": "L"})").status(), 204);
    server_->database().Insert("posts", {{"title", "Another"}, {"author", "carol"}});
    ExpectOnlySentinel({a.get()});
}

TEST_P(SubscriptionTest, GroupSubscriptionsFollowARowBetweenGroups) {
    auto alice = Connect();
    auto bob = Connect();
    auto all = Connect();
    WatchSentinel(*alice);
    WatchSentinel(*bob);
    EXPECT_EQ(Call(*alice, R"({"action": "subscribe_group", "author": "alice", "request_id": "ga"})").status(), 201);
    EXPECT_EQ(Call(*bob, R"({"action": "subscribe_group", "author": "bob", "request_id": "gb"})").status(), 201);
    EXPECT_EQ(Call(*all, R"({"action": "subscribe_group", "request_id": "all"})").status(), 201);
    server_->database().Patch("posts", Value(1), {{"author", "bob"}});  // alice -> bob
    Frame left = Next(*alice);
    EXPECT_EQ(left.action(), "delete");
    EXPECT_EQ(left.status(), 200);
    Frame entered = Next(*bob);
    EXPECT_EQ(entered.action(), "create");
    EXPECT_EQ(entered.request_id(), "gb");
    Frame stayed = Next(*all);
    EXPECT_EQ(stayed.action(), "update");
    server_->database().Patch("posts", Value(1), {{"title", "Still bob's"}});
    EXPECT_EQ(Next(*bob).action(), "update");
    EXPECT_EQ(Next(*all).action(), "update");
    EXPECT_EQ(Call(*bob, R"({"action": "unsubscribe_group", "author": "bob", "request_id": "gb"})").status(), 204);
    server_->database().Patch("posts", Value(1), {{"title", "again"}});
    EXPECT_EQ(Next(*all).action(), "update");
    ExpectOnlySentinel({alice.get(), bob.get()});
}

TEST_P(SubscriptionTest, DisconnectDropsEverySubscription) {
    {
        auto a = Connect();
        Call(*a, R"({"action": "subscribe_instance", "pk": 1, "request_id": "x"})");
        Call(*a, R"({"action": "subscribe_list", "request_id": "y"})");
        EXPECT_EQ(server_->observer().subscription_count(), 2u);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (server_->observer().subscription_count() != 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));  // waiting for the server to see the close
    }
    EXPECT_EQ(server_->observer().subscription_count(), 0u);
}

}  // namespace
}  // namespace syncline

namespace syncline {
namespace {

// Denies every request from a socket whose handshake carried ?muted=1, once muting is switched on (so that the
// subscribe itself is allowed, and only the later pushes are refused).
class MutedSockets final : public Permission {
public:
    explicit MutedSockets(std::atomic<bool>& on) : on_(on) {}
    bool HasPermission(const ActionRequest& request, const GenericConsumer&) const override {
        return !(on_.load() && request.connection().request().QueryParam("muted") == std::optional<std::string>("1"));
    }

private:
    std::atomic<bool>& on_;
};

TEST(SubscriptionPermissionTest, PushesRecheckPermissionsAndSerializeOncePerConsumerAndVersion) {
    testing::TempDir dir;
    transport::Server server(test_support::TestServerOptions(dir, "perm.db", 0));
    server.AddModel(testing::PostsSchema());
    std::atomic<bool> muting{false};
    ConsumerOptions consumer;
    consumer.model = "posts";
    consumer.serializer.fields = {"id", "title"};
    consumer.permissions = {std::make_shared<MutedSockets>(muting)};
    consumer.mixins = {ObserverModelInstanceMixin()};
    server.Route("/ws/posts/", std::make_shared<GenericConsumer>(consumer));
    server.Start();
    server.database().Insert("posts", {{"title", "t"}});
    // Let the observer see that insert first, so that it is not pushed to the subscriptions made below.
    test_support::WaitRelayed(server, 1);

    auto open = [&](const std::string& path) { return test_support::ConnectOrFail(server.port(), path); };
    auto loud1 = open("/ws/posts/");
    auto loud2 = open("/ws/posts/");
    auto muted = open("/ws/posts/?muted=1");
    for (auto* ws : {loud1.get(), loud2.get(), muted.get()}) {
        auto reply = ws->Request(R"({"action": "subscribe_instance", "pk": 1, "request_id": "p"})");
        ASSERT_TRUE(reply && reply->find("\"response_status\":201") != std::string::npos) << reply.value_or("");
    }
    observer::ObserverStats before = server.observer().stats();
    muting = true;
    server.database().Patch("posts", Value(1), {{"title", "muted change"}});
    for (auto* ws : {loud1.get(), loud2.get()}) {
        auto push = ws->Receive(std::chrono::seconds(10));
        ASSERT_TRUE(push);
        EXPECT_NE(push->find("muted change"), std::string::npos);
    }
    // The muted socket got nothing for that change: its next frame is the reply to this request (a 403 now).
    auto next = muted->Request(R"({"action": "subscribe_instance", "pk": 1, "request_id": "q"})");
    ASSERT_TRUE(next);
    EXPECT_NE(next->find("\"response_status\":403"), std::string::npos) << *next;
    // Serialized once for the consumer and version, sent as two frames (the denied socket gets none, and no 403 push).
    // The delivery thread counts after it sends: wait for its counters, then check them exactly.
    observer::ObserverStats after = server.observer().stats();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (after.frames - before.frames < 2 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::yield();
        after = server.observer().stats();
    }
    EXPECT_EQ(after.serializations - before.serializations, 1u);
    EXPECT_EQ(after.frames - before.frames, 2u);
    server.Stop();
}

// --- issue 11: a subscription starts at the version of the 201; `since` holds after any gap; list snapshots ---

std::string Since(std::int64_t version) { return std::to_string(version); }

// Trims every change the horizon allows (a trim removes what an earlier call marked, so two calls).
void TrimAll(storage::Backend& db) {
    auto feed = db.OpenChangeSource();
    feed->Trim(std::chrono::milliseconds(0));
    feed->Trim(std::chrono::milliseconds(0));
}

TEST_P(SubscriptionTest, TheSubscribeReplyCarriesTheRowVersionAndTheEpoch) {
    auto a = Connect();
    Frame sub = Call(*a, R"({"action": "subscribe_instance", "pk": 2, "request_id": "v"})");
    EXPECT_EQ(sub.status(), 201);
    EXPECT_EQ(sub.version(), server_->database().RowVersion("posts", Value(2)));
    ASSERT_TRUE(sub.doc.HasMember("epoch"));
    EXPECT_EQ(sub.doc["epoch"].GetString(), server_->database().Epoch());
    server_->database().Patch("posts", Value(2), {{"body", "x"}});
    Frame push = Next(*a);
    EXPECT_GT(push.version(), sub.version());
    ASSERT_TRUE(push.doc.HasMember("epoch"));
    EXPECT_EQ(push.doc["epoch"].GetString(), server_->database().Epoch());
}

// The creation of a row, still on its way from the relay when a client subscribes to the row, is not pushed after
// the 201: the subscriber could already have read it (DCRF's client then saw stale data).
TEST_P(SubscriptionTest, AChangeStillInFlightAtTheSubscribeIsNotPushedAfterIt) {
    auto a = Connect();
    WatchSentinel(*a);
    for (int i = 0; i < 40; ++i) {
        Row row = server_->database().Insert("posts", {{"title", "In flight " + std::to_string(i)}});
        // No WaitRelayed: the relay is still publishing the insert while the subscribe runs.
        Frame sub =
            Call(*a, R"({"action": "subscribe_instance", "pk": )" + JsonOfValue(row[0]) + R"(, "request_id": "f"})");
        ASSERT_EQ(sub.status(), 201) << sub.text;
        EXPECT_EQ(sub.version(), server_->database().RowVersion("posts", row[0]));
    }
    ExpectOnlySentinel({a.get()});
}

// The scenario of issue 11: the one change of a rarely changed row, missed while away, is pushed on re-subscribe with
// `since` although the feed no longer holds it.
TEST_P(SubscriptionTest, AChangeMissedWhileAwayIsPushedAfterTheFeedWasTrimmed) {
    std::int64_t seen = 0;
    {
        auto a = Connect();
        seen = Call(*a, R"({"action": "subscribe_instance", "pk": 1, "request_id": "r"})").version();
    }
    server_->database().Patch("posts", Value(1), {{"title", "Missed"}});
    for (int i = 0; i < 30; ++i) server_->database().Patch("posts", Value(2), {{"body", std::to_string(i)}});
    TrimAll(server_->database());
    ASSERT_FALSE(server_->database().LastChange("posts", Value(1))->before);  // its change left the feed
    auto a = Connect();
    Frame sub =
        Call(*a, R"({"action": "subscribe_instance", "pk": 1, "request_id": "r", "since": )" + Since(seen) + "}");
    EXPECT_EQ(sub.status(), 201);
    Frame push = Next(*a);
    EXPECT_EQ(push.action(), "update");
    EXPECT_STREQ(push.data()["title"].GetString(), "Missed");
    EXPECT_EQ(push.version(), sub.version());
    // A client that has that version gets nothing.
    auto b = Connect();
    Call(*b, R"({"action": "subscribe_instance", "pk": 1, "request_id": "r", "since": )" + Since(push.version()) + "}");
    ExpectNothingPending(*b);
}

TEST_P(SubscriptionTest, ADeleteMissedWhileAwayIsPushedAfterItsTombstoneWasTrimmed) {
    std::int64_t seen = 0;
    {
        auto a = Connect();
        seen = Call(*a, R"({"action": "subscribe_instance", "pk": 2, "request_id": "r"})").version();
    }
    ASSERT_TRUE(server_->database().Delete("posts", Value(2)));
    server_->database().Patch("posts", Value(1), {{"body", "later"}});
    TrimAll(server_->database());
    ASSERT_FALSE(server_->database().LastChange("posts", Value(2)));  // nothing is known of row 2 any more
    auto a = Connect();
    EXPECT_EQ(Call(*a, R"({"action": "subscribe_instance", "pk": 2, "request_id": "r", "since": )" + Since(seen) + "}")
                  .status(),
              201);
    Frame push = Next(*a);
    EXPECT_EQ(push.action(), "delete");
    EXPECT_EQ(push.status(), 204);
    EXPECT_EQ(push.data()["pk"].GetInt(), 2);
}

// A version of another database (recreated, or restored from a backup) says nothing: the current state is pushed.
TEST_P(SubscriptionTest, SinceFromAnotherEpochPushesTheCurrentState) {
    std::int64_t latest = server_->database().RowVersion("posts", Value(1));
    auto a = Connect();
    Call(*a, R"({"action": "subscribe_instance", "pk": 1, "request_id": "e", "since": )" + Since(latest + 1000) +
                 R"(, "epoch": "another"})");
    Frame push = Next(*a);
    EXPECT_EQ(push.action(), "update");
    EXPECT_STREQ(push.data()["title"].GetString(), "First");
    // The same epoch, and nothing newer: nothing.
    auto b = Connect();
    Call(*b, R"({"action": "subscribe_instance", "pk": 1, "request_id": "e", "since": )" + Since(latest) +
                 R"(, "epoch": ")" + server_->database().Epoch() + R"("})");
    ExpectNothingPending(*b);
    EXPECT_EQ(Call(*b, R"({"action": "subscribe_instance", "pk": 1, "request_id": "x", "epoch": 5})").status(), 400);
}

// What a list subscriber holds: rows by pk with their versions, from the snapshot then the pushes.
struct ListView {
    std::map<std::int64_t, std::pair<std::int64_t, std::string>> rows;  // pk -> (version, title)
    std::map<std::int64_t, std::int64_t> gone;                          // pk -> version of its delete
    void Apply(const Frame& push) {
        std::int64_t pk = push.data()["id"].GetInt64();
        std::int64_t version = push.version();
        std::int64_t known = std::max(rows.count(pk) ? rows[pk].first : 0, gone.count(pk) ? gone[pk] : 0);
        // Nothing the subscriber has (from the snapshot or an earlier push) is pushed again, nor anything older.
        EXPECT_GT(version, known) << push.text;
        if (version <= known) return;
        if (push.action() == "delete") {
            rows.erase(pk);
            gone[pk] = version;
        } else {
            rows[pk] = {version, push.data()["title"].GetString()};
        }
    }
};

// A list snapshot taken while another connection writes in a loop: the snapshot plus the pushes after it end at the
// database's final state, with no change lost or applied twice.
TEST_P(SubscriptionTest, AListSnapshotTakenDuringWritesPlusItsPushesEndsAtTheFinalState) {
    for (int i = 0; i < 30; ++i) server_->database().Insert("posts", {{"title", "w0"}, {"author", "carol"}});
    std::atomic<bool> stop{false};
    std::thread writer([&] {
        auto w = Connect();
        for (int round = 1; !stop.load(); ++round) {
            std::int64_t pk = 4 + round % 30;
            Call(*w, R"({"action": "patch", "pk": )" + std::to_string(pk) + R"(, "data": {"title": "w)" +
                         std::to_string(round) + R"("}})");
            // Rows also leave and come back to the filter.
            if (round % 7 == 0) {
                Call(*w, R"({"action": "patch", "pk": )" + std::to_string(pk) + R"(, "data": {"author": ")" +
                             (round % 14 == 0 ? "carol" : "dave") + R"("}})");
            }
        }
    });
    auto a = Connect();
    WatchSentinel(*a);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let the writer get going (not a synchronization)
    Frame snap = Call(*a, R"({"action": "subscribe_list", "request_id": "S", "snapshot": true,
                              "filter": {"author": "carol"}})");
    ASSERT_EQ(snap.status(), 201) << snap.text;
    ASSERT_TRUE(snap.doc.HasMember("versions"));
    ListView view;
    const auto& rows = snap.data().GetArray();
    const auto& versions = snap.doc["versions"].GetArray();
    ASSERT_EQ(rows.Size(), versions.Size());
    for (rapidjson::SizeType i = 0; i < rows.Size(); ++i) {
        view.rows[rows[i]["id"].GetInt64()] = {versions[i].GetInt64(), rows[i]["title"].GetString()};
        // Every change up to the snapshot's version is in it. On PostgreSQL a row may also hold a change committed
        // while the snapshot waited for older transactions: its version is above the snapshot's, and no push repeats
        // it (ListView::Apply checks that every push is newer than the row's version).
        if (GetParam() == test_support::Engine::kSqlite) {
            EXPECT_LE(versions[i].GetInt64(), snap.version());
        }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    stop = true;
    writer.join();
    // Every push up to the sentinel's.
    std::string token = "end";
    server_->database().Patch("posts", Value(3), {{"body", token}});
    for (;;) {
        Frame f = Next(*a);
        ASSERT_NE(f.status(), -1) << "no sentinel push";
        if (f.request_id() == "sentinel") break;
        ASSERT_EQ(f.request_id(), "S") << f.text;
        view.Apply(f);
    }
    std::map<std::int64_t, std::string> expected;
    Query query;
    query.filters.push_back(Filter{"author", FilterOp::kExact, Value(std::string("carol")), {}});
    for (const Row& row : server_->database().List("posts", query)) expected[row[0].AsInteger()] = row[1].AsText();
    std::map<std::int64_t, std::string> seen;
    for (const auto& [pk, entry] : view.rows) seen[pk] = entry.second;
    EXPECT_EQ(seen, expected);
}

TEST_P(SubscriptionTest, ListSinceSendsWhatChangedAndWhatLeftAndResetsWhenItCannotTell) {
    auto a = Connect();
    Frame first = Call(*a, R"({"action": "subscribe_list", "request_id": "L", "filter": {"author": "alice"}})");
    ASSERT_EQ(first.status(), 201);
    std::int64_t since = first.version();
    a.reset();
    Row carol = server_->database().Insert("posts", {{"title", "Irrelevant"}, {"author", "carol"}});
    server_->database().Patch("posts", Value(1), {{"title", "First v2"}});
    Row joined = server_->database().Insert("posts", {{"title", "Joined"}, {"author", "alice"}});
    Row left = server_->database().Insert("posts", {{"title", "Left"}, {"author", "alice"}});
    server_->database().Patch("posts", left[0], {{"author", "zed"}});
    auto b = Connect();
    WatchSentinel(*b);
    Frame sub = Call(*b, R"({"action": "subscribe_list", "request_id": "L", "filter": {"author": "alice"},
                             "since": )" +
                             Since(since) + "}");
    ASSERT_EQ(sub.status(), 201);
    EXPECT_FALSE(sub.doc.HasMember("reset"));
    std::map<std::int64_t, std::string> pushed;
    for (int i = 0; i < 4; ++i) {  // row 1, joined, left, and carol's row that the socket may see but never matched
        Frame f = Next(*b);
        ASSERT_EQ(f.request_id(), "L") << f.text;
        pushed[f.data()["id"].GetInt64()] = f.action();
    }
    EXPECT_EQ(pushed[1], "update");
    EXPECT_EQ(pushed[joined[0].AsInteger()], "update");
    EXPECT_EQ(pushed[left[0].AsInteger()], "delete");
    EXPECT_EQ(pushed[carol[0].AsInteger()], "delete");
    ExpectOnlySentinel({b.get()});
    // A delete forgotten by the trim makes `since` unknowable: the 201 then carries the whole list and says so.
    ASSERT_TRUE(server_->database().Delete("posts", carol[0]));
    server_->database().Patch("posts", Value(2), {{"body", "after"}});
    TrimAll(server_->database());
    auto c = Connect();
    Frame reset = Call(*c, R"({"action": "subscribe_list", "request_id": "L", "filter": {"author": "alice"},
                               "since": )" +
                               Since(since) + "}");
    ASSERT_EQ(reset.status(), 201);
    ASSERT_TRUE(reset.doc.HasMember("reset"));
    ASSERT_TRUE(reset.data().IsArray());
    EXPECT_EQ(reset.data().Size(), 2u);  // row 1 and the joined row
    EXPECT_EQ(reset.doc["versions"].Size(), 2u);
}

TEST_P(SubscriptionTest, AGroupSnapshotCarriesTheGroupsRows) {
    server_->database().Insert("posts", {{"title", "Alice two"}, {"author", "alice"}});
    auto a = Connect();
    Frame snap = Call(*a, R"({"action": "subscribe_group", "request_id": "G", "author": "alice", "snapshot": true})");
    ASSERT_EQ(snap.status(), 201) << snap.text;
    ASSERT_TRUE(snap.data().IsArray());
    EXPECT_EQ(snap.data().Size(), 2u);
    EXPECT_EQ(snap.doc["versions"].Size(), 2u);
    EXPECT_EQ(Call(*a, R"({"action": "subscribe_list", "request_id": "x", "snapshot": "yes"})").status(), 400);
}

}  // namespace
INSTANTIATE_TEST_SUITE_P(Engines, SubscriptionTest, test_support::AllEngines(), test_support::EngineParamName);

}  // namespace syncline
