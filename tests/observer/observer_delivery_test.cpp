// The observer's fan-out (Observer::Deliver): which sockets get which frame for a change, frames shared by the
// subscribers of one request_id and serialized once per consumer, pushes a permission refuses never sent, a row that
// leaves a socket's view pushed as a delete, list and group membership deciding create, update and delete, and
// versions already pushed not pushed again.

#include <syncline/observer/observer.hpp>

#include <syncline/core/consumer/permissions.hpp>
#include <syncline/core/protocol/frame_dispatch.hpp>

#include <gtest/gtest.h>
#include <optional>
#include <thread>

#include <chrono>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "observer_fixture.hpp"

namespace syncline::observer::testing {
namespace {

// Refuses every request of the user "bob"; throws for the user "thrower"; hides rows whose title starts "secret".
class Guarded final : public Permission {
public:
    bool HasPermission(const ActionRequest& request, const GenericConsumer&) const override {
        const std::string& name = request.connection().user().name;
        if (name == "thrower") throw std::runtime_error("permission exploded");
        return name != "bob";
    }
    bool HasObjectPermission(const ActionRequest&, const GenericConsumer& consumer, const Row& row) const override {
        return row.at(*consumer.schema().FieldIndex("title")).AsText().rfind("secret", 0) != 0;
    }
};

class ObserverDeliveryTest : public ObserverFixture {
protected:
    static std::vector<Filter> ByAuthor(const std::string& author) {
        return {Filter{"author", FilterOp::kExact, Value(author), {}}};
    }
};

TEST_P(ObserverDeliveryTest, EachSocketGetsItsRequestIdsFrameAndSubscribersOfOneRequestIdShareIt) {
    Socket ann = Connect("ann");
    Socket bob = Connect("bob");
    Socket carl = Connect("carl");
    ASSERT_TRUE(SubscribeRow(ann, *consumer_, 1, "x"));
    ASSERT_TRUE(SubscribeRow(bob, *consumer_, 1, "x"));
    ASSERT_TRUE(SubscribeRow(carl, *consumer_, 1, "y"));
    ASSERT_TRUE(SubscribeRow(carl, *consumer_, 2, "y"));  // another row: nothing for it
    db_->Patch("posts", Value(1), {{"title", "one v2"}});
    std::vector<RowEvent> events = DeliverChanges();
    ASSERT_EQ(events.size(), 1u);

    const std::vector<ReceivedPush> to_ann = ann.pushes(), to_bob = bob.pushes(), to_carl = carl.pushes();
    ASSERT_EQ(to_ann.size(), 1u);
    ASSERT_EQ(to_bob.size(), 1u);
    ASSERT_EQ(to_carl.size(), 1u);
    const ReceivedPush& a = to_ann[0];
    EXPECT_EQ(a.action, "update");
    EXPECT_EQ(a.status, 200);
    EXPECT_EQ(a.request_id, R"("x")");
    EXPECT_EQ(a.version, events[0].version);
    EXPECT_EQ(a.data, R"({"id":1,"title":"one v2","body":"","author":"ann","likes":null,"public":false})");
    EXPECT_EQ(a.shared, to_bob[0].shared);  // one frame for both sockets of request_id "x"
    EXPECT_EQ(a.key, to_bob[0].key);
    const ReceivedPush& c = to_carl[0];
    EXPECT_NE(c.shared, a.shared);
    EXPECT_EQ(c.request_id, R"("y")");
    EXPECT_EQ(c.data, a.data);
    EXPECT_NE(c.key, a.key);  // coalescing keys are per request_id

    ObserverStats stats = observer_->stats();
    EXPECT_EQ(stats.frames, 3u);
    EXPECT_EQ(stats.serializations, 1u);  // the row was serialized once for the three sockets
}

TEST_P(ObserverDeliveryTest, ADeniedPushIsNotSentAndARowLeavingTheSocketsViewIsPushedAsADelete) {
    auto guarded = Consumer({std::make_shared<Guarded>()});
    Socket ann = Connect("ann");
    Socket bob = Connect("bob");
    ASSERT_TRUE(SubscribeRow(ann, *guarded, 1, "x"));
    ASSERT_TRUE(SubscribeRow(bob, *guarded, 1, "x"));
    db_->Patch("posts", Value(1), {{"title", "one v2"}});
    DeliverChanges();
    ASSERT_EQ(ann.pushes().size(), 1u);
    EXPECT_EQ(ann.pushes()[0].action, "update");
    EXPECT_TRUE(bob.pushes().empty());  // refused: not even a delete

    db_->Patch("posts", Value(1), {{"title", "secret plans"}});
    DeliverChanges();
    const std::vector<ReceivedPush> pushes = ann.pushes();
    ASSERT_EQ(pushes.size(), 2u);
    const ReceivedPush& gone = pushes[1];
    EXPECT_EQ(gone.action, "delete");
    EXPECT_EQ(gone.status, 204);
    EXPECT_EQ(gone.data, R"({"pk":1})");
    EXPECT_EQ(gone.key, pushes[0].key);  // the same row and request_id: a newer state replaces an older one
    EXPECT_TRUE(bob.pushes().empty());

    db_->Delete("posts", Value(1));
    DeliverChanges();
    ASSERT_EQ(ann.pushes().size(), 3u);
    EXPECT_EQ(ann.pushes()[2].action, "delete");
    EXPECT_EQ(ann.pushes()[2].data, R"({"pk":1})");
}

TEST_P(ObserverDeliveryTest, APermissionThatThrowsSkipsOnlyThatSocketsPush) {
    auto guarded = Consumer({std::make_shared<Guarded>()});
    const Socket thrower = Connect("thrower");
    const Socket ann = Connect("ann");
    for (const Socket* socket : {&thrower, &ann}) {
        ASSERT_TRUE(SubscribeRow(*socket, *guarded, 1, "x"));
        ASSERT_TRUE(Started(observer_->SubscribeList(*socket->context, *guarded, {}, "\"l\"")));
    }
    db_->Patch("posts", Value(1), {{"title", "one v2"}});
    DeliverChanges();
    EXPECT_TRUE(thrower.pushes().empty());
    EXPECT_EQ(ann.Summary(), (std::vector<std::string>{R"("x" update)", R"("l" update)"}));
}

TEST_P(ObserverDeliveryTest, AListGetsCreateUpdateAndDeleteAsARowEntersStaysInAndLeavesItsFilter) {
    Socket ann = Connect("ann");
    Socket bob = Connect("bob");
    ASSERT_TRUE(Started(observer_->SubscribeList(*ann.context, *consumer_, ByAuthor("ann"), "\"mine\"")));
    ASSERT_TRUE(Started(observer_->SubscribeList(*bob.context, *consumer_, ByAuthor("bob"), "\"mine\"")));

    Row created = db_->Insert("posts", {{"title", "three"}, {"author", "ann"}});
    const Value pk = created[0];
    DeliverChanges();
    ASSERT_EQ(ann.pushes().size(), 1u);
    EXPECT_EQ(ann.pushes()[0].action, "create");
    EXPECT_EQ(ann.pushes()[0].status, 200);
    EXPECT_TRUE(bob.pushes().empty());

    db_->Patch("posts", pk, {{"title", "three v2"}});
    DeliverChanges();
    ASSERT_EQ(ann.pushes().size(), 2u);
    EXPECT_EQ(ann.pushes()[1].action, "update");
    EXPECT_NE(ann.pushes()[1].data.find("three v2"), std::string::npos);

    // The row moves from ann's list to bob's: a delete (of the row as ann's list last had it) and a create.
    db_->Patch("posts", pk, {{"author", "bob"}});
    DeliverChanges();
    ASSERT_EQ(ann.pushes().size(), 3u);
    EXPECT_EQ(ann.pushes()[2].action, "delete");
    EXPECT_EQ(ann.pushes()[2].status, 200);
    EXPECT_NE(ann.pushes()[2].data.find(R"("author":"ann")"), std::string::npos);
    ASSERT_EQ(bob.pushes().size(), 1u);
    EXPECT_EQ(bob.pushes()[0].action, "create");
    EXPECT_NE(bob.pushes()[0].data.find(R"("author":"bob")"), std::string::npos);

    // A row in neither list: nothing.
    db_->Insert("posts", {{"title", "four"}, {"author", "carl"}});
    DeliverChanges();
    EXPECT_EQ(ann.pushes().size(), 3u);
    EXPECT_EQ(bob.pushes().size(), 1u);
}

TEST_P(ObserverDeliveryTest, GroupSubscribersFollowTheGroupsTheRowLeavesAndEnters) {
    GroupObserver by_author;
    by_author.row_groups = [](const Row& row) { return std::vector<std::string>{"author:" + row[3].AsText()}; };
    auto groups = std::make_shared<const GroupObserver>(std::move(by_author));
    Socket ann = Connect("ann");
    ASSERT_TRUE(Started(observer_->SubscribeGroups(*ann.context, *consumer_, groups, {"author:ann"}, "\"a\"")));
    ASSERT_TRUE(Started(observer_->SubscribeGroups(*ann.context, *consumer_, groups, {"author:bob"}, "\"b\"")));
    db_->Patch("posts", Value(1), {{"author", "bob"}});
    DeliverChanges();
    EXPECT_EQ(ann.Summary(), (std::vector<std::string>{R"("a" delete)", R"("b" create)"}));
    EXPECT_NE(ann.pushes()[0].key, ann.pushes()[1].key);
}

// Overload (issue 13, item 3): with a bus between processes, events wait for the observer's delivery thread one per
// row, and a newer version of a waiting row replaces it. While a socket holds the first push, 49 more versions of the
// row arrive: one waits, the latest, and the socket ends at the final state after two pushes instead of fifty.
TEST_P(ObserverDeliveryTest, WhenPushesFallBehindAWaitingRowKeepsOnlyItsLatestVersion) {
    RecordingBus remote;
    remote.crosses = true;
    auto queued = std::make_unique<Observer>(db_->models(), remote, ChannelLayout("t", 4), nullptr);
    queued->Start();
    ConsumerOptions options;
    options.model = "posts";
    auto consumer = std::make_shared<GenericConsumer>(options);
    consumer->Bind(*db_, queued.get());
    Socket ann = Connect("ann");
    ASSERT_TRUE(Started(queued->SubscribeInstance(*ann.context, *consumer,
                                                  InstanceSubscription{Value(1), Value(1), "\"a\""})));
    const Schema posts = syncline::testing::PostsSchema();  // the schema the blog backend was opened with
    std::optional<Row> row = db_->Get("posts", "id", Value(1));
    ASSERT_TRUE(row);
    const std::string channel = ChannelLayout("t", 4).ForRow("posts", Value(1));
    auto publish = [&](int n) {
        RowEvent event;
        event.table = "posts";
        event.pk = Value(1);
        event.version = 1000 + n;
        event.old_json = std::string(R"({"id": 1})");
        event.row = *row;
        (*event.row)[1] = Value("v" + std::to_string(n));
        remote.Publish(channel, EncodeEvent(event, posts));
    };

    ann.outbox->HoldNextPush();
    publish(0);
    ASSERT_TRUE(ann.outbox->WaitHolding());  // the delivery thread is inside the first push
    for (int n = 1; n < 50; ++n) publish(n);
    ObserverStats waiting = queued->stats();
    EXPECT_EQ(waiting.queued, 1u);
    EXPECT_EQ(waiting.coalesced, 48u);
    ann.outbox->Release();

    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (ann.pushes().size() < 2 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));  // the delivery thread pushes; nothing to wait on
    }
    std::vector<ReceivedPush> pushes = ann.pushes();
    ASSERT_EQ(pushes.size(), 2u);
    EXPECT_EQ(pushes[0].version, 1000);
    EXPECT_EQ(pushes[1].version, 1049);
    EXPECT_NE(pushes[1].data.find("\"v49\""), std::string::npos) << pushes[1].data;
    EXPECT_EQ(queued->stats().queued, 0u);
    EXPECT_EQ(queued->stats().events, 2u);
}

