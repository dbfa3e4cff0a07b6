#pragma once
/// \file
/// The port through which consumers run work that must not hold up a connection's strand: detached actions (streamed
/// lists, custom detached actions). Core declares it and runs no thread: the implementation is the transport's
/// thread pool (transport::ThreadPoolExecutor, syncline/transport/thread_pool_executor.hpp), which a Server creates
/// and shares among its routes.

#include <chrono>
#include <cstdint>
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

}  // namespace syncline
