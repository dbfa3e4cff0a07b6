// PostgresDatabase: opening (connect, migrate under an advisory lock), one connection per thread, the model rows
// (pg_ops.cpp), transactions, read snapshots and row versions. The change feed is pg_feed.cpp.
#include "pg_database.hpp"

#include <syncline/storage/group_commit.hpp>

#include <syncline/core/model/change.hpp>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "pg_connection.hpp"
#include "pg_ops.hpp"
#include "pg_schema.hpp"

namespace syncline::storage::pg {
namespace {

// Every process migrating the same database takes this lock first (transaction-scoped): one migrates at a time.
constexpr const char* kMigrationLock = "SELECT pg_advisory_xact_lock(7310085434217451521)";

class PgTransaction final : public Transaction {
public:
    PgTransaction(PostgresDatabase& db, std::unique_ptr<Connection> conn)
        : db_(db), owned_(std::move(conn)), conn_(*owned_) {
        try {
            conn_.Begin();
        } catch (...) {
            db_.ReturnTransactionConn(std::move(owned_));
            throw;
        }
    }
    ~PgTransaction() override {
        if (open_) {
            try {
                Rollback();
            } catch (...) {
                // PostgreSQL ends the transaction itself when the connection goes.
            }
        }
        db_.ReturnTransactionConn(std::move(owned_));
    }
    std::optional<Row> Get(std::string_view table, std::string_view field, const Value& value) const override {
        return GetRow(conn_, db_.Model(table), field, value);
    }
    std::vector<Row> List(std::string_view table, const Query& query) const override {
        return ListRows(conn_, db_.Model(table), query);
    }
    std::int64_t Count(std::string_view table, const std::vector<Filter>& filters) const override {
        return CountRows(conn_, db_.Model(table), filters);
    }
    Row Insert(std::string_view table, const Assignments& values) const override {
        return InsertRow(conn_, db_.Model(table), values);
    }
    std::optional<Row> Update(std::string_view table, const Value& pk, const Assignments& values) const override {
        return UpdateRow(conn_, db_.Model(table), pk, values, true);
    }
    std::optional<Row> Patch(std::string_view table, const Value& pk, const Assignments& values) const override {
        return UpdateRow(conn_, db_.Model(table), pk, values, false);
    }
    bool Delete(std::string_view table, const Value& pk) const override {
        return DeleteRow(conn_, db_.Model(table), pk);
    }
    void Commit() override {
        if (!open_) throw std::logic_error("Transaction::Commit on a finished transaction");
        open_ = false;
        conn_.Commit();
    }
    void Rollback() override {
        if (!open_) return;
        open_ = false;
        conn_.Rollback();
    }

private:
    PostgresDatabase& db_;
    std::unique_ptr<Connection> owned_;
    Connection& conn_;
    bool open_ = true;
};

// A REPEATABLE READ READ ONLY transaction on the thread's connection, or nothing when one is open already (joined).
class PgReadScope final : public ModelStore::ReadScope {
public:
    PgReadScope(const PostgresDatabase& db, Connection& conn) : conn_(conn) {
        if (conn_.in_transaction()) {
            // Joined: the newest change the open snapshot holds (no scope of core's nests, so this is a fallback).
            version_ = conn_.Query(std::string("SELECT coalesce(max(seq), 0) FROM ") + kChangesTable).Int(0, 0);
            return;
        }
        // Every change up to version_ is final before the snapshot is taken, so all of them are in it. One check, no
        // wait: this runs on a network thread, and a transaction left open elsewhere must not stall subscribes.
        version_ = SafeHorizon(conn_, db.KnownSafe(), std::chrono::milliseconds(0));
        db.NoteSafe(version_);
        conn_.Begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
        owner_ = true;
        try {
            conn_.Query("SELECT 1");  // the first query takes the snapshot
        } catch (...) {
            conn_.Rollback();
            throw;
        }
    }
    ~PgReadScope() override {
        if (!owner_) return;
        try {
            conn_.Commit();
        } catch (const std::exception&) {
            try {
                conn_.Rollback();
            } catch (const std::exception&) {
            }
        }
    }
    std::int64_t version() const override { return version_; }

private:
    Connection& conn_;
    bool owner_ = false;
    std::int64_t version_ = 0;
};

std::int64_t VersionFloor(Connection& conn, const Schema& schema) {
    Result r = conn.Query("SELECT value FROM _syncline_meta WHERE key = $1", {"floor:" + schema.table()});
    return r.rows() ? r.Int(0, 0) : 0;
}

// (version, deleted) of a row from its version column or its tombstone; nullopt when neither knows it.
std::optional<std::pair<std::int64_t, bool>> VersionEntry(Connection& conn, const Schema& schema, const Value& pk) {
    std::optional<std::string> key = KeyParam(schema, pk);  // as the triggers record it (a UUID canonical)
    if (!key) return std::nullopt;
    Result r = conn.Query("SELECT " + Quote(kVersionColumn) + ", false FROM " + Quote(schema.storage_table()) +
                              " WHERE " + Quote(schema.pk().name) + " = $1::" + PgType(schema.pk()) +
                              " UNION ALL SELECT seq, true FROM " + kTombstones + " WHERE tbl = $2 AND pk = $3 LIMIT 1",
                          {key, schema.table(), key});
    if (r.rows() == 0 || r.IsNull(0, 0)) return std::nullopt;
    return std::make_pair(r.Int(0, 0), r.Text(0, 1)[0] == 't');
}

}  // namespace

std::optional<Horizon> TakeHorizon(Connection& conn, std::int64_t known_safe) {
    // 1. The newest seq handed out so far. Every transaction that took one holds a transaction id since before it
    // took it (the capture trigger makes sure). 2. A new transaction id, so newer than all of theirs (taken in a
    // transaction rolled back at once: it writes nothing). Once no transaction older than that one is running, all of
    // them have finished, and every seq up to the newest is committed or gone for good. (A snapshot's xmax would not
    // do: it is the newest *finished* id plus one, and running transactions above it are in no snapshot's list.)
    Result seq =
        conn.Query(std::string("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM ") + kChangesSequence);
    const std::int64_t newest = seq.Int(0, 0);
    if (newest <= known_safe) return std::nullopt;
    conn.Begin();
    std::string xid;
    try {
        xid = conn.Query("SELECT pg_current_xact_id()::text").Text(0, 0);
    } catch (...) {
        conn.Rollback();
        throw;
    }
    conn.Rollback();
    return Horizon{newest, xid};
}

bool HorizonReached(Connection& conn, const Horizon& horizon) {
    // Cheap and exact when nothing older runs anywhere on the server: the oldest running transaction id. Otherwise only
    // this database's transactions count (pg_stat_activity shows every session's backend_xid to any role, and
    // prepared transactions are listed apart), so a long transaction in another database on the same server does not
    // hold changes back. age() of both ids is taken from one reference, so a larger age is an older id.
    Result done = conn.Query(
        "SELECT pg_snapshot_xmin(pg_current_snapshot()) >= $1::xid8 OR (NOT EXISTS (SELECT 1 FROM pg_stat_activity "
        "WHERE datname = current_database() AND backend_xid IS NOT NULL AND age(backend_xid) > age(xid($1::xid8))) "
        "AND NOT EXISTS (SELECT 1 FROM pg_prepared_xacts WHERE database = current_database() AND age(transaction) > "
        "age(xid($1::xid8))))",
        {horizon.xid});
    return done.Text(0, 0)[0] == 't';
}

std::int64_t SafeHorizon(Connection& conn, std::int64_t known_safe, std::chrono::milliseconds max_wait) {
    std::optional<Horizon> horizon = TakeHorizon(conn, known_safe);
    if (!horizon) return known_safe;
    const auto deadline = std::chrono::steady_clock::now() + max_wait;
    auto pause = std::chrono::microseconds(100);
    for (;;) {
        if (HorizonReached(conn, *horizon)) return horizon->seq;
        if (std::chrono::steady_clock::now() >= deadline) return known_safe;
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, std::chrono::microseconds(5000));
    }
}

