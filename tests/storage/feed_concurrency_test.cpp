#include <syncline/storage/change_feed.hpp>
#include <syncline/storage/database.hpp>

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <thread>

#include "test_db.hpp"

namespace syncline::storage {
namespace {

using Clock = std::chrono::steady_clock;

TEST(FeedConcurrencyTest, TwoThreadsAndAnotherProcessEveryChangeOnceInOrder) {
    testing::TempDir dir;
    std::string path = dir.File("blog.db");
    auto db = testing::OpenBlog(path);
    constexpr int kPerWriter = 300;
    constexpr int kTotal = 3 * kPerWriter;

    std::vector<ChangeEvent> seen;
    std::thread reader([&] {
        ChangeFeed feed(*db);
        std::int64_t cursor = 0;
        auto deadline = Clock::now() + std::chrono::seconds(120);
        while (seen.size() < static_cast<std::size_t>(kTotal) && Clock::now() < deadline) {
            if (!feed.WaitForChanges(cursor, std::chrono::milliseconds(200))) continue;
            for (auto& e : feed.ReadAfter(cursor, 64)) {
                cursor = e.seq;
                seen.push_back(std::move(e));
            }
        }
    });
    std::vector<std::thread> writers;
    for (const char* tag : {"thread-a", "thread-b"}) {
        writers.emplace_back([&, tag] {
            for (int i = 0; i < kPerWriter; ++i) db->Insert("posts", {{"title", std::string(tag) + "-" + std::to_string(i)}});
        });
    }
    int process_status = -1;
    writers.emplace_back([&] {
        process_status =
            testing::Run(testing::BinDir() + "/syncline_test_writer '" + path + "' " + std::to_string(kPerWriter) + " process");
    });
    for (auto& w : writers) w.join();
    reader.join();
    ASSERT_EQ(process_status, 0);

    ASSERT_EQ(seen.size(), static_cast<std::size_t>(kTotal));
    std::map<std::string, int> per_tag;
    std::set<std::string> titles;
    for (std::size_t i = 0; i < seen.size(); ++i) {
        EXPECT_EQ(seen[i].seq, static_cast<std::int64_t>(i + 1)) << "gap or reorder at " << i;
        ASSERT_TRUE(seen[i].row);
        std::string title = (*seen[i].row)[1].AsText();
        EXPECT_TRUE(titles.insert(title).second) << "duplicate " << title;
        ++per_tag[title.substr(0, title.rfind('-'))];
    }
    EXPECT_EQ(per_tag["thread-a"], kPerWriter);
    EXPECT_EQ(per_tag["thread-b"], kPerWriter);
    EXPECT_EQ(per_tag["process"], kPerWriter);
}

TEST(FeedConcurrencyTest, LocalCommitWakesTheWaiterWithoutPolling) {
    testing::TempDir dir;
    auto db = testing::OpenBlog(dir.File("blog.db"));
    FeedOptions options;
    options.poll_interval = std::chrono::hours(1);  // polling would never fire within the test
    ChangeFeed feed(*db, options);
    auto start = Clock::now();
    std::thread writer([&] { db->Insert("posts", {{"title", "wake"}}); });
    bool woke = feed.WaitForChanges(0, std::chrono::seconds(20));
    writer.join();
    EXPECT_TRUE(woke);
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(20)) << "woke by timeout, not by the commit";
}

TEST(FeedConcurrencyTest, InterruptEndsAWait) {
    testing::TempDir dir;
    auto db = testing::OpenBlog(dir.File("blog.db"));
    ChangeFeed feed(*db);
    auto start = Clock::now();
    std::thread stopper([&] { feed.Interrupt(); });
    bool woke = feed.WaitForChanges(0, std::chrono::seconds(30));
    stopper.join();
    EXPECT_FALSE(woke);
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(30));
}

}  // namespace
}  // namespace syncline::storage
