// The observer's subscription registry and fan-out, without sockets: identity and dedupe, unsubscribe by row, by
// lookup value and by request_id, the per-connection limit, and bookkeeping that stays cheap with many
// subscriptions on one row (issue 9, finding 6).

#include <syncline/observer/observer.hpp>

#include <syncline/core/consumer/consumer.hpp>
#include <syncline/core/consumer/subscriptions.hpp>
#include <syncline/storage/database.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "../core/recording_outbox.hpp"
#include "../storage/test_db.hpp"
#include "started.hpp"

namespace syncline::observer {
namespace {

using ::testing::HasSubstr;
using testing::Started;

class ObserverTest : public ::testing::Test {
protected:
    void SetUp() override {
        db_ = testing::OpenBlog(dir_.File("blog.db"));
        db_->Insert("posts", {{"title", "one"}, {"author", "ann"}});
        db_->Insert("posts", {{"title", "two"}, {"author", "bob"}});
        observer_ = std::make_unique<Observer>(db_->models(), bus_, ChannelLayout("t", 4), nullptr);
        observer_->Start();
        ConsumerOptions options;
        options.model = "posts";
        options.lookup_field = "title";
        options.filter_fields = {"author"};
        consumer_ = std::make_shared<GenericConsumer>(options);
        consumer_->Bind(*db_, observer_.get());
    }

    struct Conn {
        std::shared_ptr<testing::RecordingOutbox> outbox;
        std::shared_ptr<ConnectionContext> context;
    };
    Conn Connect(std::size_t max_subscriptions = 1000) {
        ConnectionLimits limits;
        limits.max_subscriptions = max_subscriptions;
        Conn c;
        c.outbox = std::make_shared<testing::RecordingOutbox>();
        c.context = std::make_shared<ConnectionContext>(HandshakeRequest{"/ws/posts/", "", {}, "127.0.0.1:1"},
                                                        c.outbox, User{}, limits);
        return c;
    }
    bool Subscribe(const Conn& c, std::int64_t pk, const std::string& request_id) {
        const Value key(pk);
        const Value title(pk == 1 ? std::string("one") : std::string("two"));
        return Started(observer_->SubscribeInstance(*c.context, *consumer_,
                                                    InstanceSubscription{key, title, "\"" + request_id + "\""}));
    }
    void Change(std::int64_t pk, std::int64_t version) {
        RowEvent event;
        event.version = version;
        event.table = "posts";
        event.pk = Value(pk);
        event.row = db_->Get("posts", "id", Value(pk));
        observer_->Deliver(event);
    }
    static std::vector<std::string> Frames(const Conn& c) { return c.outbox->frames; }

