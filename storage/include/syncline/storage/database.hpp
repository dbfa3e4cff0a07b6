#pragma once
/// \file
/// The SQLite model store: schemas and migrations, queries, writes and the change capture that makes every
/// committed change (from this process, another process, or a `sqlite3` shell) part of the change feed.
///
/// Threads. A Database is shared by every thread of a process:
/// - reads (Get, List, Count, RowVersion) may be called from any thread; each thread gets its own read connection
///   (WAL mode: readers never block the writer nor each other);
/// - writes (Insert, Update, Patch, Delete, Begin) may be called from any thread; they are serialized on the one
///   writer connection. A Transaction holds the writer until it ends, so a thread holding a Transaction must write
///   through it: a second write from the same thread throws std::logic_error instead of deadlocking;
/// - connections are never shared between threads; debug builds assert this on every use.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <syncline/core/model/query.hpp>
#include <syncline/core/model/schema.hpp>
#include <syncline/core/model/store.hpp>
#include <syncline/core/model/value.hpp>
#include <syncline/storage/backend.hpp>
#include <syncline/storage/group_commit.hpp>

namespace syncline::storage {

/// How to open a database.
struct DatabaseOptions {
    std::string path;  ///< A file path; ":memory:" is refused (the feed needs several connections to one file).
    Synchronous synchronous = Synchronous::kNormal;
    std::chrono::milliseconds busy_timeout{5000};  ///< How long a write waits for another process's write lock.
    std::size_t statement_cache_size = 128;        ///< Prepared statements kept per connection.
    /// Memory of the prepared statements kept per connection (SQLite's own measure of each statement): the least
    /// recently used ones are finalized to stay under it, and a statement taking more than an eighth of it alone is
    /// finalized after its use instead of being kept.
    std::size_t statement_cache_bytes = 4 * 1024 * 1024;
    /// `in` filters with up to this many values are written inline (`col IN (?, ?, ...)`, padded with nulls to the
    /// next power of two, so a few statement shapes cover every length); longer lists are bound as one parameter
    /// (`col IN (SELECT value FROM syncline_values(?))`), one statement for any length. Both match the same rows.
    /// See benchmarks/README.md for the measurements behind the default.
    std::size_t inline_in_values = 16;
    /// Capture changes into the change feed (the default, and what syncline relies on). false only measures the
    /// raw write rate in benchmarks: it drops the capture triggers of these tables.
    bool capture_changes = true;
};

/// Storage failures are core's StoreError (consumers see them through ModelStore). Their messages quote at most a
/// couple of hundred bytes of any SQL text, however long the statement.
using StorageError = syncline::StoreError;

/// What the prepared-statement caches of a Database hold, summed over its connections.
struct StatementCacheStats {
    std::size_t statements = 0;
    std::size_t bytes = 0;
};

class Checkpointer;
class Connection;
class Database;
class SqliteTransaction;

/// Reads and writes on one connection; the shared body of Database's one-shot writes and of Transaction.
/// Not thread-safe: used by one thread at a time (the owner of the connection).
class ModelOps {
public:
    /// The row whose `field` equals `value`, or nullopt. `field` must be declared (else kSchema).
    std::optional<Row> Get(std::string_view table, std::string_view field, const Value& value) const;
    /// The rows matching `query`; kSchema for an undeclared field in a filter or ordering.
    std::vector<Row> List(std::string_view table, const Query& query) const;
    /// How many rows match `filters`.
    std::int64_t Count(std::string_view table, const std::vector<Filter>& filters) const;

    /// Inserts a row and returns it as stored (with its assigned key and defaults). Fields left out get their
    /// default, else null when nullable; an integer primary key is assigned by the database.
    Row Insert(std::string_view table, const Assignments& values) const;
    /// Full update: every non-key field is set, from `values`, else its default, else null (nullable fields);
    /// kInvalid when a required field is missing. Returns the new row, or nullopt when no row has that key.
    std::optional<Row> Update(std::string_view table, const Value& pk, const Assignments& values) const;
    /// Partial update of the given fields only. Returns the new row, or nullopt when no row has that key.
    std::optional<Row> Patch(std::string_view table, const Value& pk, const Assignments& values) const;
    /// Deletes a row; false when no row has that key.
    bool Delete(std::string_view table, const Value& pk) const;

private:
    friend class Database;
    friend class SqliteTransaction;
    ModelOps(const Database* db, Connection* conn) : db_(db), conn_(conn) {}
    std::optional<Row> WriteUpdate(std::string_view table, const Value& pk, const Assignments& values,
                                   bool full) const;
    const Database* db_;
    Connection* conn_;
};

/// A model store over one SQLite file (the embedded backend). See the file comment for the thread rules.
class Database final : public Backend {
public:
    /// Opens (creating if needed) the file and migrates it to `models`: missing tables are created, missing
    /// columns added, capture triggers installed. Throws StorageError(kSchema) naming the table and column when the
    /// file conflicts with a schema (another type, a changed primary key or nullability, a dropped NOT NULL default,
    /// a new NOT NULL column without a default), and StorageError(kIo) when the file cannot be opened.
    static std::unique_ptr<Database> Open(DatabaseOptions options, std::vector<Schema> models);
    ~Database() override;
    Database(const Database&) = delete;
    Database& operator=(const Database&) = delete;