PostgresDatabase::PostgresDatabase(BackendOptions options, std::vector<Schema> models)
    : options_(std::move(options)), models_(std::move(models)), url_(WithConnectionDefaults(options_.database)) {
    for (std::size_t i = 0; i < models_.size(); ++i) {
        if (!model_index_.emplace(models_[i].table(), i).second) {
            throw StoreError(StoreErrc::kSchema, "model \"" + models_[i].table() + "\" declared twice");
        }
        for (std::size_t j = 0; j < i; ++j) {
            // Their triggers and versions would overwrite each other's.
            if (models_[j].storage_table() == models_[i].storage_table()) {
                throw StoreError(StoreErrc::kSchema, "models \"" + models_[j].table() + "\" and \"" +
                                                         models_[i].table() + "\" are both stored in table \"" +
                                                         models_[i].storage_table() + "\"");
            }
        }
    }
}

PostgresDatabase::~PostgresDatabase() = default;

std::unique_ptr<PostgresDatabase> PostgresDatabase::Open(BackendOptions options, std::vector<Schema> models) {
    std::unique_ptr<PostgresDatabase> db(new PostgresDatabase(std::move(options), std::move(models)));
    Connection& c = db->Conn();
    c.Begin();
    try {
        c.Query(kMigrationLock);
        c.Exec(BookkeepingSql());
        for (const auto& schema : db->models_) MigrateTable(c, schema, db->options_.capture_changes);
        RecordSchemaVersion(c, db->models_);
        Result epoch = c.Query("SELECT value FROM _syncline_meta WHERE key = 'epoch'");
        if (epoch.rows()) db->epoch_ = epoch.Text(0, 0);
        Result where = c.Query("SELECT current_schema()");
        db->identity_ = "postgresql:" + db->epoch_ + ":" + (where.rows() ? where.Text(0, 0) : "");
        c.Commit();
    } catch (...) {
        try {
            c.Rollback();
        } catch (...) {
        }
        throw;
    }
    return db;
}

