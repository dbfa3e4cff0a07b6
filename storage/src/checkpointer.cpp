#include "checkpointer.hpp"

#include <syncline/core/support/log.hpp>

#include <sqlite3.h>

#include <atomic>
#include <string>

namespace syncline::storage {

Checkpointer::Checkpointer(std::unique_ptr<Connection> connection, int threshold_pages)
    : connection_(std::move(connection)), threshold_pages_(threshold_pages), thread_([this] { Run(); }) {}

Checkpointer::~Checkpointer() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
}

int Checkpointer::Hook(void* self, sqlite3* db, const char* schema, int wal_pages) {
    auto* checkpointer = static_cast<Checkpointer*>(self);
    if (wal_pages >= 4 * checkpointer->threshold_pages_) {
        // The backstop (see the class comment).
        std::unique_lock<std::mutex> lock(checkpointer->mutex_);
        checkpointer->wake_.wait(lock, [checkpointer] { return !checkpointer->running_; });
        checkpointer->running_ = true;
        lock.unlock();
        const int rc = sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
        lock.lock();
        checkpointer->running_ = false;
        if (rc == SQLITE_OK) ++checkpointer->inline_checkpoints_;
        lock.unlock();
        checkpointer->wake_.notify_all();
        return SQLITE_OK;
    }
    checkpointer->Note(wal_pages);
    return SQLITE_OK;
}

std::uint64_t Checkpointer::inline_checkpoints() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return inline_checkpoints_;
}

std::uint64_t Checkpointer::checkpoints() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return checkpoints_;
}

void Checkpointer::Note(int wal_pages) {
    if (wal_pages < threshold_pages_) return;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (due_) return;
        due_ = true;
    }
    wake_.notify_all();
}

void Checkpointer::Run() {
    static std::atomic<std::uint64_t> failures{0};
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
        wake_.wait(lock, [this] { return (due_ && !running_) || stopping_; });
        if (stopping_) return;
        due_ = false;
        running_ = true;
        lock.unlock();
        auto use = connection_->Use();
        int log_pages = 0;
        int copied = 0;
        const int rc =
            sqlite3_wal_checkpoint_v2(connection_->handle(), nullptr, SQLITE_CHECKPOINT_PASSIVE, &log_pages, &copied);
        // SQLITE_BUSY: another connection (another process) is checkpointing; the next commit past the threshold
        // asks again.
        if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
            LogRarely(failures, LogLevel::kWarn,
                      std::string("database: a checkpoint of the WAL failed: ") + sqlite3_errmsg(connection_->handle()));
        }
        lock.lock();
        running_ = false;
        ++checkpoints_;
        wake_.notify_all();  // a backstop waiting for this one
    }
}

}  // namespace syncline::storage