    const DatabaseOptions& options() const { return options_; }
    /// The schema of a model; throws StorageError(kSchema) for an unknown table.
    const Schema& Model(std::string_view table) const override;
    const std::vector<Schema>& models() const override { return models_; }
    /// The schema version recorded in the file: 1 when created, +1 for every open that changed the schema.
    std::int64_t SchemaVersion() const override;

    // Reads: any thread; see ModelOps for the contracts.
    std::optional<Row> Get(std::string_view table, std::string_view field, const Value& value) const override;
    std::vector<Row> List(std::string_view table, const Query& query) const override;
    std::int64_t Count(std::string_view table, const std::vector<Filter>& filters) const override;
    /// The version of a row (see ModelStore::RowVersion): one lookup in the model's version table, which the capture
    /// triggers keep in the writing transaction and trimming leaves alone (except old tombstones, which raise the
    /// table's version floor).
    std::int64_t RowVersion(std::string_view table, const Value& pk) const override;
    /// The row's latest change from its version table, with the row's old image while the feed still holds it.
    std::optional<LastChangeInfo> LastChange(std::string_view table, const Value& pk) const override;
    /// The epoch recorded in the file (ModelStore::Epoch), read once at Open.
    std::string Epoch() const override { return epoch_; }
    /// A read transaction on this thread's reader connection (ModelStore::ReadSnapshot).
    std::unique_ptr<ReadScope> ReadSnapshot() const override;
    std::optional<std::vector<ChangedRow>> ChangedSince(std::string_view table, std::int64_t since) const override;
    // Writes: any thread; see ModelOps for the contracts. Each returns once committed, in a transaction of its own or
    // shared with the single writes of other threads that arrived meanwhile (group commit, group_commit.hpp: each in
    // a savepoint, failing alone).
    Row Insert(std::string_view table, const Assignments& values) override;
    std::optional<Row> Update(std::string_view table, const Value& pk, const Assignments& values) override;
    std::optional<Row> Patch(std::string_view table, const Value& pk, const Assignments& values) override;
    bool Delete(std::string_view table, const Value& pk) override;
    /// Starts a write transaction (BEGIN IMMEDIATE: waits for the writer). See SqliteTransaction.
    std::unique_ptr<Transaction> Begin() override;
    bool RunsBatches() const override { return true; }
    bool PrefersBatchedWrites() const override { return true; }
    /// See Backend::RunBatch. Its batches share the writer with group commit's and count in group_commit().
    void RunBatch(std::vector<BatchedWrite>& writes) override;
    /// Runs raw SQL on the writer connection (migrations of the user's own, tests). Commits like a write.
    void ExecuteWrite(const std::string& sql) override;
    /// A FeedSource over this file.
    std::unique_ptr<ChangeSource> OpenChangeSource() override;
    /// "SQLite file <path>".
    std::string Describe() const override;
    /// The file's absolute path.
    std::string Identity() const override;

    // Change feed bookkeeping (see change_feed.hpp).
    /// Records a named consumer position; trimming never removes changes after the lowest registered cursor.
    void SetCursor(const std::string& name, std::int64_t seq);
    /// Forgets a named cursor.
    void RemoveCursor(const std::string& name);
    /// A named cursor, or nullopt.
    std::optional<std::int64_t> GetCursor(const std::string& name) const;
    /// Takes or renews a named lease (see ChangeSource::HoldLease); a write, serialized with the others.
    bool HoldLease(const std::string& name, const std::string& holder, std::chrono::milliseconds ttl);
    /// Gives a lease up if `holder` holds it.
    void ReleaseLease(const std::string& name, const std::string& holder);
    /// Deletes captured changes older than `horizon` (measured by Trim calls: each call marks the current latest
    /// seq with the time), never at or after the lowest registered cursor, and never the latest change (so a seq is
    /// never reused). Returns the number of changes deleted.
    std::int64_t Trim(std::chrono::milliseconds horizon);