Connection& PostgresDatabase::Conn() const {
    std::unique_ptr<Connection>* slot = nullptr;
    {
        std::lock_guard<std::mutex> lock(conns_mutex_);
        slot = &conns_[std::this_thread::get_id()];
        if (*slot) return **slot;
    }
    // Connect outside the lock: other threads go on while this one waits for the server.
    auto conn = std::make_unique<Connection>(url_);
    std::lock_guard<std::mutex> lock(conns_mutex_);
    std::unique_ptr<Connection>& entry = conns_[std::this_thread::get_id()];
    entry = std::move(conn);
    return *entry;
}

bool PostgresDatabase::InTransaction() const {
    std::lock_guard<std::mutex> lock(conns_mutex_);
    return std::find(tx_threads_.begin(), tx_threads_.end(), std::this_thread::get_id()) != tx_threads_.end();
}

Connection& PostgresDatabase::WriteConn() const {
    if (InTransaction()) {
        throw std::logic_error("a write on a thread that holds an open Transaction: write through the Transaction");
    }
    return Conn();
}

std::unique_ptr<Connection> PostgresDatabase::TakeTransactionConn() {
    {
        std::lock_guard<std::mutex> lock(conns_mutex_);
        const auto self = std::this_thread::get_id();
        if (std::find(tx_threads_.begin(), tx_threads_.end(), self) != tx_threads_.end()) {
            throw std::logic_error("a write on a thread that holds an open Transaction: write through the Transaction");
        }
        tx_threads_.push_back(self);
        if (!idle_tx_conns_.empty()) {
            auto conn = std::move(idle_tx_conns_.back());
            idle_tx_conns_.pop_back();
            return conn;
        }
    }
    try {
        return std::make_unique<Connection>(url_);
    } catch (...) {
        ReturnTransactionConn(nullptr);
        throw;
    }
}

void PostgresDatabase::ReturnTransactionConn(std::unique_ptr<Connection> conn) {
    std::lock_guard<std::mutex> lock(conns_mutex_);
    auto it = std::find(tx_threads_.begin(), tx_threads_.end(), std::this_thread::get_id());
    if (it != tx_threads_.end()) tx_threads_.erase(it);
    // A few idle connections are kept for the next transactions; a broken one, or one still in a transaction, goes.
    if (conn && !conn->in_transaction() && PQstatus(conn->handle()) == CONNECTION_OK && idle_tx_conns_.size() < 4) {
        idle_tx_conns_.push_back(std::move(conn));
    }
}

const Schema& PostgresDatabase::Model(std::string_view table) const {
    auto it = model_index_.find(std::string(table));
    if (it == model_index_.end()) throw StoreError(StoreErrc::kSchema, "unknown model \"" + std::string(table) + "\"");
    return models_[it->second];
}

std::int64_t PostgresDatabase::SchemaVersion() const {
    Result r = Conn().Query("SELECT value FROM _syncline_meta WHERE key = 'version'");
    return r.rows() ? r.Int(0, 0) : 0;
}

std::optional<Row> PostgresDatabase::Get(std::string_view table, std::string_view field, const Value& value) const {
    return GetRow(Conn(), Model(table), field, value);
}

std::vector<Row> PostgresDatabase::List(std::string_view table, const Query& query) const {
    return ListRows(Conn(), Model(table), query);
}

std::int64_t PostgresDatabase::Count(std::string_view table, const std::vector<Filter>& filters) const {
    return CountRows(Conn(), Model(table), filters);
}

Row PostgresDatabase::Insert(std::string_view table, const Assignments& values) {
    return InsertRow(WriteConn(), Model(table), values);
}

std::optional<Row> PostgresDatabase::Update(std::string_view table, const Value& pk, const Assignments& values) {
    return UpdateRow(WriteConn(), Model(table), pk, values, true);
}

std::optional<Row> PostgresDatabase::Patch(std::string_view table, const Value& pk, const Assignments& values) {
    return UpdateRow(WriteConn(), Model(table), pk, values, false);
}

bool PostgresDatabase::Delete(std::string_view table, const Value& pk) {
    return DeleteRow(WriteConn(), Model(table), pk);
}

