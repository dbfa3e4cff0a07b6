#pragma once
/// \file
/// Group commit: single writes (Insert, Update, Patch, Delete) made by several threads at once share one transaction,
/// so the cost of a commit (its journal pages, its wake-up of the relay) is paid once for all of them.
///
/// How: a write queues and waits. The first in the queue is the *leader*: it holds the writer, takes every write
/// queued by then (up to max_batch, itself first, in queue order), runs them in one transaction, each in a savepoint
/// of its own, commits, and wakes their threads; the next in the queue then leads the next batch. No thread of its own:
/// the waiting callers do the work. A write that arrives alone is one transaction, as before, with no savepoint.
///
/// Outcome of each write, as if it had been alone: its own result, or its own error (its savepoint rolled back: what
/// it wrote and what its capture triggers recorded are gone, so it sends no push) while the others commit; it returns
/// only once the commit that holds it is durable (as the backend's `synchronous` setting makes it), so a reply built
/// from its result is sent after that commit. If the commit itself fails, every write of the batch gets that error.
/// Order: writes commit in queue order; each sees those before it in its batch.
///
/// Threads: Run may be called from any thread, concurrently; it blocks until the write's batch has committed or
/// failed. A thread must not queue a write while it holds the writer (an open Transaction): the backend refuses that
/// before queuing (std::logic_error). stats() is a snapshot, from any thread.

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace syncline::storage {

/// What group commit has done so far (a snapshot).
struct GroupCommitStats {
    std::uint64_t writes = 0;         ///< writes run (committed or failed)
    std::uint64_t batches = 0;        ///< transactions they ran in
    std::uint64_t largest_batch = 0;  ///< the most writes one transaction held
    std::size_t queued = 0;           ///< writes queued or running now
};

class GroupCommit {
public:
    /// One queued write, as the leader's batch runner sees it.
    struct Job {
        const std::function<bool()>* write = nullptr;  ///< runs the write; returns whether it changed a row
        bool wrote = false;                            ///< set by the runner: the write changed a row and committed
        std::exception_ptr error;                      ///< set by the runner: why it failed
        bool done = false;                             ///< guarded by the queue's mutex
        std::condition_variable wake;                  ///< its thread waits here: for its outcome, or to lead
    };

    explicit GroupCommit(std::size_t max_batch = 256) : max_batch_(std::max<std::size_t>(max_batch, 1)) {}

    /// Queues `write` and returns once it has committed (what it returned) or failed (its error is rethrown).
    /// `lead(take)` is called when this thread leads a batch: it holds the writer, calls `take()` once for the batch
    /// (a std::vector<Job*>, this write first), runs it, recording each job's `wrote` or `error`, and releases the
    /// writer. If `lead` throws, the jobs it took that have no outcome get its exception (all of them when it threw
    /// before taking, only this write).
    template <class Lead>
    bool Run(const std::function<bool()>& write, Lead&& lead) {
        Job job;
        job.write = &write;
        std::unique_lock<std::mutex> lock(mutex_);
        queue_.push_back(&job);
        job.wake.wait(lock, [&] { return job.done || queue_.front() == &job; });
        if (!job.done) LeadLocked(lock, lead);
        lock.unlock();
        if (job.error) std::rethrow_exception(job.error);
        return job.wrote;
    }

    GroupCommitStats stats() const {
        std::lock_guard<std::mutex> lock(mutex_);
        GroupCommitStats stats = stats_;
        stats.queued = queue_.size();
        return stats;
    }

private:
    template <class Lead>
    void LeadLocked(std::unique_lock<std::mutex>& lock, Lead& lead) {
        lock.unlock();
        std::size_t taken = 0;
        auto take = [&] {
            std::lock_guard<std::mutex> guard(mutex_);
            taken = std::min(queue_.size(), max_batch_);
            return std::vector<Job*>(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(taken));
        };
        try {
            lead(take);
            if (taken == 0) throw std::logic_error("GroupCommit: the leader ran no batch");
        } catch (...) {
            std::lock_guard<std::mutex> guard(mutex_);
            const std::size_t failed = std::max<std::size_t>(taken, 1);
            for (std::size_t i = 0; i < failed; ++i) {
                if (!queue_[i]->error) {
                    queue_[i]->error = std::current_exception();
                    queue_[i]->wrote = false;
                }
            }
            taken = failed;
        }
        lock.lock();
        // Wakes only the batch's writers and the next leader, not every queued writer: with a pool of threads that
        // write, a wake-up of all of them per batch costs more than the batch saves.
        for (std::size_t i = 0; i < taken; ++i) {
            Job* done = queue_.front();
            queue_.pop_front();
            done->done = true;
            // Under the lock: its thread cannot return, and drop the job, before this batch is done with it.
            done->wake.notify_one();
        }
        if (!queue_.empty()) queue_.front()->wake.notify_one();
        stats_.writes += taken;
        stats_.batches += 1;
        stats_.largest_batch = std::max<std::uint64_t>(stats_.largest_batch, taken);
    }

    const std::size_t max_batch_;
    mutable std::mutex mutex_;
    std::deque<Job*> queue_;  // guarded by mutex_; the front leads or is being led
    GroupCommitStats stats_;  // guarded by mutex_
};

/// How a batch runner drives the transaction of one connection (RunInOneTransaction), whichever engine.
struct TransactionOps {
    std::function<void()> begin;            ///< opens the transaction (it holds the engine's write lock if any)
    std::function<void()> commit;           ///< commits it
    std::function<void()> rollback;         ///< rolls it back; must not throw
    std::function<void(const char*)> exec;  ///< runs one savepoint statement
    std::function<bool()> in_transaction;   ///< whether the connection is still inside the transaction
};

/// The batch runner of group commit and of Backend::RunBatch: runs `jobs` in order in one transaction through `ops`,
/// each in a savepoint when there are several, and records each one's outcome (`wrote`, `error`). A job that throws
/// fails alone (its savepoint rolled back); a job whose failure took the whole transaction with it (SQLite rolls back
/// by itself on a full disk or an interrupt) fails alone and the others run again in a new transaction; a failed
/// commit fails every job still pending. A job that arrives alone runs with no savepoint. Never throws.
void RunInOneTransaction(const std::vector<GroupCommit::Job*>& jobs, const TransactionOps& ops) noexcept;

struct BatchedWrite;
/// Backend::RunBatch's body for any engine: runs `writes` through RunInOneTransaction and sets each one's `error`.
/// While it runs, InBatchOf(`owner`) is true on the calling thread (the store then sends that thread's reads and writes
/// to the batch's transaction). Returns whether any write is in the committed transaction.
bool RunBatchedWrites(std::vector<BatchedWrite>& writes, const TransactionOps& ops, const void* owner);
/// Whether the calling thread is inside RunBatchedWrites for the store `owner`.
bool InBatchOf(const void* owner);

}  // namespace syncline::storage
