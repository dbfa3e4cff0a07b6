// Group commit (storage/include/syncline/storage/group_commit.hpp, issue 13): single writes of several threads that
// queue while the writer is busy share one transaction, each in its own savepoint. A write that fails does so alone,
// leaving no row and no captured change, while the others commit; each write's caller gets its own result or error.
#include <syncline/storage/database.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "test_db.hpp"

namespace syncline::testing {
namespace {

class GroupCommitTest : public ::testing::Test {
protected:
    void SetUp() override { db_ = OpenBlog(dir_.File("blog.db")); }

    // Starts `writes` threads, each running write(i), while this thread holds the writer in an open transaction;
    // releases the writer once all of them are queued, so they meet in the queue, then joins them.
    template <class Write>
    void RunQueuedTogether(int writes, Write write) {
        std::unique_ptr<storage::Transaction> hold = db_->Begin();
        std::vector<std::thread> threads;
        for (int i = 0; i < writes; ++i) threads.emplace_back([&, i] { write(i); });
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (db_->group_commit().queued < static_cast<std::size_t>(writes) &&
               std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));  // waiting for the threads to queue
        }
        EXPECT_EQ(db_->group_commit().queued, static_cast<std::size_t>(writes));
        hold.reset();  // rolls back and lets the writer go
        for (auto& t : threads) t.join();
    }

    std::vector<ChangeEvent> Changes() {
        auto feed = db_->OpenChangeSource();
        return feed->ReadAfter(0, 1000);
    }

    TempDir dir_;
    std::unique_ptr<storage::Database> db_;
};

TEST_F(GroupCommitTest, WritesThatQueueTogetherCommitInOneTransaction) {
    constexpr int kWrites = 8;
    std::vector<Row> rows(kWrites);
    RunQueuedTogether(kWrites, [&](int i) { rows[i] = db_->Insert("posts", {{"title", "t" + std::to_string(i)}}); });
    const storage::GroupCommitStats stats = db_->group_commit();
    EXPECT_EQ(stats.writes, static_cast<std::uint64_t>(kWrites));
    EXPECT_EQ(stats.batches, 1u);
    EXPECT_EQ(stats.largest_batch, static_cast<std::uint64_t>(kWrites));
    // Each caller got its own row, and each row and its change are there once.
    std::set<std::int64_t> ids;
    for (int i = 0; i < kWrites; ++i) {
        EXPECT_EQ(rows[i][1], Value("t" + std::to_string(i)));
        ids.insert(rows[i][0].AsInteger());
        EXPECT_EQ((*db_->Get("posts", "id", rows[i][0]))[1], rows[i][1]);
    }
    EXPECT_EQ(ids.size(), static_cast<std::size_t>(kWrites));
    const std::vector<ChangeEvent> changes = Changes();
    ASSERT_EQ(changes.size(), static_cast<std::size_t>(kWrites));
    for (const ChangeEvent& change : changes) EXPECT_EQ(change.op, ChangeOp::kInsert);
}

TEST_F(GroupCommitTest, AWriteThatFailsInABatchFailsAloneAndLeavesNoChange) {
    const Row first = db_->Insert("tags", {{"slug", "a"}, {"label", "taken"}});
    constexpr int kWrites = 6;
    std::vector<std::optional<Row>> rows(kWrites);
    std::vector<std::optional<StoreErrc>> errors(kWrites);
    RunQueuedTogether(kWrites, [&](int i) {
        try {
            // Write 3 takes a label that is already taken; the others are fine, before and after it in the batch.
            const std::string label = i == 3 ? "taken" : "label " + std::to_string(i);
            rows[i] = db_->Insert("tags", {{"slug", "s" + std::to_string(i)}, {"label", label}});
        } catch (const StoreError& e) {
            errors[i] = e.kind();
        }
    });
    EXPECT_EQ(db_->group_commit().largest_batch, static_cast<std::uint64_t>(kWrites));
    for (int i = 0; i < kWrites; ++i) {
        if (i == 3) {
            EXPECT_EQ(errors[i], StoreErrc::kConstraint);
            EXPECT_FALSE(rows[i]);
            EXPECT_FALSE(db_->Get("tags", "slug", Value("s3")));
        } else {
            EXPECT_FALSE(errors[i]) << i;
            ASSERT_TRUE(rows[i]) << i;
            EXPECT_TRUE(db_->Get("tags", "slug", Value("s" + std::to_string(i)))) << i;
        }
    }
    // The failed write's captured change went with its savepoint: the first tag's insert and the five others.
    const std::vector<ChangeEvent> changes = Changes();
    ASSERT_EQ(changes.size(), 1u + kWrites - 1);
    for (const ChangeEvent& change : changes) EXPECT_NE(change.pk, Value("s3"));
    EXPECT_EQ(first[0], Value("a"));
}

