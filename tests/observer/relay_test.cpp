// The relay (relay.hpp) over a real database's change feed, without Redis: it publishes each changed row once,
// coalesced, in order, on the row's channel; only the lease holder publishes, and a successor resumes at the cursor
// its predecessor saved (the acknowledged one when publishes are acknowledged).

#include <syncline/observer/relay.hpp>

#include <syncline/storage/change_feed.hpp>
#include <syncline/storage/database.hpp>
#include <syncline/test_support/engines.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../storage/test_db.hpp"

namespace syncline::observer {
namespace {

using namespace std::chrono_literals;

// What a relay published, and a wait for it.
class Published {
public:
    Publisher publisher() {
        return [this](const std::string& channel, const RowEvent& event, const Schema& schema) {
            {
                std::lock_guard<std::mutex> lock(mutex_);
                EXPECT_EQ(schema.table(), event.table);
                channels_.push_back(channel);
                events_.push_back(event);
            }
            changed_.notify_all();
        };
    }
    // Waits up to 10 s (a loaded machine, sanitizers) for `count` events; returns them.
    std::vector<RowEvent> WaitFor(std::size_t count) {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait_for(lock, 10s, [&] { return events_.size() >= count; });
        return events_;
    }
    std::vector<RowEvent> events() {
        std::lock_guard<std::mutex> lock(mutex_);
        return events_;
    }
    std::vector<std::string> channels() {
        std::lock_guard<std::mutex> lock(mutex_);
        return channels_;
    }

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<std::string> channels_;
    std::vector<RowEvent> events_;
};

bool WaitUntil(const std::function<bool()>& condition) {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::yield();
    }
    return true;
}

// Every test runs on both engines.
class RelayTest : public ::testing::TestWithParam<test_support::Engine> {
protected:
    void SetUp() override {
        engine_db_ = std::make_unique<test_support::EngineDatabase>(GetParam(), dir_);
        if (!engine_db_->available()) GTEST_SKIP() << test_support::kPgSkipReason;
        db_ = testing::OpenBlogBackend(engine_db_->database());
    }

    // A relay of `posts` only (tags are not declared), with its own feed on the database.
    std::unique_ptr<Relay> MakeRelay(Published& published, RelayOptions options) {
        return std::make_unique<Relay>(db_->OpenChangeSource(), std::vector<Schema>{testing::PostsSchema()},
                                       ChannelLayout("t", 4), published.publisher(), std::move(options));
    }
    // Starts `relay` and waits until it publishes from the newest change: a write from then on is its to publish
    // (one committed before it read where to start would be behind its cursor).
    void StartPublishing(Relay& relay) {
        db_->Insert("posts", {{"title", "before the relay"}});
        const std::int64_t latest = db_->OpenChangeSource()->LatestSeq();
        relay.Start();
        ASSERT_TRUE(WaitUntil([&] { return relay.publishing() && relay.cursor() == latest; }));
    }
    static RelayOptions Leased() {
        RelayOptions options;
        options.use_lease = true;
        options.lease_ttl = 2s;  // long enough that a loaded machine never lets it lapse while held
        options.cursor_save_interval = 10ms;
        return options;
    }
    // Saves the relay's cursor at the newest change, then six changes after it: posts a and b created, a tag (not
    // relayed), a2, b2, a3. Returns a's and b's rows and the last seq.
    struct SixChanges {
        Row a;
        Row b;
        std::int64_t last;
    };
    SixChanges WriteSixChanges() {
        db_->OpenChangeSource()->SaveCursor("relay", db_->OpenChangeSource()->LatestSeq());
        Row a = db_->Insert("posts", {{"title", "a"}});
        db_->Insert("tags", {{"slug", "x"}, {"label", "not relayed"}});
        Row b = db_->Insert("posts", {{"title", "b"}});
        db_->Update("posts", a[0], {{"title", "a2"}});
        db_->Update("posts", b[0], {{"title", "b2"}});
        db_->Update("posts", a[0], {{"title", "a3"}});
        return {a, b, db_->OpenChangeSource()->LatestSeq()};
    }
    std::string Title(std::int64_t pk, const RowEvent& event) const {
        EXPECT_EQ(event.pk, Value(pk));
        return event.row ? (*event.row)[1].AsText() : "<deleted>";
    }