// The queue's rows are bounded (here to one): past the bound it is dropped and the delivery thread reads the change
// feed from before the oldest dropped version instead, so memory stays bounded and no change is lost.
TEST_P(ObserverDeliveryTest, PastTheMostRowsThatMayWaitTheQueueIsReadFromTheFeedInstead) {
    RecordingBus remote;
    remote.crosses = true;
    auto queued = std::make_unique<Observer>(db_->models(), remote, ChannelLayout("t", 4), db_->OpenChangeSource());
    queued->SetMaxQueuedRows(1);
    queued->Start();
    ConsumerOptions options;
    options.model = "posts";
    auto consumer = std::make_shared<GenericConsumer>(options);
    consumer->Bind(*db_, queued.get());
    db_->Insert("posts", {{"title", "three"}, {"author", "carl"}});
    Socket ann = Connect("ann");
    for (std::int64_t pk : {1, 2, 3}) {
        ASSERT_TRUE(Started(queued->SubscribeInstance(*ann.context, *consumer,
                                                      InstanceSubscription{Value(pk), Value(pk), "\"a\""})));
    }
    db_->Patch("posts", Value(1), {{"title", "one v2"}});
    db_->Patch("posts", Value(2), {{"title", "two v2"}});
    db_->Patch("posts", Value(3), {{"title", "three v2"}});
    // Row 3's insert folds into its patch: one event per row, as the relay would publish them.
    std::vector<RowEvent> events = Coalesce(feed_->ReadAfter(cursor_, 1000));
    ASSERT_EQ(events.size(), 3u);
    const Schema posts = syncline::testing::PostsSchema();  // the schema the blog backend was opened with
    auto publish = [&](const RowEvent& event) {
        remote.Publish(ChannelLayout("t", 4).ForRow("posts", event.pk), EncodeEvent(event, posts));
    };

    ann.outbox->HoldNextPush();
    publish(events[0]);  // row 1: the delivery thread takes it and holds in the push
    ASSERT_TRUE(ann.outbox->WaitHolding());
    publish(events[1]);  // row 2 waits: one row, the most
    EXPECT_EQ(queued->stats().queued, 1u);
    publish(events[2]);  // row 3 would be a second: the queue is dropped, to be read from the feed
    EXPECT_EQ(queued->stats().queued, 0u);
    EXPECT_EQ(queued->stats().overflows, 1u);
    ann.outbox->Release();

    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (ann.pushes().size() < 3 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));  // the delivery thread pushes; nothing to wait on
    }
    std::vector<std::string> titles;
    for (const ReceivedPush& push : ann.pushes()) titles.push_back(push.data);
    ASSERT_EQ(titles.size(), 3u);
    EXPECT_NE(titles[0].find("one v2"), std::string::npos) << titles[0];
    EXPECT_NE(titles[1].find("two v2"), std::string::npos) << titles[1];
    EXPECT_NE(titles[2].find("three v2"), std::string::npos) << titles[2];
}

