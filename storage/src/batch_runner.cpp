// The batch runner shared by group commit and Backend::RunBatch, for every engine (group_commit.hpp).

#include <syncline/storage/backend.hpp>
#include <syncline/storage/group_commit.hpp>

#include <stdexcept>

namespace syncline::storage {

namespace {
// The store whose batch this thread is running (RunBatchedWrites), if any.
thread_local const void* t_batch_owner = nullptr;
}  // namespace

bool InBatchOf(const void* owner) { return owner != nullptr && t_batch_owner == owner; }

void RunInOneTransaction(const std::vector<GroupCommit::Job*>& jobs, const TransactionOps& ops) noexcept {
    std::vector<GroupCommit::Job*> pending = jobs;
    // Each round runs the writes still pending in one transaction. A write whose failure took the whole transaction
    // with it (SQLite rolls back by itself on some errors: a full disk, an interrupt) fails alone; the others run again
    // in the next round. Every round drops at least one write, so the loop ends.
    while (!pending.empty()) {
        const bool alone = pending.size() == 1;  // no savepoint: the transaction is the write's
        try {
            ops.begin();
        } catch (...) {
            for (GroupCommit::Job* job : pending) job->error = std::current_exception();
            return;
        }
        bool lost = false;  // the transaction is gone: run the others again
        for (GroupCommit::Job* job : pending) {
            try {
                if (!alone) ops.exec("SAVEPOINT syncline_write");
                job->wrote = (*job->write)();
                if (!alone) ops.exec("RELEASE SAVEPOINT syncline_write");
            } catch (...) {
                job->error = std::current_exception();
                job->wrote = false;
                if (alone) {
                    ops.rollback();
                    return;
                }
                try {
                    if (!ops.in_transaction()) throw std::runtime_error("the transaction ended");
                    ops.exec("ROLLBACK TO SAVEPOINT syncline_write");
                    ops.exec("RELEASE SAVEPOINT syncline_write");
                } catch (...) {
                    lost = true;
                    break;
                }
            }
        }
        if (lost) {
            ops.rollback();
            std::vector<GroupCommit::Job*> again;
            for (GroupCommit::Job* job : pending) {
                job->wrote = false;
                if (!job->error) again.push_back(job);
            }
            pending.swap(again);
            continue;
        }
        try {
            ops.commit();
        } catch (...) {
            const std::exception_ptr error = std::current_exception();
            ops.rollback();
            for (GroupCommit::Job* job : pending) {
                if (!job->error) job->error = error;
                job->wrote = false;
            }
        }
        return;
    }
}

bool RunBatchedWrites(std::vector<BatchedWrite>& writes, const TransactionOps& ops, const void* owner) {
    // Group commit's jobs, with whole writes as their work.
    std::vector<std::function<bool()>> runs;
    runs.reserve(writes.size());
    for (BatchedWrite& write : writes) {
        runs.emplace_back([&write] {
            write.run();
            return true;
        });
    }
    std::vector<GroupCommit::Job> jobs(writes.size());
    std::vector<GroupCommit::Job*> batch;
    batch.reserve(jobs.size());
    for (std::size_t i = 0; i < jobs.size(); ++i) {
        jobs[i].write = &runs[i];
        batch.push_back(&jobs[i]);
    }
    struct Scope {
        explicit Scope(const void* store) { t_batch_owner = store; }
        ~Scope() { t_batch_owner = nullptr; }
    };
    {
        Scope scope(owner);
        RunInOneTransaction(batch, ops);
    }
    bool committed = false;
    for (std::size_t i = 0; i < writes.size(); ++i) {
        writes[i].error = jobs[i].error;
        committed = committed || !jobs[i].error;
    }
    return committed;
}

}  // namespace syncline::storage
