#pragma once
/// \file
/// What the rest of syncline needs from a database, whichever engine holds it: a model store (core's ModelStore),
/// write transactions, and change sources over the feed its capture triggers fill. OpenBackend picks the engine from
/// the `database` text: a `postgresql://` (or `postgres://`) URL opens PostgreSQL (storage::PostgresDatabase), any
/// other text is an SQLite file path (storage::Database). Nothing above storage names an engine.

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <syncline/core/model/change_source.hpp>
#include <syncline/core/model/query.hpp>
#include <syncline/core/model/schema.hpp>
#include <syncline/core/model/store.hpp>
#include <syncline/core/model/value.hpp>

namespace syncline::storage {

/// SQLite's `synchronous` setting for the WAL. kNormal (default): a commit survives a crash of the process but the
/// last commits may be lost on power loss or an OS crash; the database never corrupts. kFull: every commit is
/// fsynced (durable across power loss) at roughly a tenth of the write rate (see benchmarks/README.md).
/// PostgreSQL ignores it: its own `synchronous_commit` setting decides.
enum class Synchronous { kOff, kNormal, kFull };

/// How to open a database, whichever engine.
struct BackendOptions {
    /// "postgresql://user:password@host:port/db?sslmode=..." (or "postgres://"): PostgreSQL, the URL handed to libpq
    /// as it is. Anything else: the path of an SQLite file.
    std::string database;
    Synchronous synchronous = Synchronous::kNormal;       ///< SQLite only.
    std::size_t statement_cache_bytes = 4 * 1024 * 1024;  ///< SQLite only (DatabaseOptions).
    /// Capture changes into the change feed (the default, and what syncline relies on). false only measures the raw
    /// write rate in benchmarks.
    bool capture_changes = true;
};

/// True when `database` names a PostgreSQL database (a postgresql:// or postgres:// URL).
bool IsPostgresUrl(std::string_view database);

/// A write transaction: every write through it commits together, as one change-feed batch, or not at all. Leaving
/// the scope without Commit (or by an exception) rolls back, leaving no change. Use it from the thread that began
/// it; a second write on that thread outside the transaction throws std::logic_error instead of deadlocking.
class Transaction {
public:
    virtual ~Transaction() = default;
    virtual std::optional<Row> Get(std::string_view table, std::string_view field, const Value& value) const = 0;
    virtual std::vector<Row> List(std::string_view table, const Query& query) const = 0;
    virtual std::int64_t Count(std::string_view table, const std::vector<Filter>& filters) const = 0;
    virtual Row Insert(std::string_view table, const Assignments& values) const = 0;
    /// Full update (every non-key field, from `values`, else its default, else null); nullopt when no row has `pk`.
    virtual std::optional<Row> Update(std::string_view table, const Value& pk, const Assignments& values) const = 0;
    virtual std::optional<Row> Patch(std::string_view table, const Value& pk, const Assignments& values) const = 0;
    virtual bool Delete(std::string_view table, const Value& pk) const = 0;
    /// Commits; throws StoreError (the transaction is then rolled back).
    virtual void Commit() = 0;
    /// Rolls back now.
    virtual void Rollback() = 0;
};

/// One write of a batch (Backend::RunBatch).
struct BatchedWrite {
    /// The write: any reads and writes through the store, made on RunBatch's thread. It may run more than once when
    /// another write of the batch took the transaction down with it (SQLite ends it by itself on a full disk); each run
    /// starts from the state before it.
    std::function<void()> run;
    /// Set by RunBatch: null when the write is in the committed transaction, else why not (what it wrote is gone).
    std::exception_ptr error;
};

/// A model store with its change capture: what a Server opens. Every method may be called from any thread unless
/// its engine's class says otherwise; the change sources it opens follow ChangeSource's rules.
class Backend : public ModelStore {
public:
    /// The declared models, in declaration order.
    virtual const std::vector<Schema>& models() const = 0;
    /// The schema version recorded in the database: 1 when created, +1 for every open that changed the schema.
    virtual std::int64_t SchemaVersion() const = 0;
    /// Full update of one row in its own transaction (see Transaction::Update).
    virtual std::optional<Row> Update(std::string_view table, const Value& pk, const Assignments& values) = 0;
    /// Starts a write transaction.
    virtual std::unique_ptr<Transaction> Begin() = 0;
    /// Whether RunBatch is supported (both of syncline's engines; a Backend of an embedder's may not).
    virtual bool RunsBatches() const { return false; }
    /// Whether a Server should run its write requests through RunBatch (ServerOptions::batch_writes; true implies
    /// RunsBatches): true where a batch costs no round trips (SQLite, in the process), false where one connection
    /// would wait for every write's round trips in turn (PostgreSQL: measured 8-39 % slower than the write pool on
    /// loopback, and it would be far slower across a network).
    virtual bool PrefersBatchedWrites() const { return false; }
    /// Runs `writes` in order in one transaction on the calling thread, each in a savepoint of its own, and returns
    /// once that transaction has committed or failed, with each write's outcome in its `error`. Meanwhile every read
    /// and write the calling thread makes through this store goes to that transaction (a read sees the writes before
    /// it in the batch); Begin and ExecuteWrite on that thread throw std::logic_error. A write that throws fails alone:
    /// its savepoint is rolled back (its rows and the changes its capture recorded are gone, so it is never pushed)
    /// and the exception is its error. If the commit fails, every write gets that error. Other threads' reads never
    /// wait for it; their writes wait for the writer as they would for any transaction. Throws std::logic_error when
    /// RunsBatches() is false, or when called from inside a batch or a Transaction.
    virtual void RunBatch(std::vector<BatchedWrite>& writes);
    /// Runs raw SQL as one write (the user's own migrations, tests). Never built from request input.
    virtual void ExecuteWrite(const std::string& sql) = 0;
    /// A new reader of the change feed with its bookkeeping (cursors, trimming, leases), for one thread at a time.
    virtual std::unique_ptr<ChangeSource> OpenChangeSource() = 0;
    /// The engine and where the data is, for a log line: never a password.
    virtual std::string Describe() const = 0;
    /// A text that names this database the same way in every process and on every machine that serves it (the
    /// default bus channel prefix hashes it): an SQLite file's absolute path, a PostgreSQL server and database.
    virtual std::string Identity() const = 0;
};

/// The fields of the existing table `table` in the database `database` names (either engine), for a model declared
/// with `"fields": "from_database"` (Schema::FromDatabase): columns, types, nullability, constant defaults (a default
/// the database computes makes the field optional on create: FieldSpec::database_default), the primary key and the
/// max_length of varchar(n)/char(n); syncline's own _syncline_version column is never a field. Opens its own short
/// connection. Throws StoreError(kSchema) naming the table (and column) for a missing table, a table without a
/// primary key or with a composite one, or a column of a type syncline cannot serve; StoreError(kIo) when the
/// database cannot be reached.
std::vector<FieldSpec> DescribeTable(const std::string& database, const std::string& table);

/// Opens (creating or migrating as needed) the database `options.database` names, with these models. Throws
/// StoreError(kSchema) when the database conflicts with a model, StoreError(kIo) when it cannot be reached.
std::unique_ptr<Backend> OpenBackend(BackendOptions options, std::vector<Schema> models);

}  // namespace syncline::storage