TEST_F(GroupCommitTest, UpdatesAndDeletesOfMissingRowsAnswerAsAloneAndCommitTheOthers) {
    const Row row = db_->Insert("posts", {{"title", "there"}});
    std::vector<std::optional<Row>> patched(4);
    std::vector<char> deleted(4, 1);  // not vector<bool>: its elements share bytes across threads
    RunQueuedTogether(4, [&](int i) {
        if (i % 2 == 0) {
            patched[i] = db_->Patch("posts", i == 0 ? row[0] : Value(999), {{"likes", i}});
        } else {
            deleted[i] = db_->Delete("posts", Value(1000 + i));
        }
    });
    EXPECT_TRUE(patched[0]);
    EXPECT_FALSE(patched[2]);  // no such row: nullopt, as when alone
    EXPECT_FALSE(deleted[1]);
    EXPECT_FALSE(deleted[3]);
    EXPECT_EQ((*db_->Get("posts", "id", row[0]))[4], Value(0));
    EXPECT_EQ(Changes().size(), 2u);  // the insert and the one patch
}

TEST_F(GroupCommitTest, AWriteOnAThreadHoldingATransactionIsRefusedBeforeItQueues) {
    std::unique_ptr<storage::Transaction> tx = db_->Begin();
    EXPECT_THROW(db_->Insert("posts", {{"title", "nested"}}), std::logic_error);
    EXPECT_EQ(db_->group_commit().queued, 0u);
    tx.reset();
    EXPECT_NO_THROW(db_->Insert("posts", {{"title", "after"}}));
}

// RunBatch (Backend::RunBatch, what the transport's batch writer calls): whole writes, with their reads, in one
// transaction on the calling thread.
TEST_F(GroupCommitTest, ABatchsWritesReadWhatCameBeforeThemAndOneThatThrowsLeavesNoRowAndNoChange) {
    const Row post = db_->Insert("posts", {{"title", "before"}});
    const std::uint64_t commits = db_->local_commits();
    const std::size_t changes = Changes().size();
    std::optional<Row> seen_by_second;
    std::optional<Row> seen_elsewhere;
    std::vector<storage::BatchedWrite> batch(4);
    batch[0].run = [&] { db_->Patch("posts", post[0], {{"title", "first"}}); };
    batch[1].run = [&] {
        // Reads inside the batch see the write before it; another thread sees only what is committed.
        seen_by_second = db_->Get("posts", "id", post[0]);
        std::thread([&] { seen_elsewhere = db_->Get("posts", "id", post[0]); }).join();
        db_->Insert("posts", {{"title", "second"}});
    };
    batch[2].run = [&] {
        db_->Insert("posts", {{"title", "thrown away"}});
        db_->Patch("posts", post[0], {{"title", "thrown away"}});
        throw std::runtime_error("the third write fails after writing");
    };
    batch[3].run = [&] { db_->Insert("posts", {{"title", "fourth"}}); };
    db_->RunBatch(batch);
    ASSERT_TRUE(seen_by_second && seen_elsewhere);
    EXPECT_EQ((*seen_by_second)[1], Value("first"));
    EXPECT_EQ((*seen_elsewhere)[1], Value("before"));
    EXPECT_FALSE(batch[0].error || batch[1].error || batch[3].error);
    ASSERT_TRUE(batch[2].error);
    EXPECT_THROW(std::rethrow_exception(batch[2].error), std::runtime_error);
    // The first patch stands; the third write's rows and changes are gone; one commit for all of it.
    EXPECT_EQ((*db_->Get("posts", "id", post[0]))[1], Value("first"));
    EXPECT_EQ(db_->List("posts", Query{}).size(), 3u);
    Query thrown_away;
    thrown_away.filters.push_back(Filter{"title", FilterOp::kExact, Value("thrown away"), {}});
    EXPECT_TRUE(db_->List("posts", thrown_away).empty());
    const std::vector<ChangeEvent> after = Changes();
    EXPECT_EQ(after.size(), changes + 3) << "the thrown-away write left a change that would be pushed";
    EXPECT_EQ(db_->local_commits(), commits + 1);
    const storage::GroupCommitStats stats = db_->group_commit();
    EXPECT_EQ(stats.largest_batch, 4u);
    EXPECT_EQ(stats.queued, 0u);
}