    testing::TempDir dir_;
    std::unique_ptr<storage::Database> db_;
    InProcessBus bus_;
    std::unique_ptr<Observer> observer_;
    std::shared_ptr<GenericConsumer> consumer_;
};

TEST_F(ObserverTest, TheSameSubscriptionTwiceIsOneAndPushesComeInSubscriptionOrder) {
    Conn a = Connect();
    EXPECT_TRUE(Subscribe(a, 1, "x"));
    EXPECT_TRUE(Subscribe(a, 1, "x"));
    EXPECT_TRUE(Subscribe(a, 1, "y"));
    EXPECT_EQ(observer_->subscription_count(), 2u);
    Change(1, 10);
    ASSERT_EQ(Frames(a).size(), 2u);
    EXPECT_THAT(Frames(a)[0], HasSubstr(R"("request_id":"x")"));
    EXPECT_THAT(Frames(a)[1], HasSubstr(R"("request_id":"y")"));
    EXPECT_THAT(Frames(a)[0], HasSubstr(R"("version":10)"));
}

TEST_F(ObserverTest, UnsubscribeNamesTheRowByPkOrLookupValueAndOptionallyOneRequestId) {
    Conn a = Connect();
    Conn b = Connect();
    ASSERT_TRUE(Subscribe(a, 1, "x"));
    ASSERT_TRUE(Subscribe(a, 1, "y"));
    ASSERT_TRUE(Subscribe(a, 2, "x"));
    ASSERT_TRUE(Subscribe(b, 1, "x"));
    observer_->UnsubscribeInstance(*a.context, *consumer_, Value("one"), std::string("\"x\""));  // by lookup value
    EXPECT_EQ(observer_->subscription_count(), 3u);
    observer_->UnsubscribeInstance(*a.context, *consumer_, Value(1), std::nullopt);  // by pk, every request_id
    EXPECT_EQ(observer_->subscription_count(), 2u);
    Change(1, 11);
    Change(2, 12);
    ASSERT_EQ(Frames(a).size(), 1u);  // only row 2 is left for a
    EXPECT_THAT(Frames(a)[0], HasSubstr(R"("version":12)"));
    ASSERT_EQ(Frames(b).size(), 1u);  // b's own subscription to row 1 is untouched
    EXPECT_THAT(Frames(b)[0], HasSubstr(R"("version":11)"));
    // Unknown rows and request_ids are no-ops.
    observer_->UnsubscribeInstance(*a.context, *consumer_, Value(99), std::nullopt);
    observer_->UnsubscribeInstance(*a.context, *consumer_, Value(2), std::string("\"nope\""));
    EXPECT_EQ(observer_->subscription_count(), 2u);
}

TEST_F(ObserverTest, AConnectionHoldsAtMostItsLimitOfSubscriptions) {
    Conn a = Connect(3);
    EXPECT_TRUE(Subscribe(a, 1, "a"));
    EXPECT_TRUE(Subscribe(a, 1, "b"));
    EXPECT_TRUE(Subscribe(a, 2, "a"));
    EXPECT_FALSE(Subscribe(a, 2, "b"));
    EXPECT_TRUE(Subscribe(a, 2, "a"));  // one it holds: still fine
    EXPECT_FALSE(Started(observer_->SubscribeList(*a.context, *consumer_, {}, "\"l\"")));
    EXPECT_EQ(observer_->subscription_count(), 3u);
    observer_->UnsubscribeInstance(*a.context, *consumer_, Value(1), std::string("\"a\""));
    EXPECT_TRUE(Started(observer_->SubscribeList(*a.context, *consumer_, {}, "\"l\"")));
    EXPECT_TRUE(Started(observer_->SubscribeList(*a.context, *consumer_, {}, "\"l\"")));  // replaces its filter
    EXPECT_EQ(observer_->subscription_count(), 3u);
    // Group subscriptions are all or nothing.
    auto groups = std::make_shared<const GroupObserver>(GroupObserver{});
    Conn b = Connect(3);
    EXPECT_FALSE(
        Started(observer_->SubscribeGroups(*b.context, *consumer_, groups, {"g1", "g2", "g3", "g4"}, "\"g\"")));
    EXPECT_TRUE(Started(observer_->SubscribeGroups(*b.context, *consumer_, groups, {"g1", "g2", "g2", "g3"}, "\"g\"")));
    EXPECT_EQ(observer_->subscription_count(), 6u);
    observer_->UnsubscribeGroups(*b.context, *consumer_, *groups, {"g2"}, std::nullopt);
    EXPECT_EQ(observer_->subscription_count(), 5u);
    observer_->DropConnection(*a.context);
    observer_->DropConnection(*b.context);
    EXPECT_EQ(observer_->subscription_count(), 0u);
}

// 20 connections with 5,000 subscriptions each on one row, then 50,000 on one connection: subscribing, pushing and
// dropping them all is a matter of a second or so (it was quadratic: 9 s of a server-wide lock for the first half).
// The bound is on correctness; the test's own time limit is what catches a quadratic return.
TEST_F(ObserverTest, ManySubscriptionsOnOneRowStayCheapToAddPushAndDrop) {
    std::vector<Conn> conns;
    for (int c = 0; c < 20; ++c) {
        conns.push_back(Connect(100000));
        for (int i = 0; i < 5000; ++i) ASSERT_TRUE(Subscribe(conns.back(), 1, std::to_string(i)));
    }
    EXPECT_EQ(observer_->subscription_count(), 100000u);
    Change(1, 20);
    for (const Conn& c : conns) EXPECT_EQ(Frames(c).size(), 5000u);
    EXPECT_THAT(Frames(conns[7])[4999], HasSubstr(R"("request_id":"4999")"));
    for (const Conn& c : conns) observer_->DropConnection(*c.context);
    EXPECT_EQ(observer_->subscription_count(), 0u);

    Conn big = Connect(100000);
    for (int i = 0; i < 50000; ++i) ASSERT_TRUE(Subscribe(big, 1 + i % 2, std::to_string(i)));
    for (int i = 0; i < 50000; i += 2) {
        observer_->UnsubscribeInstance(*big.context, *consumer_, Value(1), "\"" + std::to_string(i) + "\"");
    }
    EXPECT_EQ(observer_->subscription_count(), 25000u);
    observer_->UnsubscribeInstance(*big.context, *consumer_, Value("two"), std::nullopt);
    EXPECT_EQ(observer_->subscription_count(), 0u);
}

// The in-process bus carries the relay's events as they are (Server publishes through it with PublishEvent): the
// observer's event handler gets the event itself, a subscriber gets its push, and nothing is encoded.
TEST_F(ObserverTest, AnEventPublishedOnTheInProcessBusReachesItsSubscriberUnencoded) {
    Conn c = Connect();
    ASSERT_TRUE(Subscribe(c, 1, "s"));
    db_->Patch("posts", Value(1), {{"title", "one!"}});
    RowEvent event;
    event.version = 7;
    event.position = 7;
    event.table = "posts";
    event.pk = Value(1);
    event.row = db_->Get("posts", "id", Value(1));
    const std::uint64_t before = bus_.delivered();
    bus_.PublishEvent(ChannelLayout("t", 4).ForRow("posts", Value(1)), event, db_->Model("posts"), 7);
    EXPECT_EQ(bus_.delivered(), before + 1);
    ASSERT_EQ(Frames(c).size(), 1u);
    EXPECT_THAT(Frames(c)[0], HasSubstr(R"("title":"one!")"));
    EXPECT_THAT(Frames(c)[0], HasSubstr(R"("version":7)"));
}

TEST(InProcessBusTest, PublishEventHandsTheEventItselfOrItsTextAndAcksItsSeqEvenUnheard) {
    const Schema schema = testing::PostsSchema();
    RowEvent event;
    event.version = 3;
    event.position = 3;
    event.table = "posts";
    event.pk = Value(1);
    event.row = Row{Value(1), Value("t"), Value(""), Value(""), Value(), Value(false)};
    std::vector<std::int64_t> acks;
    InProcessBus bus;
    bus.SetPublishAckHandler([&](std::int64_t seq) { acks.push_back(seq); });
    const RowEvent* seen = nullptr;
    std::vector<std::string> texts;
    bus.SetEventHandler([&](std::string_view channel, const RowEvent& e) {
        EXPECT_EQ(channel, "c1");
        seen = &e;
    });
    bus.SetHandler([&](std::string_view, std::string_view payload) { texts.emplace_back(payload); });
    bus.Subscribe("c1");
    bus.PublishEvent("c1", event, schema, 3);
    EXPECT_EQ(seen, &event) << "the event was copied or encoded on its way";
    EXPECT_TRUE(texts.empty());
    bus.PublishEvent("nobody", event, schema, 4);  // a channel nobody subscribed: carried to no one, acked
    EXPECT_EQ(bus.delivered(), 1u);
    // With a text handler alone (a bus user that decodes, as from Redis): the encoded event.
    InProcessBus text_bus;
    text_bus.SetHandler([&](std::string_view, std::string_view payload) { texts.emplace_back(payload); });
    text_bus.Subscribe("c1");
    text_bus.PublishEvent("c1", event, schema, 5);
    ASSERT_EQ(texts.size(), 1u);
    EXPECT_EQ(texts[0], EncodeEvent(event, schema));
    EXPECT_EQ(acks, (std::vector<std::int64_t>{3, 4}));
}

}  // namespace
}  // namespace syncline::observer
