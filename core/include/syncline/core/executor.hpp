#pragma once
/// \file
/// A fixed pool of threads for work that must not hold up a connection's strand: detached actions (streamed lists,
/// custom detached actions). One Executor is shared by every route of a Server.

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace syncline {

/// Runs posted tasks on a fixed number of threads, first posted first started. The threads start with the first
/// Post. Thread safety: every method may be called from any thread, except Shutdown (and so the destructor), which
/// must not be called from one of the executor's own threads.
class Executor {
public:
    /// `threads` worker threads; 0 means std::thread::hardware_concurrency(), at least 2.
    explicit Executor(unsigned threads = 0);
    /// Shutdown().
    ~Executor();
    Executor(const Executor&) = delete;
    Executor& operator=(const Executor&) = delete;

    /// Queues a task. Returns false (and drops the task) once Shutdown has begun. A task that throws is logged and
    /// the executor goes on.
    bool Post(std::function<void()> task);
    /// Stops accepting tasks, runs those already queued to completion, and joins the threads. Waits for running
    /// tasks however long they take (a task should return soon once the reason it runs for is gone, e.g. its
    /// connection closed). Idempotent. Throws std::logic_error when called from one of the executor's threads.
    void Shutdown();
    /// Tasks queued or running now.
    std::size_t busy() const;
    /// The number of worker threads.
    unsigned threads() const { return size_; }

private:
    void Work();

    unsigned size_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::function<void()>> queue_;  // guarded by mutex_
    std::size_t running_ = 0;                  // guarded by mutex_
    bool stopping_ = false;                    // guarded by mutex_
    std::vector<std::thread> workers_;         // started under mutex_; joined by Shutdown
};

}  // namespace syncline
