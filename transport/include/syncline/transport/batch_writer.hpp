#pragma once
/// \file
/// The writer of a Server's write requests on a store that runs batches (storage::Backend::RunBatch, SQLite's): core's
/// WriteBatcher port. docs/architecture.md, "The one writer", says where it sits.

#include <syncline/core/support/executor.hpp>
#include <syncline/storage/backend.hpp>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

namespace syncline::transport {

/// What a BatchWriter has done so far (a snapshot).
struct BatchWriterStats {
    std::uint64_t writes = 0;         ///< writes run (committed or failed)
    std::uint64_t batches = 0;        ///< transactions they ran in
    std::uint64_t largest_batch = 0;  ///< the most writes one transaction held
    std::size_t queued = 0;           ///< writes submitted whose `done` has not returned yet
};

/// One thread that takes every write submitted since its last batch (up to `max_batch`, in order) and runs them with
/// Backend::RunBatch: one transaction, each write in a savepoint of its own, each failing alone. Then it calls each
/// write's `done` in order, outside the transaction. While a batch runs, the writes submitted meanwhile queue for the
/// next: under load a batch holds about as many writes as there are sockets writing, and no thread sleeps per write.
///
/// Against group commit's waiting callers (storage/group_commit.hpp), a write here costs no thread of its own and no
/// wake-up beyond its batch's, and its reads run on the writer inside the batch: no reader snapshot, a warm cache.
/// The price: a write's whole request holds the database's writer while it runs, so a slow custom action or permission
/// hook delays every write behind it (`"batch_writes": false` serves writes on the write pool instead).
///
/// Threads: Submit from any thread but the batcher's own (from a `run` or `done` it would wait for itself); the
/// thread starts with the first Submit. Shutdown stops accepting, runs what was accepted, and joins; call it before
/// what the writes' `done` calls into goes away.
class BatchWriter final : public WriteBatcher {
public:
    /// `backend` must outlive this object and run batches (RunsBatches()).
    explicit BatchWriter(storage::Backend& backend, std::size_t max_batch = 256);
    /// Shutdown().
    ~BatchWriter() override;
    BatchWriter(const BatchWriter&) = delete;
    BatchWriter& operator=(const BatchWriter&) = delete;

    bool Submit(std::function<void()> run, std::function<void(std::exception_ptr)> done) override;
    /// Stops accepting writes, runs those accepted, and joins the thread. Idempotent. Throws std::logic_error from the
    /// writer's own thread.
    void Shutdown();
    BatchWriterStats stats() const;

private:
    struct Write {
        std::function<void()> run;
        std::function<void(std::exception_ptr)> done;
    };
    void Loop();

    storage::Backend& backend_;
    const std::size_t max_batch_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<Write> queue_;  // guarded by mutex_
    bool started_ = false;     // guarded by mutex_
    bool stopping_ = false;    // guarded by mutex_
    BatchWriterStats stats_;   // guarded by mutex_
    std::thread thread_;
};

}  // namespace syncline::transport
