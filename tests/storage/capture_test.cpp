#include <syncline/storage/change_feed.hpp>
#include <syncline/storage/database.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "test_db.hpp"

namespace syncline::storage {
namespace {

using ::testing::ElementsAre;

class CaptureTest : public ::testing::Test {
protected:
    void SetUp() override {
        path_ = dir_.File("blog.db");
        db_ = testing::OpenBlog(path_);
        for (int i = 1; i <= 3; ++i) db_->Insert("posts", {{"title", "Post " + std::to_string(i)}});
        feed_ = std::make_unique<ChangeFeed>(*db_);
    }
    const Schema& posts() { return db_->Model("posts"); }
    testing::TempDir dir_;
    std::string path_;
    std::unique_ptr<Database> db_;
    std::unique_ptr<ChangeFeed> feed_;
};

TEST_F(CaptureTest, ApiWritesAreCapturedInOrder) {
    auto events = feed_->ReadAfter(0);
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
    EXPECT_EQ(feed_->ReadAfter(1, 1).front().seq, 2);
    EXPECT_TRUE(feed_->ReadAfter(3).empty());
}

TEST_F(CaptureTest, SqliteShellWritesAreCaptured) {
    std::int64_t cursor = feed_->LatestSeq();
    ASSERT_EQ(cursor, 3);
    // Wait in this thread while another process commits: the wake-up comes from data_version polling.
    std::thread shell([&] {
        EXPECT_EQ(testing::SqliteShell(path_,
                                       "UPDATE posts SET title = 'from shell', likes = 5 WHERE id = 2;"
                                       "DELETE FROM posts WHERE id = 3;"
                                       "INSERT INTO posts (title) VALUES ('shell insert');"),
                  0);
    });
    bool woke = feed_->WaitForChanges(cursor, std::chrono::seconds(30));
    shell.join();
    EXPECT_TRUE(woke);
    auto events = feed_->ReadAfter(cursor);
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

TEST_F(CaptureTest, RolledBackTransactionsLeaveNoChange) {
    {
        auto tx = db_->Begin();
        tx->Insert("posts", {{"title", "never"}});
        tx->Patch("posts", Value(1), {{"title", "never either"}});
        tx->Rollback();
    }
    EXPECT_EQ(testing::SqliteShell(path_, "BEGIN; UPDATE posts SET likes = 1; DELETE FROM posts; ROLLBACK;"), 0);
    EXPECT_TRUE(feed_->ReadAfter(3).empty());
    EXPECT_EQ(feed_->LatestSeq(), 3);
    EXPECT_FALSE(feed_->WaitForChanges(3, std::chrono::milliseconds(20)));
}

TEST_F(CaptureTest, FailedWriteLeavesNoChange) {
    db_->Insert("tags", {{"slug", "a"}, {"label", "A"}});
    std::int64_t before = feed_->LatestSeq();
    EXPECT_THROW(db_->Insert("tags", {{"slug", "b"}, {"label", "A"}}), StorageError);  // UNIQUE
    EXPECT_EQ(feed_->LatestSeq(), before);
}

TEST_F(CaptureTest, SeveralSavesInOneTransactionAllSeeTheFinalRow) {
    {
        auto tx = db_->Begin();
        tx->Patch("posts", Value(1), {{"likes", 1}});
        tx->Patch("posts", Value(1), {{"likes", 2}});
        tx->Patch("posts", Value(1), {{"likes", 3}});
        tx->Commit();
    }
    auto events = feed_->ReadAfter(3);
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

TEST_F(CaptureTest, KeyChangeIsDeleteThenInsert) {
    db_->Insert("tags", {{"slug", "old"}, {"label", "L"}});
    std::int64_t cursor = feed_->LatestSeq();
    EXPECT_EQ(testing::SqliteShell(path_, "UPDATE tags SET slug = 'new' WHERE slug = 'old';"), 0);
    auto events = feed_->ReadAfter(cursor);
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[0].op, ChangeOp::kDelete);
    EXPECT_EQ(events[0].pk, Value("old"));
    EXPECT_EQ(events[1].op, ChangeOp::kInsert);
    EXPECT_EQ(events[1].pk, Value("new"));
    ASSERT_TRUE(events[1].row);
    EXPECT_EQ((*events[1].row)[1], Value("L"));
}

TEST_F(CaptureTest, TrimNeverReusesASeq) {
    EXPECT_EQ(db_->Trim(std::chrono::hours(1)), 0);  // nothing is older than an hour
    EXPECT_EQ(db_->Trim(std::chrono::milliseconds(0)), 2);  // keeps the latest change
    EXPECT_EQ(feed_->LatestSeq(), 3);
    EXPECT_EQ(db_->Trim(std::chrono::milliseconds(0)), 0);
    // Even with every row of the feed but one gone, and the table emptied from the shell, seq keeps counting.
    EXPECT_EQ(testing::SqliteShell(path_, "DELETE FROM posts;"), 0);
    EXPECT_EQ(db_->Trim(std::chrono::milliseconds(0)), 3);
    Row row = db_->Insert("posts", {{"title", "after trim"}});
    auto events = feed_->ReadAfter(0);
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[0].seq, 6);
    EXPECT_EQ(events[1].seq, 7);
    EXPECT_EQ(events[1].pk, row[0]);
}

TEST_F(CaptureTest, TrimStopsAtTheLowestCursor) {
    for (int i = 0; i < 5; ++i) db_->Patch("posts", Value(1), {{"likes", i}});  // seq 4..8
    db_->SetCursor("relay-a", 5);
    db_->SetCursor("relay-b", 7);
    EXPECT_EQ(db_->Trim(std::chrono::milliseconds(0)), 5);  // seq 1..5
    EXPECT_EQ(feed_->ReadAfter(0).front().seq, 6);
    db_->SetCursor("relay-a", 8);
    EXPECT_EQ(db_->Trim(std::chrono::milliseconds(0)), 2);  // seq 6 and 7: relay-b has read up to 7
    db_->RemoveCursor("relay-b");
    db_->RemoveCursor("relay-a");
    EXPECT_EQ(db_->Trim(std::chrono::milliseconds(0)), 0);  // 8 is the latest: kept
    EXPECT_EQ(feed_->ReadAfter(0).size(), 1u);
}

}  // namespace
}  // namespace syncline::storage