TEST_P(ObserverDeliveryTest, AVersionAlreadyPushedIsNotPushedAgain) {
    Socket ann = Connect("ann");
    ASSERT_TRUE(SubscribeRow(ann, *consumer_, 1, "x"));
    db_->Patch("posts", Value(1), {{"title", "one v2"}});
    std::vector<RowEvent> events = DeliverChanges();
    ASSERT_EQ(events.size(), 1u);
    observer_->Deliver(events[0]);  // the same event again (a catch-up overlapping the bus)
    EXPECT_EQ(ann.pushes().size(), 1u);
    EXPECT_EQ(observer_->stats().duplicates, 1u);

    // A subscriber that already has a newer version (its `since`) gets nothing older.
    Socket bob = Connect("bob");
    ASSERT_TRUE(Started(
        observer_->SubscribeInstance(*bob.context, *consumer_, InstanceSubscription{Value(2), Value(2), "\"x\""}),
        1000));
    db_->Patch("posts", Value(2), {{"title", "two v2"}});
    DeliverChanges();
    EXPECT_TRUE(bob.pushes().empty());
}

// A serializer that names the primary key "pk" (issue 11, dcrf-client's default pkField): update pushes carry it as the
// serializer's output does; delete pushes carry {"pk": ...} as always.
TEST_P(ObserverDeliveryTest, UpdatePushesOfASerializerWithPkCarryPk) {
    ConsumerOptions options;
    options.model = "posts";
    options.serializer.fields = {"pk", "title"};
    options.mixins = {ObserverModelInstanceMixin()};
    auto consumer = std::make_shared<GenericConsumer>(options);
    consumer->Bind(*db_, observer_.get());
    Socket ann = Connect("ann");
    // Subscribed as dcrf-client does: by "pk", with its request_id.
    // (Only the status: the 201 gains keys of its own in issue 11, the row's version and the epoch.)
    const std::string subscribed =
        HandleTextFrame(*consumer, *ann.context, R"({"action": "subscribe_instance", "pk": 1, "request_id": "s"})");
    EXPECT_NE(subscribed.find(R"("response_status":201)"), std::string::npos) << subscribed;
    EXPECT_EQ(
        HandleTextFrame(*consumer, *ann.context, R"({"action": "retrieve", "pk": 1, "request_id": "r"})"),
        R"({"errors":[],"data":{"pk":1,"title":"one"},"action":"retrieve","response_status":200,"request_id":"r"})");
    db_->Patch("posts", Value(1), {{"title", "one v2"}});
    DeliverChanges();
    db_->Delete("posts", Value(1));
    DeliverChanges();
    const std::vector<ReceivedPush> pushes = ann.pushes();
    ASSERT_EQ(pushes.size(), 2u);
    EXPECT_EQ(pushes[0].action, "update");
    EXPECT_EQ(pushes[0].data, R"({"pk":1,"title":"one v2"})");
    EXPECT_EQ(pushes[1].action, "delete");
    EXPECT_EQ(pushes[1].data, R"({"pk":1})");
}

}  // namespace
// A subscription is held from the moment it exists until it starts (PendingSubscriptions::Start, after the subscribe
// read what the client has): events meanwhile wait, the newer ones are pushed at the start, and an event at or below
// the start version, arriving late (still in flight from another process), is never pushed.
TEST_P(ObserverDeliveryTest, ASubscriptionHoldsEventsUntilItStartsAndNeverPushesWhatItStartedWith) {
    Socket ann = Connect("ann");
    auto row =
        observer_->SubscribeInstance(*ann.context, *consumer_, InstanceSubscription{Value(1), Value(1), "\"i\""});
    auto list = observer_->SubscribeList(*ann.context, *consumer_, {}, "\"l\"");
    ASSERT_TRUE(row && list);
    db_->Patch("posts", Value(1), {{"title", "held"}});
    std::vector<RowEvent> held = DeliverChanges();
    ASSERT_EQ(held.size(), 1u);
    EXPECT_TRUE(ann.pushes().empty());  // held, not pushed
    row->Start(held[0].version - 1, {});
    list->Start(held[0].version - 1, {});
    EXPECT_EQ(ann.Summary(), (std::vector<std::string>{R"("i" update)", R"("l" update)"}));

    // Another socket subscribes after a change committed but before its event arrived: its read saw that change, so
    // it starts at that version, and the late event is not pushed to it.
    Socket bob = Connect("bob");
    db_->Patch("posts", Value(1), {{"title", "in flight"}});
    auto bob_row =
        observer_->SubscribeInstance(*bob.context, *consumer_, InstanceSubscription{Value(1), Value(1), "\"i\""});
    auto bob_list = observer_->SubscribeList(*bob.context, *consumer_, {}, "\"l\"");
    const std::int64_t read = db_->RowVersion("posts", Value(1));
    bob_row->Start(read, {});
    bob_list->Start(read, {});
    DeliverChanges();
    EXPECT_TRUE(bob.pushes().empty());
    EXPECT_EQ(ann.pushes().size(), 4u);  // ann has it
    db_->Patch("posts", Value(1), {{"title", "after"}});
    DeliverChanges();
    EXPECT_EQ(bob.Summary(), (std::vector<std::string>{R"("i" update)", R"("l" update)"}));
}

