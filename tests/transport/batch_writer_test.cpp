// The batch writer (transport::BatchWriter) over a real SQLite file, at its most numerous: more writes queued at once
// than one batch holds (max_batch), while the test holds the database's writer. Every write runs and is answered
// once, in submission order, in as few transactions as max_batch allows; a write that throws fails alone; Shutdown
// runs what was accepted and refuses the rest. Its use by the dispatcher is in tests/core/actions_test.cpp and, over
// sockets, tests/integration/write_lane_test.cpp.

#include <syncline/storage/database.hpp>
#include <syncline/transport/batch_writer.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../storage/test_db.hpp"

namespace syncline::transport {
namespace {

TEST(BatchWriterTest, MoreWritesThanOneBatchHoldsAllRunInOrderInAsFewTransactionsAsTheBoundAllows) {
    testing::TempDir dir;
    std::unique_ptr<storage::Database> db = testing::OpenBlog(dir.File("blog.db"));
    constexpr std::size_t kMaxBatch = 8;
    constexpr int kWrites = 50;  // more than six batches' worth
    constexpr int kBad = 17;     // throws after writing: only it is rolled back
    BatchWriter writer(*db, kMaxBatch);
    std::mutex mutex;
    std::vector<int> answered;
    std::vector<bool> failed(kWrites, false);
    {
        // Holds the writer: the first batch waits for it, the others queue behind.
        std::unique_ptr<storage::Transaction> held = db->Begin();
        for (int i = 0; i < kWrites; ++i) {
            ASSERT_TRUE(writer.Submit(
                [&db, i] {
                    db->Insert("posts", {{"title", "w" + std::to_string(i)}});
                    if (i == kBad) throw std::runtime_error("fails after writing");
                },
                [&, i](std::exception_ptr error) {
                    std::lock_guard<std::mutex> lock(mutex);
                    answered.push_back(i);
                    failed[static_cast<std::size_t>(i)] = static_cast<bool>(error);
                }));
        }
        EXPECT_EQ(writer.stats().queued, static_cast<std::size_t>(kWrites));
    }
    writer.Shutdown();  // runs every accepted write, then joins
    EXPECT_FALSE(writer.Submit([] {}, [](std::exception_ptr) {})) << "accepted a write after Shutdown";
    std::vector<int> in_order;
    for (int i = 0; i < kWrites; ++i) in_order.push_back(i);
    EXPECT_EQ(answered, in_order);
    for (int i = 0; i < kWrites; ++i) EXPECT_EQ(failed[static_cast<std::size_t>(i)], i == kBad) << "write " << i;
    EXPECT_EQ(db->Count("posts", {}), kWrites - 1);
    EXPECT_FALSE(db->Get("posts", "title", Value("w" + std::to_string(kBad))));
    const BatchWriterStats stats = writer.stats();
    EXPECT_EQ(stats.writes, static_cast<std::uint64_t>(kWrites));
    EXPECT_EQ(stats.queued, 0u);
    EXPECT_EQ(stats.largest_batch, kMaxBatch) << "a batch went past max_batch, or none was full";
    // The first batch may have started with fewer (it took what was queued when it woke); then full batches.
    EXPECT_LE(stats.batches, static_cast<std::uint64_t>(1 + (kWrites + kMaxBatch - 1) / kMaxBatch));
}

}  // namespace
}  // namespace syncline::transport
