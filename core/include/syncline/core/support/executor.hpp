#pragma once
/// \file
/// The port through which consumers run work that must not hold up a connection's strand: detached actions (streamed
/// lists, custom detached actions). Core declares it and runs no thread: the implementation is the transport's
/// thread pool (transport::ThreadPoolExecutor, syncline/transport/thread_pool_executor.hpp), which a Server creates
/// and shares among its routes.

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>

namespace syncline {

/// Runs posted tasks later, on lanes: a lane is a connection's id (ConnectionContext::id), and within a lane tasks
/// start in the order posted. A task that waits for something should not hold its thread: it returns and posts its
/// continuation (PostAfter for "try again shortly"). An implementation may refuse tasks (when it shuts down); a
/// refused task is dropped, which releases what it holds.
///
/// Thread safety: Post and PostAfter may be called from any thread, including from a running task.
class Executor {
public:
    virtual ~Executor() = default;

    /// Queues a task on `lane`. Returns false (and drops the task) when the executor no longer accepts tasks.
    virtual bool Post(std::uint64_t lane, std::function<void()> task) = 0;
    /// Queues a task on `lane` once `delay` has passed, holding no thread meanwhile. Returns false (and drops the task)
    /// when the executor no longer accepts tasks.
    virtual bool PostAfter(std::uint64_t lane, std::chrono::milliseconds delay, std::function<void()> task) = 0;
};

/// The port through which a connection's writes run in batches: each write request runs whole (its reads, its writes)
/// inside a transaction shared with the other writes queued by then, on the batcher's one thread, and its reply goes
/// out once that transaction has committed. The implementation is the transport's BatchWriter over a store that runs
/// batches (syncline/transport/batch_writer.hpp); core runs no thread.
///
/// Thread safety: Submit may be called from any thread, but not from inside a `run` or `done` of the same batcher.
class WriteBatcher {
public:
    virtual ~WriteBatcher() = default;
    /// Queues a write. `run` is called later on the batcher's thread, in the shared transaction: every read and write
    /// it makes through the store goes there, and if it throws, what it wrote is rolled back while the rest of the
    /// batch commits. It may be called again when another write took the transaction down with it, so it must give
    /// the same answer from the same state. `done` is called on the same thread once the transaction is over: with
    /// null when what `run` wrote committed, else with why it did not. Returns false (dropping both uncalled) when the
    /// batcher no longer accepts writes.
    virtual bool Submit(std::function<void()> run, std::function<void(std::exception_ptr)> done) = 0;
};

}  // namespace syncline