// A Subscribe whose caller fails before starting it (its pending part destroyed) leaves nothing behind.
TEST_P(ObserverDeliveryTest, ASubscriptionNeverStartedIsRemoved) {
    Socket ann = Connect("ann");
    {
        auto pending = observer_->SubscribeList(*ann.context, *consumer_, {}, "\"l\"");
        ASSERT_TRUE(pending);
        EXPECT_EQ(observer_->subscription_count(), 1u);
    }
    EXPECT_EQ(observer_->subscription_count(), 0u);
    db_->Patch("posts", Value(1), {{"title", "x"}});
    DeliverChanges();
    EXPECT_TRUE(ann.pushes().empty());
}

// A bus outage longer than the feed's retention: the changes it missed were trimmed before the catch-up could read
// them. Each subscription still gets what it missed, from the rows' versions and current state.
TEST_P(ObserverDeliveryTest, AfterAGapTheFeedNoLongerHoldsSubscribersGetTheCurrentState) {
    Observer observer(db_->models(), bus_, ChannelLayout("g", 4), db_->OpenChangeSource());
    observer.Start();
    ConsumerOptions options;
    options.model = "posts";
    options.filter_fields = {"author"};
    auto consumer = std::make_shared<GenericConsumer>(options);
    consumer->Bind(*db_, &observer);
    Socket ann = Connect("ann");
    ASSERT_TRUE(Started(
        observer.SubscribeInstance(*ann.context, *consumer, InstanceSubscription{Value(1), Value(1), "\"i\""})));
    ASSERT_TRUE(Started(observer.SubscribeList(*ann.context, *consumer, ByAuthor("ann"), "\"l\"")));
    // The bus is down: none of these arrives as an event.
    db_->Patch("posts", Value(1), {{"title", "missed"}});
    Row left = db_->Insert("posts", {{"title", "three"}, {"author", "ann"}});
    db_->Patch("posts", left[0], {{"author", "bob"}});
    Row joined = db_->Insert("posts", {{"title", "four"}, {"author", "ann"}});
    db_->Patch("posts", Value(2), {{"body", "kept"}});  // the latest change: the feed keeps it
    feed_->Trim(std::chrono::milliseconds(0));
    feed_->Trim(std::chrono::milliseconds(0));
    observer.CatchUp();
    std::map<std::string, std::string> got;  // "<request_id> <pk>" -> action
    for (const ReceivedPush& push : ann.pushes()) {
        rapidjson::Document data;
        data.Parse(push.data.c_str());
        std::string pk =
            data.HasMember("id") ? std::to_string(data["id"].GetInt64()) : std::to_string(data["pk"].GetInt64());
        got[push.request_id + " " + pk] = push.action;
        if (push.request_id == R"("i")") {
            EXPECT_NE(push.data.find("missed"), std::string::npos) << push.data;
        }
    }
    const std::string l = R"("l" )";
    EXPECT_EQ(got, (std::map<std::string, std::string>{{R"("i" 1)", "update"},
                                                       {l + "1", "update"},
                                                       {l + std::to_string(left[0].AsInteger()), "delete"},
                                                       {l + std::to_string(joined[0].AsInteger()), "update"}}));
    EXPECT_EQ(ann.pushes().size(), 4u);  // bob's row 2 (kept in the feed) concerns neither
}

INSTANTIATE_TEST_SUITE_P(Engines, ObserverDeliveryTest, test_support::AllEngines(), test_support::EngineParamName);

}  // namespace syncline::observer::testing