std::int64_t PostgresDatabase::RowVersion(std::string_view table, const Value& pk) const {
    const Schema& schema = Model(table);
    Connection& conn = Conn();
    if (auto entry = VersionEntry(conn, schema, pk)) return entry->first;
    return VersionFloor(conn, schema);
}

std::optional<ModelStore::LastChangeInfo> PostgresDatabase::LastChange(std::string_view table, const Value& pk) const {
    const Schema& schema = Model(table);
    Connection& conn = Conn();
    auto entry = VersionEntry(conn, schema, pk);
    if (!entry) return std::nullopt;
    LastChangeInfo info;
    info.version = entry->first;
    info.deleted = entry->second;
    Result r =
        conn.Query(std::string("SELECT old FROM ") + kChangesTable + " WHERE seq = $1", {std::to_string(info.version)});
    if (r.rows() && !r.IsNull(0, 0)) {
        try {
            info.before = RowFromJson(schema, r.Text(0, 0));
        } catch (const std::invalid_argument&) {
            // An unreadable image is an unknown one.
        }
    }
    return info;
}

std::unique_ptr<ModelStore::ReadScope> PostgresDatabase::ReadSnapshot() const {
    return std::make_unique<PgReadScope>(*this, Conn());
}

std::optional<std::vector<ModelStore::ChangedRow>> PostgresDatabase::ChangedSince(std::string_view table,
                                                                                  std::int64_t since) const {
    const Schema& schema = Model(table);
    Connection& conn = Conn();
    if (since < VersionFloor(conn, schema)) return std::nullopt;
    Result oldest_r = conn.Query(std::string("SELECT coalesce(min(seq), 0) FROM ") + kChangesTable);
    const std::int64_t oldest = oldest_r.Int(0, 0);
    const std::string since_text = std::to_string(since);
    Result r = oldest != 0 && oldest <= since + 1
                   ? conn.Query(std::string("SELECT pk, max(seq), bool_or(op = 3 AND seq = last) FROM (SELECT pk, seq, "
                                            "op, max(seq) OVER (PARTITION BY pk) AS last FROM ") +
                                    kChangesTable + " WHERE seq > $1 AND tbl = $2) c GROUP BY pk",
                                {since_text, schema.table()})
                   : conn.Query("SELECT " + Quote(schema.pk().name) + "::text, " + Quote(kVersionColumn) +
                                    ", false FROM " + Quote(schema.storage_table()) + " WHERE " +
                                    Quote(kVersionColumn) + " > $1::bigint UNION ALL SELECT pk, seq, true FROM " +
                                    kTombstones + " WHERE tbl = $2 AND seq > $1::bigint",
                                {since_text, schema.table()});
    std::vector<ChangedRow> rows;
    for (int i = 0; i < r.rows(); ++i) {
        rows.push_back(ChangedRow{FromText(r.Text(i, 0), schema.pk().type), r.Int(i, 1), r.Text(i, 2)[0] == 't'});
    }
    return rows;
}

void PostgresDatabase::NoteSafe(std::int64_t seq) const {
    std::int64_t known = known_safe_.load(std::memory_order_relaxed);
    while (seq > known && !known_safe_.compare_exchange_weak(known, seq, std::memory_order_acq_rel)) {
    }
}

namespace {
void RefuseInBatch(const PostgresDatabase* db, const char* what) {
    if (InBatchOf(db)) throw std::logic_error(std::string(what) + " inside a batch: write through the store");
}
}  // namespace

std::unique_ptr<Transaction> PostgresDatabase::Begin() {
    RefuseInBatch(this, "Begin");
    return std::make_unique<PgTransaction>(*this, TakeTransactionConn());
}

void PostgresDatabase::ExecuteWrite(const std::string& sql) {
    RefuseInBatch(this, "ExecuteWrite");
    WriteConn().Exec(sql);
}

void PostgresDatabase::RunBatch(std::vector<BatchedWrite>& writes) {
    if (writes.empty()) return;
    RefuseInBatch(this, "RunBatch");
    if (InTransaction()) {
        throw std::logic_error("RunBatch on a thread that holds an open Transaction: write through the Transaction");
    }
    Connection& conn = Conn();
    TransactionOps ops;
    ops.begin = [&conn] { conn.Begin(); };
    ops.commit = [&conn] { conn.Commit(); };
    ops.exec = [&conn](const char* sql) { conn.Exec(sql); };
    ops.in_transaction = [&conn] { return conn.in_transaction(); };
    ops.rollback = [&conn] {
        try {
            conn.Rollback();
        } catch (const std::exception&) {
            // A connection that is gone ended its transaction with it.
        }
    };
    RunBatchedWrites(writes, ops, this);
}

std::string PostgresDatabase::Describe() const { return "PostgreSQL " + RedactedUrl(options_.database); }

}  // namespace syncline::storage::pg
