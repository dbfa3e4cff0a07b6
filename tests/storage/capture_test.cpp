#include <syncline/storage/backend.hpp>
#include <syncline/test_support/engines.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "test_db.hpp"

namespace syncline::storage {
namespace {

using ::testing::ElementsAre;

using test_support::Engine;

// Every test runs on both engines: writes through the store and from another client (the sqlite3 shell, a plain
// PostgreSQL connection) are captured alike.
class CaptureTest : public ::testing::TestWithParam<Engine> {
protected:
    void SetUp() override {
        engine_db_ = std::make_unique<test_support::EngineDatabase>(GetParam(), dir_);
        if (!engine_db_->available()) GTEST_SKIP() << test_support::kPgSkipReason;
        BackendOptions options;
        options.database = engine_db_->database();
        db_ = OpenBackend(options, {testing::PostsSchema(), testing::TagsSchema()});
        for (int i = 1; i <= 3; ++i) db_->Insert("posts", {{"title", "Post " + std::to_string(i)}});
        feed_ = db_->OpenChangeSource();
    }
    const Schema& posts() { return db_->Model("posts"); }
    std::vector<ChangeEvent> ReadAfter(std::int64_t cursor, std::size_t max_batch = 1024) {
        return feed_->ReadAfter(cursor, max_batch);
    }
    testing::TempDir dir_;
    std::unique_ptr<test_support::EngineDatabase> engine_db_;
    std::unique_ptr<Backend> db_;
    std::unique_ptr<ChangeSource> feed_;
};

TEST_P(CaptureTest, ApiWritesAreCapturedInOrder) {
    auto events = ReadAfter(0);
    ASSERT_EQ(events.size(), 3u);
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(events[i].seq, i + 1);
        EXPECT_EQ(events[i].table, "posts");
        EXPECT_EQ(events[i].pk, Value(i + 1));
        EXPECT_EQ(events[i].op, ChangeOp::kInsert);
        EXPECT_FALSE(events[i].old_json);
        ASSERT_TRUE(events[i].row);
        EXPECT_EQ((*events[i].row)[1], Value("Post " + std::to_string(i + 1)));
    }
    EXPECT_EQ(ReadAfter(1, 1).front().seq, 2);
    EXPECT_TRUE(ReadAfter(3).empty());
}

TEST_P(CaptureTest, AnotherClientsWritesAreCaptured) {
    std::int64_t cursor = feed_->LatestSeq();
    ASSERT_EQ(cursor, 3);
    // Wait in this thread while another process commits: the wake-up comes from data_version polling (SQLite) or a
    // notification (PostgreSQL).
    std::thread shell([&] {
        EXPECT_NO_THROW(
            engine_db_->ExecOutside("UPDATE posts SET title = 'from shell', likes = 5 WHERE id = 2;"
                                    "DELETE FROM posts WHERE id = 3;"
                                    "INSERT INTO posts (title) VALUES ('shell insert');"));
    });
    bool woke = feed_->WaitForChanges(cursor, std::chrono::seconds(30));
    shell.join();
    EXPECT_TRUE(woke);
    auto events = ReadAfter(cursor);
    ASSERT_EQ(events.size(), 3u);

    EXPECT_EQ(events[0].seq, 4);
    EXPECT_EQ(events[0].op, ChangeOp::kUpdate);
    EXPECT_EQ(events[0].pk, Value(2));
    ASSERT_TRUE(events[0].row);
    EXPECT_THAT(*events[0].row, ElementsAre(Value(2), Value("from shell"), Value(""), Value(""), Value(5), Value(false)));
    ASSERT_TRUE(events[0].old_json);
    EXPECT_THAT(RowFromJson(posts(), *events[0].old_json),
                ElementsAre(Value(2), Value("Post 2"), Value(""), Value(""), Value(), Value(false)));

    EXPECT_EQ(events[1].seq, 5);
    EXPECT_EQ(events[1].op, ChangeOp::kDelete);
    EXPECT_EQ(events[1].pk, Value(3));
    EXPECT_FALSE(events[1].row);
    ASSERT_TRUE(events[1].old_json);
    EXPECT_EQ(RowFromJson(posts(), *events[1].old_json)[1], Value("Post 3"));

    EXPECT_EQ(events[2].seq, 6);
    EXPECT_EQ(events[2].op, ChangeOp::kInsert);
    EXPECT_EQ(events[2].pk, Value(4));
    ASSERT_TRUE(events[2].row);
    EXPECT_EQ((*events[2].row)[1], Value("shell insert"));

    EXPECT_EQ(db_->RowVersion("posts", Value(2)), 4);
    EXPECT_EQ(db_->RowVersion("posts", Value(3)), 5);
    EXPECT_EQ(db_->RowVersion("posts", Value(99)), 0);
}

TEST_P(CaptureTest, RolledBackTransactionsLeaveNoChange) {
    {
        auto tx = db_->Begin();
        tx->Insert("posts", {{"title", "never"}});
        tx->Patch("posts", Value(1), {{"title", "never either"}});
        tx->Rollback();
    }
    engine_db_->ExecOutside("BEGIN; UPDATE posts SET likes = 1; DELETE FROM posts; ROLLBACK;");
    // (On PostgreSQL the rolled-back writes used up seqs: a sequence never goes back. No change carries them.)
    EXPECT_TRUE(ReadAfter(3).empty());
    EXPECT_TRUE(ReadAfter(feed_->LatestSeq()).empty());
    EXPECT_FALSE(feed_->WaitForChanges(feed_->LatestSeq(), std::chrono::milliseconds(20)));
}

TEST_P(CaptureTest, FailedWriteLeavesNoChange) {
    db_->Insert("tags", {{"slug", "a"}, {"label", "A"}});
    std::int64_t before = feed_->LatestSeq();
    try {
        db_->Insert("tags", {{"slug", "b"}, {"label", "A"}});
        FAIL() << "a duplicate label was inserted";
    } catch (const StorageError& e) {
        EXPECT_EQ(e.kind(), StoreErrc::kConstraint);
        EXPECT_THAT(e.what(), ::testing::HasSubstr("UNIQUE constraint failed: tags.label"));  // consumers read it
    }
    db_->Insert("tags", {{"slug", "c"}, {"label", "C"}});
    auto events = ReadAfter(before);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].pk, Value("c"));
}

