// The thread pool that runs detached actions (transport::ThreadPoolExecutor): every task runs, drain on Shutdown,
// fair lanes, delayed tasks holding no thread. Its use by consumers is in tests/core/actions_test.cpp.

#include <syncline/transport/thread_pool_executor.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace syncline::transport {
namespace {

constexpr auto kDeadline = std::chrono::seconds(10);

TEST(ThreadPoolExecutorTest, RunsEveryTaskAndDrainsOnShutdown) {
    ThreadPoolExecutor executor(3);
    EXPECT_EQ(executor.threads(), 3u);
    std::atomic<int> ran{0};
    for (int i = 0; i < 100; ++i) EXPECT_TRUE(executor.Post([&] { ++ran; }));
    executor.Post([] { throw std::runtime_error("a task that throws does not stop the executor"); });
    executor.Shutdown();
    EXPECT_EQ(ran.load(), 100);
    EXPECT_EQ(executor.busy(), 0u);
    EXPECT_FALSE(executor.Post([&] { ++ran; }));  // refused after Shutdown
    executor.Shutdown();                          // idempotent
    EXPECT_EQ(ran.load(), 100);
    EXPECT_GE(ThreadPoolExecutor().threads(), 2u);
}

TEST(ThreadPoolExecutorTest, ShutdownFromItsOwnThreadThrows) {
    ThreadPoolExecutor executor(1);
    std::promise<bool> threw;
    executor.Post([&] {
        try {
            executor.Shutdown();
            threw.set_value(false);
        } catch (const std::logic_error&) {
            threw.set_value(true);
        }
    });
    EXPECT_TRUE(threw.get_future().get());
}

// A gate the executor's tasks wait at, so a test controls when they finish.
struct Gate {
    std::mutex mutex;
    std::condition_variable cv;
    bool open = false;
    std::vector<std::string> ran;
    void Open() {
        {
            std::lock_guard<std::mutex> lock(mutex);
            open = true;
        }
        cv.notify_all();
    }
    void Record(const std::string& name) {
        std::lock_guard<std::mutex> lock(mutex);
        ran.push_back(name);
        cv.notify_all();
    }
    bool WaitOpen() {
        std::unique_lock<std::mutex> lock(mutex);
        return cv.wait_for(lock, kDeadline, [&] { return open; });
    }
    bool WaitRan(std::size_t count) {
        std::unique_lock<std::mutex> lock(mutex);
        return cv.wait_for(lock, kDeadline, [&] { return ran.size() >= count; });
    }
};

TEST(ThreadPoolExecutorTest, LanesTakeTurnsAndALaneWithNothingRunningGoesFirst) {
    ThreadPoolExecutor executor(1);
    Gate gate;
    // Lane 1 queues five tasks while its first one holds the only thread; then lanes 2 and 3 post one each.
    executor.Post(1, [&] {
        gate.Record("a1");
        gate.WaitOpen();
    });
    ASSERT_TRUE(gate.WaitRan(1));
    for (const char* name : {"a2", "a3", "a4", "a5"}) executor.Post(1, [&gate, name] { gate.Record(name); });
    executor.Post(2, [&] { gate.Record("b1"); });
    executor.Post(2, [&] { gate.Record("b2"); });
    executor.Post(3, [&] { gate.Record("c1"); });
    gate.Open();
    ASSERT_TRUE(gate.WaitRan(8));
    executor.Shutdown();
    // The lanes that had nothing running go before lane 1's backlog, then the lanes alternate; within a lane, in
    // order. (First come, first served would run a2..a5 before b1.)
    EXPECT_EQ(gate.ran, (std::vector<std::string>{"a1", "b1", "c1", "a2", "b2", "a3", "a4", "a5"}));
}

TEST(ThreadPoolExecutorTest, PostAfterRunsLaterHoldingNoThreadAndShutdownRunsItAtOnce) {
    ThreadPoolExecutor executor(1);
    Gate gate;
    auto posted = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point ran_at;
    ASSERT_TRUE(executor.PostAfter(7, std::chrono::milliseconds(50), [&] {
        ran_at = std::chrono::steady_clock::now();
        gate.Record("delayed");
    }));
    EXPECT_EQ(executor.busy(), 1u);  // a delayed task counts as work in progress
    // Meanwhile the only thread is free for other work.
    executor.Post(8, [&] { gate.Record("now"); });
    ASSERT_TRUE(gate.WaitRan(2));
    EXPECT_EQ(gate.ran, (std::vector<std::string>{"now", "delayed"}));
    EXPECT_GE(ran_at - posted, std::chrono::milliseconds(50));

    // Shutdown does not wait for a delay: the task runs at once (its reason to wait is gone), and later ones are
    // refused.
    std::atomic<bool> ran{false};
    ASSERT_TRUE(executor.PostAfter(7, std::chrono::hours(1), [&] { ran = true; }));
    executor.Shutdown();
    EXPECT_TRUE(ran.load());
    EXPECT_EQ(executor.busy(), 0u);
    EXPECT_FALSE(executor.PostAfter(7, std::chrono::milliseconds(0), [] {}));
}

}  // namespace
}  // namespace syncline::transport