    testing::TempDir dir_;
    std::unique_ptr<test_support::EngineDatabase> engine_db_;
    std::unique_ptr<storage::Backend> db_;
};

// The same writes read two changes at a time: a row read while a later change of it lies past the batch is that later
// change's state, so its event carries that later version, never the older one of the change read (before, a row's
// state went out under an older version and again under its own: one state twice, as two versions). When the later
// change is read, it gives the same version again, which receivers drop as seen. Cursor acks follow the feed.
TEST_P(RelayTest, ARowReadAheadOfItsChangeIsLabelledWithTheVersionItHas) {
    const std::int64_t last = WriteSixChanges().last;
    const std::int64_t first = last - 5;  // a's insert

    Published published;
    RelayOptions options = Leased();
    options.batch = 2;
    std::unique_ptr<Relay> relay = MakeRelay(published, options);
    relay->Start();
    ASSERT_TRUE(WaitUntil([&] { return relay->cursor() == last; }));
    published.WaitFor(5);
    relay->Stop();
    std::vector<RowEvent> events = published.events();
    // Batches [a insert, tag], [b insert, a2], [b2, a3]: a's and b's rows are read at their last versions throughout.
    ASSERT_EQ(events.size(), 5u);
    std::vector<std::string> seen;
    for (const RowEvent& e : events) {
        const std::int64_t pk = e.pk.AsInteger();
        seen.push_back(Title(pk, e) + "@" + std::to_string(e.version - first) + "/" + std::to_string(e.position - first));
    }
    // title@version/position, versions and positions counted from a's insert (0).
    EXPECT_EQ(seen, (std::vector<std::string>{"a3@5/0", "b2@4/2", "a3@5/3", "b2@4/4", "a3@5/5"}));
    EXPECT_FALSE(events[0].old_json);  // the first event of each row says it was created
    EXPECT_FALSE(events[1].old_json);
}

TEST_P(RelayTest, PublishesEachChangedRowOnceCoalescedInOrderOnItsChannel) {
    // A saved cursor makes the relay read everything written below in one batch.
    const SixChanges written = WriteSixChanges();
    const Row& a = written.a;
    const Row& b = written.b;
    const std::int64_t last = written.last;

    Published published;
    std::unique_ptr<Relay> relay = MakeRelay(published, Leased());
    relay->Start();
    std::vector<RowEvent> events = published.WaitFor(2);
    ASSERT_TRUE(WaitUntil([&] { return relay->cursor() == last; }));
    relay->Stop();
    events = published.events();
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(Title(b[0].AsInteger(), events[0]), "b2");  // b's last change comes before a's
    EXPECT_EQ(events[0].version, last - 1);
    EXPECT_FALSE(events[0].old_json);  // created within the batch
    EXPECT_EQ(Title(a[0].AsInteger(), events[1]), "a3");
    EXPECT_EQ(events[1].version, last);
    const ChannelLayout layout("t", 4);
    EXPECT_EQ(published.channels(),
              (std::vector<std::string>{layout.ForRow("posts", b[0]), layout.ForRow("posts", a[0])}));
}

TEST_P(RelayTest, WithoutALeaseARelayPublishesWhatIsWrittenAfterItStarts) {
    db_->Insert("posts", {{"title", "before"}});
    Published published;
    std::unique_ptr<Relay> relay = MakeRelay(published, RelayOptions{});
    relay->Start();
    Row after = db_->Insert("posts", {{"title", "after"}});
    std::vector<RowEvent> events = published.WaitFor(1);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(Title(after[0].AsInteger(), events[0]), "after");
    EXPECT_TRUE(relay->publishing());
    relay->Stop();
    EXPECT_FALSE(relay->publishing());
}

TEST_P(RelayTest, OnlyTheLeaseHolderPublishesAndItsSuccessorResumesAtItsCursor) {
    Published first_published, second_published;
    std::unique_ptr<Relay> first = MakeRelay(first_published, Leased());
    StartPublishing(*first);
    std::unique_ptr<Relay> second = MakeRelay(second_published, Leased());
    second->Start();

    Row one = db_->Insert("posts", {{"title", "one"}});
    ASSERT_EQ(first_published.WaitFor(1).size(), 1u);
    EXPECT_FALSE(second->publishing());
    first->Stop();  // gives the lease up and saves its cursor

    ASSERT_TRUE(WaitUntil([&] { return second->publishing(); }));
    Row two = db_->Insert("posts", {{"title", "two"}});
    std::vector<RowEvent> events = second_published.WaitFor(1);
    second->Stop();
    ASSERT_EQ(events.size(), 1u);  // "one" was published by the first relay, not again
    EXPECT_EQ(Title(two[0].AsInteger(), events[0]), "two");
    EXPECT_EQ(first_published.events().size(), 1u);
    EXPECT_EQ(Title(one[0].AsInteger(), first_published.events()[0]), "one");
}

TEST_P(RelayTest, WithAcknowledgedPublishesASuccessorResendsWhatWasNotAcknowledged) {
    RelayOptions options = Leased();
    options.acknowledged_publishes = true;
    Published first_published, second_published;
    std::unique_ptr<Relay> first = MakeRelay(first_published, options);
    StartPublishing(*first);
    db_->Insert("posts", {{"title", "acked"}});
    std::vector<RowEvent> events = first_published.WaitFor(1);
    ASSERT_EQ(events.size(), 1u);
    first->OnAck(events[0].position);
    Row lost = db_->Insert("posts", {{"title", "never acked"}});
    ASSERT_EQ(first_published.WaitFor(2).size(), 2u);
    first->Stop();

    std::unique_ptr<Relay> second = MakeRelay(second_published, options);
    second->Start();
    std::vector<RowEvent> resent = second_published.WaitFor(1);
    second->Stop();
    ASSERT_EQ(resent.size(), 1u);
    EXPECT_EQ(Title(lost[0].AsInteger(), resent[0]), "never acked");
}

}  // namespace
INSTANTIATE_TEST_SUITE_P(Engines, RelayTest, test_support::AllEngines(), test_support::EngineParamName);

}  // namespace syncline::observer