TEST_P(CaptureTest, SeveralSavesInOneTransactionAllSeeTheFinalRow) {
    {
        auto tx = db_->Begin();
        tx->Patch("posts", Value(1), {{"likes", 1}});
        tx->Patch("posts", Value(1), {{"likes", 2}});
        tx->Patch("posts", Value(1), {{"likes", 3}});
        tx->Commit();
    }
    auto events = ReadAfter(3);
    ASSERT_EQ(events.size(), 3u);
    for (const auto& e : events) {
        EXPECT_EQ(e.op, ChangeOp::kUpdate);
        ASSERT_TRUE(e.row);
        EXPECT_EQ((*e.row)[4], Value(3));
    }
    EXPECT_EQ(RowFromJson(posts(), *events[0].old_json)[4], Value());
    EXPECT_EQ(RowFromJson(posts(), *events[2].old_json)[4], Value(2));
    EXPECT_EQ(db_->RowVersion("posts", Value(1)), 6);
}

TEST_P(CaptureTest, KeyChangeIsDeleteThenInsert) {
    db_->Insert("tags", {{"slug", "old"}, {"label", "L"}});
    std::int64_t cursor = feed_->LatestSeq();
    engine_db_->ExecOutside("UPDATE tags SET slug = 'new' WHERE slug = 'old';");
    auto events = ReadAfter(cursor);
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[0].op, ChangeOp::kDelete);
    EXPECT_EQ(events[0].pk, Value("old"));
    EXPECT_EQ(events[1].op, ChangeOp::kInsert);
    EXPECT_EQ(events[1].pk, Value("new"));
    ASSERT_TRUE(events[1].row);
    EXPECT_EQ((*events[1].row)[1], Value("L"));
}

TEST_P(CaptureTest, TrimNeverReusesASeq) {
    EXPECT_EQ(feed_->Trim(std::chrono::hours(1)), 0);         // nothing is older than an hour
    EXPECT_EQ(feed_->Trim(std::chrono::milliseconds(0)), 2);  // keeps the latest change
    EXPECT_EQ(feed_->LatestSeq(), 3);
    EXPECT_EQ(feed_->Trim(std::chrono::milliseconds(0)), 0);
    // Even with every row of the feed but one gone, and the table emptied from the shell, seq keeps counting.
    engine_db_->ExecOutside("DELETE FROM posts;");
    EXPECT_EQ(feed_->Trim(std::chrono::milliseconds(0)), 3);
    Row row = db_->Insert("posts", {{"title", "after trim"}});
    auto events = ReadAfter(0);
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[0].seq, 6);
    EXPECT_EQ(events[1].seq, 7);
    EXPECT_EQ(events[1].pk, row[0]);
}

TEST_P(CaptureTest, TrimStopsAtTheLowestCursor) {
    for (int i = 0; i < 5; ++i) db_->Patch("posts", Value(1), {{"likes", i}});  // seq 4..8
    feed_->SaveCursor("relay-a", 5);
    feed_->SaveCursor("relay-b", 7);
    EXPECT_EQ(feed_->Trim(std::chrono::milliseconds(0)), 5);  // seq 1..5
    EXPECT_EQ(ReadAfter(0).front().seq, 6);
    feed_->SaveCursor("relay-a", 8);
    EXPECT_EQ(feed_->Trim(std::chrono::milliseconds(0)), 2);  // seq 6 and 7: relay-b has read up to 7
    feed_->SaveCursor("relay-b", 8);
    EXPECT_EQ(feed_->Trim(std::chrono::milliseconds(0)), 0);  // 8 is the latest: kept
    EXPECT_EQ(ReadAfter(0).size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Engines, CaptureTest, test_support::AllEngines(), test_support::EngineParamName);

}  // namespace
}  // namespace syncline::storage
