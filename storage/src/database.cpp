// The Database itself: opening a file (connections, then the migrations of migrations.cpp), the rows (ModelOps: reads
// through the WHERE builder of where_builder.cpp, and validated writes), and transactions with the one writer
// connection they share. What it does with the change feed (row versions, cursors, leases, trimming) is in
// feed_bookkeeping.cpp.
#include <syncline/storage/database.hpp>

#include <algorithm>
#include <cassert>
#include <filesystem>

#include "checkpointer.hpp"
#include "connection.hpp"
#include "migrations.hpp"
#include "schema_sql.hpp"
#include "where_builder.hpp"
#include "write_values.hpp"

namespace syncline::storage {
namespace {

std::string SelectList(const Schema& schema) {
    std::string out;
    for (const auto& f : schema.fields()) {
        if (!out.empty()) out += ", ";
        out += Quote(f.name);
    }
    return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// ModelOps

std::optional<Row> ModelOps::Get(std::string_view table, std::string_view field, const Value& value) const {
    const Schema& schema = db_->Model(table);
    if (!schema.FieldIndex(field)) {
        throw StorageError(StoreErrc::kSchema,
                           "unknown lookup field \"" + std::string(field) + "\" on \"" + schema.table() + "\"");
    }
    auto use = conn_->Use();
    Statement st = conn_->Prepare("SELECT " + SelectList(schema) + " FROM " + Quote(schema.storage_table()) +
                                  " WHERE " + Quote(std::string(field)) + " = ?1 LIMIT 1");
    st.Bind(1, value);
    if (!st.Step()) return std::nullopt;
    return st.ColumnRow(schema);
}

std::vector<Row> ModelOps::List(std::string_view table, const Query& query) const {
    const Schema& schema = db_->Model(table);
    Params params;
    std::string sql = "SELECT " + SelectList(schema) + " FROM " + Quote(schema.storage_table()) +
                      WhereSql(schema, query.filters, db_->options().inline_in_values, params) + " ORDER BY ";
    for (const auto& order : query.ordering) {
        if (!schema.FieldIndex(order.field)) {
            throw StorageError(StoreErrc::kSchema,
                               "unknown field \"" + order.field + "\" in the ordering of \"" + schema.table() + "\"");
        }
        sql += Quote(order.field) + (order.descending ? " DESC, " : ", ");
    }
    sql += Quote(schema.pk().name);
    if (query.limit || query.offset > 0) {
        sql += " LIMIT ? OFFSET ?";
        params.Add(query.limit ? std::max<std::int64_t>(*query.limit, 0) : std::int64_t{-1});
        params.Add(std::max<std::int64_t>(query.offset, 0));
    }
    auto use = conn_->Use();
    Statement st = conn_->Prepare(sql);
    params.BindAll(st);
    std::vector<Row> rows;
    while (st.Step()) rows.push_back(st.ColumnRow(schema));
    return rows;
}

std::int64_t ModelOps::Count(std::string_view table, const std::vector<Filter>& filters) const {
    const Schema& schema = db_->Model(table);
    Params params;
    std::string sql = "SELECT count(*) FROM " + Quote(schema.storage_table()) +
                      WhereSql(schema, filters, db_->options().inline_in_values, params);
    auto use = conn_->Use();
    Statement st = conn_->Prepare(sql);
    params.BindAll(st);
    st.Step();
    return st.ColumnInt(0);
}

Row ModelOps::Insert(std::string_view table, const Assignments& values) const {
    const Schema& schema = db_->Model(table);
    std::vector<std::pair<std::size_t, Value>> columns = InsertColumns(schema, values);
    std::string names, params;
    for (const auto& [index, value] : columns) {
        if (!names.empty()) {
            names += ", ";
            params += ", ";
        }
        names += Quote(schema.field(index).name);
        params += "?";
    }
    // No RETURNING: SQLite builds an ephemeral table for it on every statement (measured: a third of the cost of a
    // batched write). The row is read back by key instead, in the same transaction.
    std::string sql = "INSERT INTO " + Quote(schema.storage_table()) +
                      (columns.empty() ? " DEFAULT VALUES" : " (" + names + ") VALUES (" + params + ")");
    auto use = conn_->Use();
    {
        Statement st = conn_->Prepare(sql);
        for (std::size_t i = 0; i < columns.size(); ++i) st.Bind(static_cast<int>(i + 1), columns[i].second);
        st.Step();
    }
    Value key;
    if (schema.pk_auto()) {
        key = Value(static_cast<std::int64_t>(sqlite3_last_insert_rowid(conn_->handle())));
    } else {
        for (const auto& [index, value] : columns) {
            if (index == schema.pk_index()) key = value;
        }
    }
    auto row = Get(table, schema.pk().name, key);
    if (!row) throw StorageError(StoreErrc::kIo, "insert into \"" + schema.table() + "\" left no row");
    return std::move(*row);
}

std::optional<Row> ModelOps::WriteUpdate(std::string_view table, const Value& pk, const Assignments& values,
                                         bool full) const {
    const Schema& schema = db_->Model(table);
    std::vector<std::pair<std::size_t, Value>> columns = UpdateColumns(schema, values, full);
    if (columns.empty()) return Get(table, schema.pk().name, pk);
    std::string sql = "UPDATE " + Quote(schema.storage_table()) + " SET ";
    for (std::size_t i = 0; i < columns.size(); ++i) {
        sql += (i ? ", " : "") + Quote(schema.field(columns[i].first).name) + " = ?";
    }
    sql += " WHERE " + Quote(schema.pk().name) + " = ?";
    auto use = conn_->Use();
    {
        Statement st = conn_->Prepare(sql);
        for (std::size_t i = 0; i < columns.size(); ++i) st.Bind(static_cast<int>(i + 1), columns[i].second);
        st.Bind(static_cast<int>(columns.size() + 1), pk);
        st.Step();
    }
    if (sqlite3_changes(conn_->handle()) == 0) return std::nullopt;
    Value key = pk;
    for (const auto& [index, value] : columns) {
        if (index == schema.pk_index()) key = value;  // the write moved the row to a new key
    }
    return Get(table, schema.pk().name, key);
}

std::optional<Row> ModelOps::Update(std::string_view table, const Value& pk, const Assignments& values) const {
    return WriteUpdate(table, pk, values, true);
}

std::optional<Row> ModelOps::Patch(std::string_view table, const Value& pk, const Assignments& values) const {
    return WriteUpdate(table, pk, values, false);
}

bool ModelOps::Delete(std::string_view table, const Value& pk) const {
    const Schema& schema = db_->Model(table);
    auto use = conn_->Use();
    Statement st =
        conn_->Prepare("DELETE FROM " + Quote(schema.storage_table()) + " WHERE " + Quote(schema.pk().name) + " = ?1");
    st.Bind(1, pk);
    st.Step();
    return sqlite3_changes(conn_->handle()) > 0;
}

// ---------------------------------------------------------------------------------------------------------------
// Transaction

SqliteTransaction::SqliteTransaction(Database* db) : owner_(db), writer_lock_(db), ops_(db, db->writer_.get()) {
    auto use = db->writer_->Use();
    db->writer_->Exec("BEGIN IMMEDIATE");
}

SqliteTransaction::~SqliteTransaction() {
    if (open_) {
        try {
            Rollback();
        } catch (...) {
            // Rolling back in a destructor must not throw; SQLite rolls back on its own if this failed.
        }
    }
}

void SqliteTransaction::Commit() {
    if (!open_) throw std::logic_error("Transaction::Commit on a finished transaction");
    Connection* conn = owner_->writer_.get();
    auto use = conn->Use();
    try {
        conn->Exec("COMMIT");
    } catch (...) {
        Rollback();
        throw;
    }
    open_ = false;
    owner_->NotifyCommitted();
}

void SqliteTransaction::Rollback() {
    if (!open_) return;
    open_ = false;
    Connection* conn = owner_->writer_.get();
    auto use = conn->Use();
    conn->Exec("ROLLBACK");
}

// ---------------------------------------------------------------------------------------------------------------
// Database

Database::Database(DatabaseOptions options, std::vector<Schema> models)
    : options_(std::move(options)), models_(std::move(models)) {
    for (std::size_t i = 0; i < models_.size(); ++i) {
        if (!model_index_.emplace(models_[i].table(), i).second) {
            throw StorageError(StoreErrc::kSchema, "model \"" + models_[i].table() + "\" declared twice");
        }
        for (std::size_t j = 0; j < i; ++j) {
            // Their triggers and versions would overwrite each other's.
            if (models_[j].storage_table() == models_[i].storage_table()) {
                throw StorageError(StoreErrc::kSchema, "models \"" + models_[j].table() + "\" and \"" +
                                                           models_[i].table() + "\" are both stored in table \"" +
                                                           models_[i].storage_table() + "\"");
            }
        }
    }
}

Database::~Database() {
    if (writer_ && checkpointer_) sqlite3_wal_hook(writer_->handle(), nullptr, nullptr);
}

std::uint64_t Database::checkpoints() const { return checkpointer_ ? checkpointer_->checkpoints() : 0; }

std::unique_ptr<Connection> Database::OpenConnection(bool writer) const {
    auto conn = std::make_unique<Connection>(options_.path, writer, options_);
    if (!writer) conn->Exec("PRAGMA query_only = 1");
    return conn;
}

std::unique_ptr<Database> Database::Open(DatabaseOptions options, std::vector<Schema> models) {
    // SQLite's memory statistics take a global mutex on every allocation; syncline never reads them. This must run
    // before SQLite initializes; afterwards the call is refused harmlessly (SQLITE_MISUSE) and changes nothing.
    static const bool kConfigured = [] {
        sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
        return true;
    }();
    (void)kConfigured;
    if (options.path.empty() || options.path == ":memory:" || options.path.rfind("file::memory:", 0) == 0) {
        throw StorageError(StoreErrc::kIo,
                           "the database needs a file path (the change feed reads it through other connections)");
    }
    std::unique_ptr<Database> db(new Database(std::move(options), std::move(models)));
    db->writer_ = db->OpenConnection(true);
    Connection& w = *db->writer_;
    w.Exec("PRAGMA journal_mode = WAL");
    // SQLite's own threshold (1,000 pages), on a thread of the Database's own instead of in the commit that crosses it.
    db->checkpointer_ = std::make_unique<Checkpointer>(db->OpenConnection(true), 1000);
    sqlite3_wal_hook(w.handle(), &Checkpointer::Hook, db->checkpointer_.get());
    w.Exec("BEGIN IMMEDIATE");
    try {
        w.Exec(BookkeepingSql());
        for (const auto& schema : db->models_) {
            MigrateTable(w, schema);
            SyncVersionColumn(w, schema);
            SyncTriggers(w, schema, db->options_.capture_changes);
        }
        RecordSchemaVersion(w, db->models_);
        Statement epoch = w.Prepare("SELECT value FROM _syncline_meta WHERE key = 'epoch'");
        if (epoch.Step()) db->epoch_ = epoch.ColumnText(0);
        w.Exec("COMMIT");
    } catch (...) {
        w.Exec("ROLLBACK");
        throw;
    }
    return db;
}

const Schema& Database::Model(std::string_view table) const {
    auto it = model_index_.find(std::string(table));
    if (it == model_index_.end()) {
        throw StorageError(StoreErrc::kSchema, "unknown model \"" + std::string(table) + "\"");
    }
    return models_[it->second];
}

std::int64_t Database::SchemaVersion() const {
    Connection& conn = Reader();
    auto use = conn.Use();
    Statement st = conn.Prepare("SELECT value FROM _syncline_meta WHERE key = 'version'");
    return st.Step() ? st.ColumnInt(0) : 0;
}

bool Database::InBatch() const { return InBatchOf(this); }

Connection& Database::Reader() const {
    // Inside a batch the thread holds the writer, in the batch's transaction: its reads see the writes before them.
    if (InBatch()) return *writer_;
    std::lock_guard<std::mutex> lock(readers_mutex_);
    auto& conn = readers_[std::this_thread::get_id()];
    if (!conn) conn = OpenConnection(false);
    return *conn;
}

Database::WriterLock::WriterLock(Database* db) : db_(db) {
    if (db_->writer_owner_.load() == std::this_thread::get_id()) {
        throw std::logic_error("a write on a thread that holds an open Transaction: write through the Transaction");
    }
    lock_ = std::unique_lock<std::mutex>(db_->writer_mutex_);
    db_->writer_owner_.store(std::this_thread::get_id());
}

Database::WriterLock::~WriterLock() { db_->writer_owner_.store(std::thread::id()); }

void Database::NotifyCommitted() {
    {
        std::lock_guard<std::mutex> lock(commit_mutex_);
        ++local_commits_;
    }
    commit_cv_.notify_all();
}

std::uint64_t Database::local_commits() const {
    std::lock_guard<std::mutex> lock(commit_mutex_);
    return local_commits_;
}

StatementCacheStats Database::statement_cache() const {
    StatementCacheStats stats;
    auto add = [&](const Connection& conn) {
        stats.statements += conn.cached_statements();
        stats.bytes += conn.cached_bytes();
    };
    if (writer_) add(*writer_);
    std::lock_guard<std::mutex> lock(readers_mutex_);
    for (const auto& [thread, conn] : readers_) add(*conn);
    return stats;
}

std::optional<Row> Database::Get(std::string_view table, std::string_view field, const Value& value) const {
    return ModelOps(this, &Reader()).Get(table, field, value);
}

std::vector<Row> Database::List(std::string_view table, const Query& query) const {
    return ModelOps(this, &Reader()).List(table, query);
}

std::int64_t Database::Count(std::string_view table, const std::vector<Filter>& filters) const {
    return ModelOps(this, &Reader()).Count(table, filters);
}

GroupCommitStats Database::group_commit() const {
    GroupCommitStats stats = group_.stats();
    std::lock_guard<std::mutex> lock(batch_stats_mutex_);
    stats.writes += batch_stats_.writes;
    stats.batches += batch_stats_.batches;
    stats.largest_batch = std::max(stats.largest_batch, batch_stats_.largest_batch);
    stats.queued += batch_stats_.queued;
    return stats;
}

void Database::RunBatch(std::vector<BatchedWrite>& writes) {
    if (writes.empty()) return;
    if (InBatch()) throw std::logic_error("RunBatch inside a batch: write through the store instead");
    const std::size_t size = writes.size();
    {
        std::lock_guard<std::mutex> lock(batch_stats_mutex_);
        batch_stats_.queued += size;
    }
    bool committed = false;
    try {
        WriterLock lock(this);  // refuses a thread that holds an open Transaction
        auto use = writer_->Use();
        const sqlite3_int64 before = sqlite3_total_changes64(writer_->handle());
        // Wakes the feed's readers only when a row changed in what committed.
        committed = RunBatchedWrites(writes, WriterOps(), this) && sqlite3_total_changes64(writer_->handle()) != before;
    } catch (...) {
        std::lock_guard<std::mutex> lock(batch_stats_mutex_);
        batch_stats_.queued -= size;
        throw;
    }
    {
        std::lock_guard<std::mutex> lock(batch_stats_mutex_);
        batch_stats_.queued -= size;
        batch_stats_.writes += size;
        batch_stats_.batches += 1;
        batch_stats_.largest_batch = std::max<std::uint64_t>(batch_stats_.largest_batch, size);
    }
    if (committed) NotifyCommitted();
}

bool Database::RunGrouped(const std::function<bool()>& write) {
    // Inside a batch the write is one of the batch's: it runs here, in the batch's transaction.
    if (InBatch()) return write();
    if (writer_owner_.load() == std::this_thread::get_id()) {
        throw std::logic_error("a write on a thread that holds an open Transaction: write through the Transaction");
    }
    return group_.Run(write, [this](auto take) {
        bool committed = false;
        {
            WriterLock lock(this);
            const std::vector<GroupCommit::Job*> jobs = take();
            CommitBatch(jobs);
            committed = std::any_of(jobs.begin(), jobs.end(), [](const GroupCommit::Job* j) { return j->wrote; });
        }
        if (committed) NotifyCommitted();
    });
}

TransactionOps Database::WriterOps() {
    Connection& w = *writer_;
    TransactionOps ops;
    ops.in_transaction = [&w] { return sqlite3_get_autocommit(w.handle()) == 0; };
    ops.begin = [&w] { w.Prepare("BEGIN IMMEDIATE").Step(); };
    ops.commit = [&w] { w.Prepare("COMMIT").Step(); };
    ops.exec = [&w](const char* sql) { w.Prepare(sql).Step(); };
    ops.rollback = [&w] {
        try {
            if (sqlite3_get_autocommit(w.handle()) == 0) w.Prepare("ROLLBACK").Step();
        } catch (const std::exception&) {
            // The connection ends the transaction itself when it cannot go on.
        }
    };
    return ops;
}

void Database::CommitBatch(const std::vector<GroupCommit::Job*>& jobs) noexcept {
    auto use = writer_->Use();
    RunInOneTransaction(jobs, WriterOps());
}

Row Database::Insert(std::string_view table, const Assignments& values) {
    Row row;
    RunGrouped([&] {
        row = ModelOps(this, writer_.get()).Insert(table, values);
        return true;
    });
    return row;
}

std::optional<Row> Database::Update(std::string_view table, const Value& pk, const Assignments& values) {
    std::optional<Row> row;
    RunGrouped([&] {
        row = ModelOps(this, writer_.get()).Update(table, pk, values);
        return row.has_value();
    });
    return row;
}

std::optional<Row> Database::Patch(std::string_view table, const Value& pk, const Assignments& values) {
    std::optional<Row> row;
    RunGrouped([&] {
        row = ModelOps(this, writer_.get()).Patch(table, pk, values);
        return row.has_value();
    });
    return row;
}

bool Database::Delete(std::string_view table, const Value& pk) {
    return RunGrouped([&] { return ModelOps(this, writer_.get()).Delete(table, pk); });
}

std::string Database::Describe() const { return "SQLite file " + options_.path; }

std::string Database::Identity() const {
    std::error_code ec;
    std::filesystem::path path = std::filesystem::weakly_canonical(options_.path, ec);
    return ec ? options_.path : path.string();
}

std::unique_ptr<Transaction> Database::Begin() { return std::unique_ptr<Transaction>(new SqliteTransaction(this)); }

void Database::ExecuteWrite(const std::string& sql) {
    {
        WriterLock lock(this);
        auto use = writer_->Use();
        writer_->Exec(sql);
    }
    NotifyCommitted();
}

}  // namespace syncline::storage
