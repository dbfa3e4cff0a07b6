#pragma once
// Private to storage: the thread that checkpoints a Database's WAL, so that the writer's commits never do.

#include "connection.hpp"

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>

namespace syncline::storage {

// Copies the WAL back into the database file on a thread and a connection of its own. SQLite's default has the
// committing connection run a checkpoint once the WAL holds 1,000 pages: the commit that crosses it copies the pages
// and syncs the file, and with group commit every write in its batch, and every write queued behind it, waits for
// that sync. Installed as the writer's WAL hook (which replaces SQLite's automatic checkpoint on that connection),
// Note wakes the thread once the WAL holds `threshold_pages`; the thread runs a PASSIVE checkpoint, which takes no
// lock a reader or the writer waits for. What it cannot copy yet (frames a reader still needs) it copies next time.
// The WAL starts over only when a checkpoint has copied all of it; a writer that never pauses outruns the thread and
// the WAL would grow without bound, so once it holds four times the threshold the commit checkpoints it itself, as
// SQLite would (the backstop: under a sustained load of large writes only), after waiting for the thread's
// checkpoint in progress, since only one can run at a time. Other processes keep their own automatic
// checkpoints.
//
// Threads: Note is called on the writer's thread (from inside a commit); the rest is internal. The destructor stops
// and joins the thread; uninstall the hook first.
class Checkpointer {
public:
    Checkpointer(std::unique_ptr<Connection> connection, int threshold_pages);
    ~Checkpointer();
    Checkpointer(const Checkpointer&) = delete;
    Checkpointer& operator=(const Checkpointer&) = delete;

    // sqlite3_wal_hook's callback; `self` is the Checkpointer.
    static int Hook(void* self, sqlite3* db, const char* schema, int wal_pages);
    // Checkpoints run in a commit by the backstop (any thread).
    std::uint64_t inline_checkpoints() const;
    // Checkpoints run so far (any thread; for tests and statistics).
    std::uint64_t checkpoints() const;

private:
    void Note(int wal_pages);
    void Run();

    std::unique_ptr<Connection> connection_;  // used on thread_ only
    const int threshold_pages_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    bool due_ = false;              // guarded by mutex_
    bool running_ = false;          // guarded by mutex_: a checkpoint runs (the thread's or the backstop's)
    bool stopping_ = false;         // guarded by mutex_
    std::uint64_t checkpoints_ = 0;  // guarded by mutex_
    std::uint64_t inline_checkpoints_ = 0;  // guarded by mutex_
    std::thread thread_;
};

}  // namespace syncline::storage