    /// Counts commits made through this Database object; ChangeFeed waits on it for an immediate wake-up.
    std::uint64_t local_commits() const;
    /// The statement caches of the writer and of every reader connection now (any thread; a snapshot).
    StatementCacheStats statement_cache() const;
    /// What group commit has done so far, RunBatch's batches included (any thread; a snapshot).
    GroupCommitStats group_commit() const;
    /// Checkpoints of the WAL run so far by the Database's checkpoint thread (any thread). The writer's commits run
    /// none: once a commit leaves 1,000 pages or more in the WAL, that thread copies them back into the file with a
    /// PASSIVE checkpoint, which holds back neither readers nor the writer.
    std::uint64_t checkpoints() const;

private:
    friend class ModelOps;
    friend class SqliteTransaction;
    friend class ChangeFeed;
    explicit Database(DatabaseOptions options, std::vector<Schema> models);
    std::unique_ptr<Connection> OpenConnection(bool writer) const;
    Connection& Reader() const;
    // Holds the writer connection for one thread; refuses (std::logic_error) a nested hold on the same thread.
    class WriterLock {
    public:
        explicit WriterLock(Database* db);
        ~WriterLock();
        WriterLock(const WriterLock&) = delete;
        WriterLock& operator=(const WriterLock&) = delete;

    private:
        Database* db_;
        std::unique_lock<std::mutex> lock_;
    };
    void NotifyCommitted();
    // Runs one single write through group commit (refusing a thread that holds the writer); see GroupCommit::Run.
    bool RunGrouped(const std::function<bool()>& write);
    // The leader's part: runs `jobs` in one transaction on the writer (held), each in a savepoint when there are
    // several, and records each one's outcome. Never throws.
    void CommitBatch(const std::vector<GroupCommit::Job*>& jobs) noexcept;
    // The writer connection's transaction statements, for RunInOneTransaction (the writer held).
    TransactionOps WriterOps();

    DatabaseOptions options_;
    std::vector<Schema> models_;
    std::string epoch_;
    std::unordered_map<std::string, std::size_t> model_index_;

    std::unique_ptr<Connection> writer_;
    std::mutex writer_mutex_;
    std::atomic<std::thread::id> writer_owner_{};  // the thread holding writer_mutex_: detects nested writes
    GroupCommit group_;
    // Whether the calling thread runs a RunBatch of this database: its reads and writes then go to the writer.
    bool InBatch() const;
    mutable std::mutex batch_stats_mutex_;
    GroupCommitStats batch_stats_;  // guarded by batch_stats_mutex_: RunBatch's share of group_commit()
    // Checkpoints the WAL on a thread of its own, so commits never do (storage/src/checkpointer.hpp). Declared after
    // writer_: destroyed first, once the writer's hook to it is removed.
    std::unique_ptr<Checkpointer> checkpointer_;

    mutable std::mutex readers_mutex_;
    mutable std::unordered_map<std::thread::id, std::unique_ptr<Connection>> readers_;

    mutable std::mutex commit_mutex_;
    std::condition_variable commit_cv_;
    std::uint64_t local_commits_ = 0;  // guarded by commit_mutex_
};

/// The SQLite Transaction (BEGIN IMMEDIATE): it holds the database's one writer connection until it ends, so other
/// writers of this process wait for it and other processes get SQLITE_BUSY until their busy timeout.
class SqliteTransaction final : public Transaction {
public:
    SqliteTransaction(SqliteTransaction&&) = delete;
    ~SqliteTransaction() override;
    std::optional<Row> Get(std::string_view table, std::string_view field, const Value& value) const override {
        return ops_.Get(table, field, value);
    }
    std::vector<Row> List(std::string_view table, const Query& query) const override { return ops_.List(table, query); }
    std::int64_t Count(std::string_view table, const std::vector<Filter>& filters) const override {
        return ops_.Count(table, filters);
    }
    Row Insert(std::string_view table, const Assignments& values) const override { return ops_.Insert(table, values); }
    std::optional<Row> Update(std::string_view table, const Value& pk, const Assignments& values) const override {
        return ops_.Update(table, pk, values);
    }
    std::optional<Row> Patch(std::string_view table, const Value& pk, const Assignments& values) const override {
        return ops_.Patch(table, pk, values);
    }
    bool Delete(std::string_view table, const Value& pk) const override { return ops_.Delete(table, pk); }
    void Commit() override;
    void Rollback() override;

private:
    friend class Database;
    explicit SqliteTransaction(Database* db);
    Database* owner_;
    Database::WriterLock writer_lock_;
    ModelOps ops_;
    bool open_ = true;
};

}  // namespace syncline::storage
