// The observer's subscription registry (observer_registry.cpp): each kind subscribes, unsubscribes and is dropped
// with its connection; the bus carries every channel from Start on, and the observer decodes a channel's messages
// exactly while some subscription needs it; the per-connection cap
// refuses without leaving anything behind; and no text a client chooses makes two subscriptions one.

#include <syncline/observer/observer.hpp>

#include <gtest/gtest.h>

#include <chrono>

#include <set>
#include <string>
#include <vector>

#include "observer_fixture.hpp"

namespace syncline::observer::testing {
namespace {

class ObserverRegistryTest : public ObserverFixture {
protected:
    std::set<std::string> TableChannels() const {
        std::vector<std::string> all = ChannelLayout("t", 4).ForTable("posts");
        return std::set<std::string>(all.begin(), all.end());
    }
    // Every channel of every model (what Start subscribes).
    std::set<std::string> AllChannels() const {
        std::set<std::string> all;
        for (const Schema& model : db_->models()) {
            for (const std::string& channel : ChannelLayout("t", 4).ForTable(model.table())) all.insert(channel);
        }
        return all;
    }
    static std::shared_ptr<const GroupObserver> ByAuthor() {
        GroupObserver groups;
        groups.row_groups = [](const Row& row) { return std::vector<std::string>{"author:" + row[3].AsText()}; };
        return std::make_shared<const GroupObserver>(std::move(groups));
    }
};

TEST_P(ObserverRegistryTest, TheBusCarriesEveryChannelAllAlongAndTheObserverNeedsOneExactlyWhileASubscriptionDoes) {
    const std::string row1 = ChannelLayout("t", 4).ForRow("posts", Value(1));
    EXPECT_EQ(row1, "t:posts:2");
    // Subscribed once each at Start, before any subscription: a subscribe never waits for the bus.
    EXPECT_EQ(bus_.channels(), AllChannels());
    EXPECT_TRUE(observer_->WaitSubscribed(std::chrono::milliseconds(0)));
    EXPECT_TRUE(observer_->needed_channels().empty());
    Socket ann = Connect("ann");
    Socket bob = Connect("bob");
    ASSERT_TRUE(SubscribeRow(ann, *consumer_, 1, "a"));
    ASSERT_TRUE(SubscribeRow(bob, *consumer_, 1, "b"));
    EXPECT_EQ(observer_->needed_channels(), std::set<std::string>{row1});

    ASSERT_TRUE(Started(observer_->SubscribeList(*ann.context, *consumer_, {}, "\"l\"")));
    EXPECT_EQ(observer_->needed_channels(), TableChannels());  // a list needs every row of the table

    observer_->UnsubscribeList(*ann.context, *consumer_, std::nullopt);
    EXPECT_EQ(observer_->needed_channels(), std::set<std::string>{row1});  // still held by the two row subscriptions
    observer_->UnsubscribeInstance(*ann.context, *consumer_, Value(1), std::nullopt);
    EXPECT_EQ(observer_->needed_channels(), std::set<std::string>{row1});
    observer_->DropConnection(*bob.context);
    EXPECT_TRUE(observer_->needed_channels().empty());
    EXPECT_EQ(observer_->subscription_count(), 0u);
    EXPECT_EQ(bus_.channels(), AllChannels());
    for (const std::string& channel : AllChannels()) EXPECT_EQ(bus_.subscribes(channel), 1) << channel;
}

// A message on a channel no subscription here needs is dropped before it is decoded; on a needed one it is delivered.
TEST_P(ObserverRegistryTest, AMessageOnAChannelNobodyHereNeedsIsDroppedUndecoded) {
    const std::string row1 = ChannelLayout("t", 4).ForRow("posts", Value(1));
    db_->Patch("posts", Value(1), {{"title", "one v2"}});
    std::vector<RowEvent> events = Coalesce(feed_->ReadAfter(cursor_, 10));
    ASSERT_EQ(events.size(), 1u);
    const Schema posts = syncline::testing::PostsSchema();  // the schema the blog backend was opened with
    const std::string payload = EncodeEvent(events[0], posts);
    bus_.Publish(row1, payload);
    EXPECT_EQ(observer_->stats().events, 0u);

    Socket ann = Connect("ann");
    ASSERT_TRUE(SubscribeRow(ann, *consumer_, 1, "a"));
    bus_.Publish(row1, payload);
    EXPECT_EQ(observer_->stats().events, 1u);
    EXPECT_EQ(ann.Summary(), (std::vector<std::string>{R"("a" update)"}));
}

TEST_P(ObserverRegistryTest, EachKindUnsubscribesByWhatItNamesAndDropTakesTheRest) {
    Socket ann = Connect("ann");
    auto groups = ByAuthor();
    ASSERT_TRUE(SubscribeRow(ann, *consumer_, 1, "r"));
    ASSERT_TRUE(
        Started(observer_->SubscribeGroups(*ann.context, *consumer_, groups, {"author:ann", "author:bob"}, "\"g\"")));
    ASSERT_TRUE(Started(observer_->SubscribeGroups(*ann.context, *consumer_, groups, {"author:ann"}, "\"h\"")));
    ASSERT_TRUE(Started(observer_->SubscribeList(*ann.context, *consumer_, {}, "\"l1\"")));
    ASSERT_TRUE(Started(observer_->SubscribeList(*ann.context, *consumer_, {}, "\"l2\"")));
    EXPECT_EQ(observer_->subscription_count(), 6u);

    // Names that match nothing change nothing.
    observer_->UnsubscribeList(*ann.context, *consumer_, std::string("\"nope\""));
    observer_->UnsubscribeGroups(*ann.context, *consumer_, *groups, {"author:carl"}, std::nullopt);
    observer_->UnsubscribeInstance(*ann.context, *consumer_, Value(2), std::nullopt);
    Socket bob = Connect("bob");
    observer_->DropConnection(*bob.context);
    EXPECT_EQ(observer_->subscription_count(), 6u);

    // One group, under every request_id.
    observer_->UnsubscribeGroups(*ann.context, *consumer_, *groups, {"author:ann"}, std::nullopt);
    EXPECT_EQ(observer_->subscription_count(), 4u);
    // One list, by its request_id.
    observer_->UnsubscribeList(*ann.context, *consumer_, std::string("\"l1\""));
    EXPECT_EQ(observer_->subscription_count(), 3u);

    // What is left still receives: the row, the group author:bob and the list l2.
    db_->Patch("posts", Value(2), {{"title", "two v2"}});
    db_->Patch("posts", Value(1), {{"title", "one v2"}});
    DeliverChanges();
    // Row 2: group author:bob, then the list; row 1: the instance, then the list.
    EXPECT_EQ(ann.Summary(),
              (std::vector<std::string>{R"("g" update)", R"("l2" update)", R"("r" update)", R"("l2" update)"}));

    observer_->DropConnection(*ann.context);
    EXPECT_EQ(observer_->subscription_count(), 0u);
    EXPECT_TRUE(observer_->needed_channels().empty());
}

TEST_P(ObserverRegistryTest, ASubscribeOverTheCapAddsNothingAndNeedsNoChannel) {
    Socket ann = Connect("ann", 2);
    ASSERT_TRUE(SubscribeRow(ann, *consumer_, 1, "a"));
    ASSERT_TRUE(SubscribeRow(ann, *consumer_, 1, "b"));
    EXPECT_FALSE(SubscribeRow(ann, *consumer_, 2, "a"));
    EXPECT_FALSE(Started(observer_->SubscribeList(*ann.context, *consumer_, {}, "\"l\"")));
    EXPECT_FALSE(Started(observer_->SubscribeGroups(*ann.context, *consumer_, ByAuthor(), {"author:ann"}, "\"g\"")));
    EXPECT_EQ(observer_->subscription_count(), 2u);
    EXPECT_EQ(observer_->needed_channels(), std::set<std::string>{ChannelLayout("t", 4).ForRow("posts", Value(1))});

    // A socket whose very first subscribe is refused holds nothing at all.
    Socket none = Connect("none", 0);
    EXPECT_FALSE(SubscribeRow(none, *consumer_, 2, "a"));
    EXPECT_FALSE(Started(observer_->SubscribeList(*none.context, *consumer_, {}, "\"l\"")));
    EXPECT_EQ(observer_->subscription_count(), 2u);
    EXPECT_EQ(observer_->needed_channels().size(), 1u);
}

// The keys are built from parts a client chooses (group names, request_ids, lookup values): were they simply joined,
// with or without a separator, the group "author:ann" with request_id "x" and the group "author" with request_id
// "ann:x" (or "author:an" with "nx") would be one subscription.
TEST_P(ObserverRegistryTest, IdentityKeysCannotCollide) {
    Socket ann = Connect("ann");
    auto groups = ByAuthor();
    ASSERT_TRUE(Started(observer_->SubscribeGroups(*ann.context, *consumer_, groups, {"author:ann"}, "\"x\"")));
    ASSERT_TRUE(Started(observer_->SubscribeGroups(*ann.context, *consumer_, groups, {"author"}, "ann:\"x\"")));
    ASSERT_TRUE(Started(observer_->SubscribeGroups(*ann.context, *consumer_, groups, {"author:an"}, "n\"x\"")));
    ASSERT_TRUE(Started(observer_->SubscribeGroups(*ann.context, *consumer_, groups, {"author:ann\"x"}, "\"")));
    EXPECT_EQ(observer_->subscription_count(), 4u);
    // Another observer object with the same group names is another subscription too.
    ASSERT_TRUE(Started(observer_->SubscribeGroups(*ann.context, *consumer_, ByAuthor(), {"author:ann"}, "\"x\"")));
    EXPECT_EQ(observer_->subscription_count(), 5u);

    // Integer 1 and text "1" are different lookup values.
    ASSERT_TRUE(Started(observer_->SubscribeInstance(
        *ann.context, *consumer_, InstanceSubscription{Value(2), Value(std::string("1")), "\"i\""})));
    ASSERT_TRUE(SubscribeRow(ann, *consumer_, 1, "i"));
    EXPECT_EQ(observer_->subscription_count(), 7u);
    observer_->UnsubscribeInstance(*ann.context, *consumer_, Value(std::string("1")), std::nullopt);
    EXPECT_EQ(observer_->subscription_count(), 6u);

    observer_->UnsubscribeGroups(*ann.context, *consumer_, *groups, {"author:an"}, std::string("n\"x\""));
    observer_->UnsubscribeGroups(*ann.context, *consumer_, *groups, {"author"}, std::string("ann:\"x\""));
    EXPECT_EQ(observer_->subscription_count(), 4u);
    // The row-1 subscription is the one left of the two instance subscriptions, and author:ann still pushes to
    // both of its observers.
    db_->Patch("posts", Value(1), {{"title", "one v2"}});
    DeliverChanges();
    EXPECT_EQ(ann.Summary(), (std::vector<std::string>{R"("i" update)", R"("x" update)", R"("x" update)"}));
    EXPECT_NE(ann.pushes()[1].key, ann.pushes()[2].key);  // one coalescing key per subscription
}

}  // namespace
INSTANTIATE_TEST_SUITE_P(Engines, ObserverRegistryTest, test_support::AllEngines(), test_support::EngineParamName);

}  // namespace syncline::observer::testing
