#pragma once
// The PostgreSQL backend (private to storage; OpenBackend makes one for a postgresql:// URL).
//
// Threads. Any thread may call any method. Each thread gets its own connection, opened on first use and kept (a
// server's threads are few and long-lived); PostgreSQL's MVCC lets them read and write at once, row locks order
// writes to one row. A one-shot write is one statement in its own transaction (INSERT/UPDATE/DELETE ... RETURNING).
// A Transaction takes a connection of its own from a small pool, as SQLite's takes the writer: the thread's reads
// meanwhile do not see its writes until it commits, and a one-shot write or a second Begin on that thread throws
// std::logic_error (it could wait forever on a row the transaction locked).
//
// Failure. A lost connection is reopened on the thread's next call; while the server cannot be reached every call
// throws StoreError(kUnavailable).

#include <syncline/storage/backend.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace syncline::storage::pg {

class Connection;

class PostgresDatabase final : public Backend {
public:
    // Connects and migrates (one migration at a time across processes: an advisory lock). Throws StoreError.
    static std::unique_ptr<PostgresDatabase> Open(BackendOptions options, std::vector<Schema> models);
    ~PostgresDatabase() override;

    const Schema& Model(std::string_view table) const override;
    const std::vector<Schema>& models() const override { return models_; }
    std::int64_t SchemaVersion() const override;
    std::optional<Row> Get(std::string_view table, std::string_view field, const Value& value) const override;
    std::vector<Row> List(std::string_view table, const Query& query) const override;
    std::int64_t Count(std::string_view table, const std::vector<Filter>& filters) const override;
    Row Insert(std::string_view table, const Assignments& values) override;
    std::optional<Row> Update(std::string_view table, const Value& pk, const Assignments& values) override;
    std::optional<Row> Patch(std::string_view table, const Value& pk, const Assignments& values) override;
    bool Delete(std::string_view table, const Value& pk) override;
    std::int64_t RowVersion(std::string_view table, const Value& pk) const override;
    std::optional<LastChangeInfo> LastChange(std::string_view table, const Value& pk) const override;
    std::string Epoch() const override { return epoch_; }
    /// A REPEATABLE READ transaction on this thread's connection. Its version() is a seq such that every change up to
    /// it is in the snapshot; changes after it may be in the snapshot too. It never waits: when a transaction that
    /// may still commit a smaller seq is running, version() is the newest safe horizon this process has seen (any
    /// lower bound is correct; the rows sent above it carry their own versions).
    std::unique_ptr<ReadScope> ReadSnapshot() const override;
    std::optional<std::vector<ChangedRow>> ChangedSince(std::string_view table, std::int64_t since) const override;
    std::unique_ptr<Transaction> Begin() override;
    void ExecuteWrite(const std::string& sql) override;
    bool RunsBatches() const override { return true; }
    // See Backend::RunBatch: the batch's transaction is on the calling thread's own connection, which its reads and
    // writes use anyway.
    void RunBatch(std::vector<BatchedWrite>& writes) override;
    std::unique_ptr<ChangeSource> OpenChangeSource() override;
    std::string Describe() const override;
    std::string Identity() const override { return identity_; }

    /// The URL connections use (with WithConnectionDefaults).
    const std::string& url() const { return url_; }
    // This thread's connection.
    Connection& Conn() const;

    // The transaction pool (PgTransaction): a connection for a new transaction of this thread, and its return.
    std::unique_ptr<Connection> TakeTransactionConn();
    void ReturnTransactionConn(std::unique_ptr<Connection> conn);

    // The newest seq this process has found safe (every change up to it committed or gone for good): read scopes and
    // change feeds note what they reach, and a read scope falls back on it instead of waiting.
    std::int64_t KnownSafe() const { return known_safe_.load(std::memory_order_acquire); }
    void NoteSafe(std::int64_t seq) const;

private:
    PostgresDatabase(BackendOptions options, std::vector<Schema> models);
    Connection& WriteConn() const;
    bool InTransaction() const;
    BackendOptions options_;
    std::vector<Schema> models_;
    std::unordered_map<std::string, std::size_t> model_index_;
    std::string url_;
    std::string epoch_;
    std::string identity_;
    mutable std::mutex conns_mutex_;
    mutable std::unordered_map<std::thread::id, std::unique_ptr<Connection>> conns_;
    std::vector<std::unique_ptr<Connection>> idle_tx_conns_;  // guarded by conns_mutex_
    std::vector<std::thread::id> tx_threads_;                 // threads with an open Transaction; conns_mutex_
    mutable std::atomic<std::int64_t> known_safe_{0};
};

// A candidate safe horizon: the newest seq handed out at some moment, and a transaction id newer than every
// transaction that held one of those seqs then. It is reached (every seq up to it committed or gone for good) once no
// transaction older than `xid` is running.
struct Horizon {
    std::int64_t seq = 0;
    std::string xid;
};
// A new candidate on `conn` (outside a transaction), or nullopt when no seq newer than `known_safe` was handed out.
std::optional<Horizon> TakeHorizon(Connection& conn, std::int64_t known_safe);
// Whether every transaction that could hold a seq up to horizon.seq has finished.
bool HorizonReached(Connection& conn, const Horizon& horizon);
// The newest seq up to which every change is final, waiting up to `max_wait` (polling) for the transactions that may
// still commit a smaller one; `known_safe` when that takes longer.
std::int64_t SafeHorizon(Connection& conn, std::int64_t known_safe, std::chrono::milliseconds max_wait);

}  // namespace syncline::storage::pg