TEST_F(GroupCommitTest, InsideABatchATransactionOrAnotherBatchIsRefusedAndAnOpenTransactionRefusesTheBatch) {
    std::vector<storage::BatchedWrite> batch(1);
    std::vector<storage::BatchedWrite> inner(1);
    inner[0].run = [] {};
    batch[0].run = [&] {
        EXPECT_THROW(db_->Begin(), std::logic_error);
        EXPECT_THROW(db_->RunBatch(inner), std::logic_error);
        db_->Insert("posts", {{"title", "kept"}});
    };
    db_->RunBatch(batch);
    EXPECT_FALSE(batch[0].error);
    EXPECT_EQ(db_->List("posts", Query{}).size(), 1u);
    std::unique_ptr<storage::Transaction> tx = db_->Begin();
    EXPECT_THROW(db_->RunBatch(inner), std::logic_error);
    tx.reset();
    // A batch of nothing is nothing; after the batch this thread's writes go through group commit again.
    std::vector<storage::BatchedWrite> none;
    EXPECT_NO_THROW(db_->RunBatch(none));
    EXPECT_NO_THROW(db_->Insert("posts", {{"title", "after"}}));
    EXPECT_EQ(db_->List("posts", Query{}).size(), 2u);
}

}  // namespace
}  // namespace syncline::testing

namespace syncline::testing {
namespace {

// The WAL is checkpointed by the Database's checkpoint thread (storage/src/checkpointer.hpp), not by the commit that
// crosses SQLite's 1,000-page threshold; and a writer that never pauses still cannot grow the WAL without bound: past
// four times the threshold the commit checkpoints it itself, and the WAL starts over.
TEST(CheckpointTest, TheWalIsCheckpointedByTheDatabasesOwnThreadAndStaysBounded) {
    TempDir dir;
    std::unique_ptr<storage::Database> db = OpenBlog(dir.File("blog.db"));
    EXPECT_EQ(db->checkpoints(), 0u);
    const std::string body(16 * 1024, 'b');  // four pages a row
    for (int i = 0; i < 300; ++i) db->Insert("posts", {{"title", "t"}, {"body", body}});  // ~1,200 pages
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (db->checkpoints() == 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));  // polls a counter with a deadline
    }
    EXPECT_GE(db->checkpoints(), 1u);
    // 3,000 rows in a tight loop are about 12,000 pages: the WAL file (whose size is the most it ever held) stays
    // near the backstop's 4,000.
    for (int i = 0; i < 3000; ++i) db->Insert("posts", {{"title", "t"}, {"body", body}});
    const auto wal = std::filesystem::file_size(dir.File("blog.db") + "-wal");
    EXPECT_LT(wal, 5000u * 4096) << "the WAL grew with every write: nothing checkpointed it";
}

}  // namespace
}  // namespace syncline::testing
