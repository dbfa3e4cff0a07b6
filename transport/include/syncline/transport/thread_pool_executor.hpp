#pragma once
/// \file
/// A fixed pool of threads for work that must not hold up a connection's strand: detached actions (streamed lists,
/// custom detached actions). The implementation of core's Executor port; one is created by a Server and shared by
/// every route.

#include <syncline/core/support/executor.hpp>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace syncline::transport {

/// Runs posted tasks on a fixed number of threads. Tasks are posted on lanes (a connection's id: one lane per
/// connection), and lanes are served fairly: a free thread takes the oldest task of the lane with the fewest tasks
/// running, lanes with as many taking turns. So a lane's backlog never holds back another lane's task longer than one
/// running task takes, and while others wait no lane gets a second thread before each waiting lane has one. Within a
/// lane tasks start in the order posted. A task that waits for something should not hold its thread: it returns and
/// posts its continuation (PostAfter for "try again shortly").
///
/// The threads start with the first Post. Thread safety: every method may be called from any thread, except Shutdown
/// (and so the destructor), which must not be called from one of the executor's own threads.
class ThreadPoolExecutor final : public Executor {
public:
    /// `threads` worker threads; 0 means std::thread::hardware_concurrency(), at least 2.
    explicit ThreadPoolExecutor(unsigned threads = 0);
    /// Shutdown().
    ~ThreadPoolExecutor() override;
    ThreadPoolExecutor(const ThreadPoolExecutor&) = delete;
    ThreadPoolExecutor& operator=(const ThreadPoolExecutor&) = delete;

    /// Queues a task on lane 0. Returns false (and drops the task) once Shutdown has begun. A task that throws is
    /// logged and the executor goes on.
    bool Post(std::function<void()> task);
    /// Queues a task on `lane` (see the class comment). Returns false (and drops the task) once Shutdown has begun.
    bool Post(std::uint64_t lane, std::function<void()> task) override;
    /// Queues a task on `lane` once `delay` has passed, holding no thread meanwhile. Returns false (and drops the task)
    /// once Shutdown has begun; Shutdown runs the delayed tasks already accepted at once, without their delay.
    bool PostAfter(std::uint64_t lane, std::chrono::milliseconds delay, std::function<void()> task) override;
    /// Stops accepting tasks, runs those already queued or delayed to completion, and joins the threads. Waits for
    /// running tasks however long they take (a task should return soon once the reason it runs for is gone, e.g. its
    /// connection closed). Idempotent. Throws std::logic_error when called from one of the executor's threads.
    void Shutdown();
    /// Tasks queued, delayed or running now.
    std::size_t busy() const;
    /// Tasks waiting (queued, or delayed until a time) and running now, read together.
    struct Load {
        std::size_t waiting = 0;
        std::size_t running = 0;
    };
    Load load() const;
    /// The number of worker threads.
    unsigned threads() const { return size_; }

private:
    using Clock = std::chrono::steady_clock;
    struct Lane {
        std::deque<std::function<void()>> queue;
        std::size_t running = 0;
        bool ready = false;  // listed in ready_, at `turn`
        std::list<std::uint64_t>::iterator turn;
    };
    void StartLocked();
    void EnqueueLocked(std::uint64_t lane, std::function<void()> task);
    // Moves the delayed tasks that are due (all of them once stopping) to their lanes.
    void PromoteDueLocked(Clock::time_point now);
    void Work();

    unsigned size_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    // All guarded by mutex_:
    std::unordered_map<std::uint64_t, Lane> lanes_;  // lanes with queued or running tasks
    std::list<std::uint64_t> ready_;                 // lanes with queued tasks, in turn order
    std::multimap<Clock::time_point, std::pair<std::uint64_t, std::function<void()>>> delayed_;
    std::size_t queued_ = 0;
    std::size_t running_ = 0;
    bool stopping_ = false;
    std::vector<std::thread> workers_;  // started under mutex_; joined by Shutdown
};

}  // namespace syncline::transport
