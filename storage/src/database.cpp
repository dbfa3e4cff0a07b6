#include <syncline/storage/database.hpp>

#include <syncline/core/change.hpp>

#include <algorithm>
#include <cassert>

#include "connection.hpp"
#include "extensions.hpp"
#include "schema_sql.hpp"

namespace syncline::storage {
namespace {

std::int64_t NowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string Upper(std::string s) {
    for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
}

std::string SelectList(const Schema& schema) {
    std::string out;
    for (const auto& f : schema.fields()) {
        if (!out.empty()) out += ", ";
        out += Quote(f.name);
    }
    return out;
}

struct ColumnInfo {
    std::string name;
    std::string type;
    bool notnull = false;
    bool has_default = false;
    bool pk = false;
};

std::vector<ColumnInfo> TableInfo(Connection& conn, const std::string& table) {
    std::vector<ColumnInfo> out;
    Statement st = conn.Prepare("SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1)");
    st.BindText(1, table);
    while (st.Step()) {
        out.push_back(ColumnInfo{st.ColumnText(0), Upper(st.ColumnText(1)), st.ColumnInt(2) != 0, !st.ColumnIsNull(3),
                                 st.ColumnInt(4) != 0});
    }
    return out;
}

// Brings one table in line with its schema, or throws kSchema naming the table and column. Returns true when DDL ran.
bool MigrateTable(Connection& conn, const Schema& schema) {
    const std::string& t = schema.table();
    std::vector<ColumnInfo> columns = TableInfo(conn, t);
    bool changed = false;
    if (columns.empty()) {
        conn.Exec(CreateTableSql(schema));
        changed = true;
    } else {
        auto conflict = [&](const std::string& column, const std::string& why) {
            throw StorageError(StorageError::Kind::kSchema,
                               "table \"" + t + "\", column \"" + column + "\": " + why);
        };
        for (const auto& f : schema.fields()) {
            auto col = std::find_if(columns.begin(), columns.end(),
                                    [&](const ColumnInfo& c) { return Upper(c.name) == Upper(f.name); });
            if (col == columns.end()) {
                if (f.primary_key) conflict(f.name, "the primary key differs from the database's");
                if (!f.nullable && !f.default_value) {
                    conflict(f.name, "a new NOT NULL column needs a default for the existing rows");
                }
                conn.Exec("ALTER TABLE " + Quote(t) + " ADD COLUMN " + ColumnSql(f));
                changed = true;
                continue;
            }
            if (col->type != SqlType(f)) {
                conflict(f.name, "the database has type " + col->type + ", the schema declares " +
                                     std::string(FieldTypeName(f.type)) + " (" + SqlType(f) + ")");
            }
            if (col->pk != f.primary_key) conflict(f.name, "the primary key differs from the database's");
            if (!f.primary_key && col->notnull != !f.nullable) {
                conflict(f.name, col->notnull ? "the database column is NOT NULL, the schema allows null"
                                              : "the database column allows null, the schema does not");
            }
            if (!f.primary_key && col->notnull && col->has_default && !f.default_value) {
                conflict(f.name, "the schema dropped the default of a NOT NULL column");
            }
        }
        for (const auto& col : columns) {
            if (!schema.FieldIndex(col.name) && col.notnull && !col.has_default && !col.pk) {
                conflict(col.name, "the column is NOT NULL without a default but the schema does not declare it, so "
                                   "no insert could succeed");
            }
        }
    }
    for (const auto& f : schema.fields()) {
        if (!f.unique || f.primary_key) continue;
        try {
            conn.Exec("CREATE UNIQUE INDEX IF NOT EXISTS " + Quote("_syncline_uq_" + t + "_" + f.name) + " ON " +
                      Quote(t) + " (" + Quote(f.name) + ")");
        } catch (const StorageError& e) {
            throw StorageError(StorageError::Kind::kSchema,
                               "table \"" + t + "\", column \"" + f.name + "\": cannot make it unique: " + e.what());
        }
    }
    return changed;
}

// Installs (or, with capture off, removes) a table's capture triggers; rewrites only those whose text differs, so
// an unchanged schema does not invalidate other processes' prepared statements.
void SyncTriggers(Connection& conn, const Schema& schema, bool capture) {
    for (const auto& [name, sql] : CaptureTriggers(schema)) {
        Statement st = conn.Prepare("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?1");
        st.BindText(1, name);
        std::optional<std::string> existing;
        if (st.Step()) existing = st.ColumnText(0);
        if (capture && existing == sql) continue;
        if (existing) conn.Exec("DROP TRIGGER " + Quote(name));
        if (capture) conn.Exec(sql);
    }
}

std::string JoinedFingerprint(const std::vector<Schema>& models) {
    std::vector<std::string> parts;
    for (const auto& s : models) parts.push_back(s.Fingerprint());
    std::sort(parts.begin(), parts.end());
    std::string out;
    for (const auto& p : parts) out += p + "\n";
    return out;
}

void RecordSchemaVersion(Connection& conn, const std::vector<Schema>& models) {
    std::string fingerprint = JoinedFingerprint(models);
    std::optional<std::string> old_fingerprint;
    std::int64_t version = 0;
    {
        Statement st = conn.Prepare("SELECT key, value FROM _syncline_meta WHERE key IN ('fingerprint', 'version')");
        while (st.Step()) {
            if (st.ColumnText(0) == "fingerprint") {
                old_fingerprint = st.ColumnText(1);
            } else {
                version = st.ColumnInt(1);
            }
        }
    }
    if (old_fingerprint == fingerprint) return;
    Statement st = conn.Prepare(
        "INSERT INTO _syncline_meta (key, value) VALUES ('fingerprint', ?1), ('version', ?2) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value");
    st.BindText(1, fingerprint);
    st.BindInt(2, version + 1);
    st.Step();
}

// Collects field errors and throws them together: a caller sees every problem of a write at once.
class ErrorList {
public:
    void Add(const std::string& field, std::string message) { errors_.emplace_back(field, std::move(message)); }
    void ThrowIfAny(const std::string& table) const {
        if (errors_.empty()) return;
        std::string message = "invalid values for \"" + table + "\":";
        for (const auto& [field, text] : errors_) message += " " + field + ": " + text;
        throw StorageError(StorageError::Kind::kInvalid, message, errors_);
    }

private:
    std::vector<std::pair<std::string, std::string>> errors_;
};

// Resolves assignments to (field index, value), rejecting unknown fields and values that violate their field.
std::vector<std::pair<std::size_t, Value>> Resolve(const Schema& schema, const Assignments& values,
                                                   ErrorList& errors) {
    std::vector<std::pair<std::size_t, Value>> out;
    for (const auto& [name, value] : values) {
        auto index = schema.FieldIndex(name);
        if (!index) {
            errors.Add(name, "Unknown field.");
            continue;
        }
        std::string problem = schema.CheckValue(schema.field(*index), value);
        if (!problem.empty()) errors.Add(name, problem);
        auto same = std::find_if(out.begin(), out.end(), [&](const auto& p) { return p.first == *index; });
        if (same != out.end()) {
            same->second = value;
        } else {
            out.emplace_back(*index, value);
        }
    }
    return out;
}

// The parameters of a query, in order: plain values, and `in` lists bound whole for syncline_values (pointing into
// the query's filters, which outlive the statement's run).
class Params {
public:
    void Add(Value value) { items_.push_back(Item{std::move(value), nullptr}); }
    void AddList(const std::vector<Value>* list) { items_.push_back(Item{Value(), list}); }
    void BindAll(Statement& st) const {
        for (std::size_t i = 0; i < items_.size(); ++i) {
            int index = static_cast<int>(i + 1);
            if (items_[i].list) {
                st.BindValues(index, items_[i].list);
            } else {
                st.Bind(index, items_[i].value);
            }
        }
    }

private:
    struct Item {
        Value value;
        const std::vector<Value>* list;
    };
    std::vector<Item> items_;
};

// The condition of an `in` filter. A short list is written inline, padded with nulls (which match nothing) to the
// next power of two so that few statement shapes serve every length; a longer one is one parameter, so no list ever
// makes a statement of its own length (a 250,000-value list made a 40 MB statement per length before).
std::string InSql(const std::string& col, const std::vector<Value>& values, std::size_t inline_max, Params& params) {
    if (values.empty()) return "0";
    if (values.size() > inline_max) {
        params.AddList(&values);
        // `+value`: an expression has no affinity, as a bound parameter has none, so the column's affinity applies to
        // the values exactly as in the inline form (a bare `value` is a column: text and number would not convert).
        return col + " IN (SELECT +value FROM " + std::string(kValuesTable) + "(?))";
    }
    std::size_t slots = 1;
    while (slots < values.size()) slots *= 2;
    std::string cond = col + " IN (";
    for (std::size_t i = 0; i < slots; ++i) {
        cond += i ? ", ?" : "?";
        params.Add(i < values.size() ? values[i] : Value());
    }
    return cond + ")";
}

// Builds the WHERE clause of a query, appending its parameters in order. The text lookups (contains, icontains,
// startswith) call syncline_lookup (extensions.hpp): the function RowMatches uses, so that SQL and the in-memory
// matcher agree on every row (LIKE and length() stop at a NUL, and LIKE needs its wildcards escaped).
std::string WhereSql(const Schema& schema, const std::vector<Filter>& filters, std::size_t inline_in_values,
                     Params& params) {
    std::string sql;
    for (const auto& filter : filters) {
        if (!schema.FieldIndex(filter.field)) {
            throw StorageError(StorageError::Kind::kSchema,
                               "unknown field \"" + filter.field + "\" in a filter on \"" + schema.table() + "\"");
        }
        std::string col = Quote(filter.field);
        std::string cond;
        switch (filter.op) {
            case FilterOp::kExact:
                if (filter.value.IsNull()) {
                    cond = col + " IS NULL";
                } else {
                    cond = col + " = ?";
                    params.Add(filter.value);
                }
                break;
            case FilterOp::kNe:
                cond = col + " IS NOT ?";
                params.Add(filter.value);
                break;
            case FilterOp::kLt:
                cond = col + " < ?";
                params.Add(filter.value);
                break;
            case FilterOp::kLte:
                cond = col + " <= ?";
                params.Add(filter.value);
                break;
            case FilterOp::kGt:
                cond = col + " > ?";
                params.Add(filter.value);
                break;
            case FilterOp::kGte:
                cond = col + " >= ?";
                params.Add(filter.value);
                break;
            case FilterOp::kIn:
                cond = InSql(col, filter.values, inline_in_values, params);
                break;
            case FilterOp::kIsNull: {
                bool is_null = filter.value.kind() == Value::Kind::kBoolean ? filter.value.AsBoolean()
                                                                            : !filter.value.IsNull();
                cond = col + (is_null ? " IS NULL" : " IS NOT NULL");
                break;
            }
            case FilterOp::kContains:
            case FilterOp::kIContains:
            case FilterOp::kStartsWith: {
                std::optional<std::string> needle = LookupText(filter.value);
                if (!needle) {
                    cond = "0";  // a null operand matches nothing
                    break;
                }
                const FieldSpec& field = schema.field(*schema.FieldIndex(filter.field));
                cond = std::string(kLookupFunction) + "(" + std::to_string(static_cast<int>(filter.op)) + ", " +
                       std::to_string(static_cast<int>(field.type)) + ", " + col + ", ?)";
                params.Add(std::move(*needle));
                break;
            }
        }
        sql += sql.empty() ? " WHERE " : " AND ";
        sql += cond;
    }
    return sql;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// ModelOps

std::optional<Row> ModelOps::Get(std::string_view table, std::string_view field, const Value& value) const {
    const Schema& schema = db_->Model(table);
    if (!schema.FieldIndex(field)) {
        throw StorageError(StorageError::Kind::kSchema,
                           "unknown lookup field \"" + std::string(field) + "\" on \"" + schema.table() + "\"");
    }
    auto use = conn_->Use();
    Statement st = conn_->Prepare("SELECT " + SelectList(schema) + " FROM " + Quote(schema.table()) + " WHERE " +
                                  Quote(std::string(field)) + " = ?1 LIMIT 1");
    st.Bind(1, value);
    if (!st.Step()) return std::nullopt;
    return st.ColumnRow(schema);
}

std::vector<Row> ModelOps::List(std::string_view table, const Query& query) const {
    const Schema& schema = db_->Model(table);
    Params params;
    std::string sql = "SELECT " + SelectList(schema) + " FROM " + Quote(schema.table()) +
                      WhereSql(schema, query.filters, db_->options().inline_in_values, params) + " ORDER BY ";
    for (const auto& order : query.ordering) {
        if (!schema.FieldIndex(order.field)) {
            throw StorageError(StorageError::Kind::kSchema,
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
    std::string sql = "SELECT count(*) FROM " + Quote(schema.table()) +
                      WhereSql(schema, filters, db_->options().inline_in_values, params);
    auto use = conn_->Use();
    Statement st = conn_->Prepare(sql);
    params.BindAll(st);
    st.Step();
    return st.ColumnInt(0);
}

Row ModelOps::Insert(std::string_view table, const Assignments& values) const {
    const Schema& schema = db_->Model(table);
    ErrorList errors;
    auto given = Resolve(schema, values, errors);
    std::vector<std::pair<std::size_t, Value>> columns;
    for (std::size_t i = 0; i < schema.size(); ++i) {
        const FieldSpec& f = schema.field(i);
        auto it = std::find_if(given.begin(), given.end(), [&](const auto& p) { return p.first == i; });
        if (it != given.end()) {
            columns.push_back(*it);
        } else if (f.primary_key && schema.pk_auto()) {
            continue;
        } else if (f.default_value) {
            columns.emplace_back(i, *f.default_value);
        } else if (f.nullable) {
            columns.emplace_back(i, Value());
        } else {
            errors.Add(f.name, "This field is required.");
        }
    }
    errors.ThrowIfAny(schema.table());
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
    std::string sql = "INSERT INTO " + Quote(schema.table()) +
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
    if (!row) throw StorageError(StorageError::Kind::kIo, "insert into \"" + schema.table() + "\" left no row");
    return std::move(*row);
}

std::optional<Row> ModelOps::WriteUpdate(std::string_view table, const Value& pk, const Assignments& values,
                                         bool full) const {
    const Schema& schema = db_->Model(table);
    ErrorList errors;
    auto columns = Resolve(schema, values, errors);
    if (full) {
        for (std::size_t i = 0; i < schema.size(); ++i) {
            const FieldSpec& f = schema.field(i);
            if (f.primary_key) continue;
            if (std::any_of(columns.begin(), columns.end(), [&](const auto& p) { return p.first == i; })) continue;
            if (f.default_value) {
                columns.emplace_back(i, *f.default_value);
            } else if (f.nullable) {
                columns.emplace_back(i, Value());
            } else {
                errors.Add(f.name, "This field is required.");
            }
        }
    }
    errors.ThrowIfAny(schema.table());
    if (columns.empty()) return Get(table, schema.pk().name, pk);
    std::string sql = "UPDATE " + Quote(schema.table()) + " SET ";
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
    Statement st = conn_->Prepare("DELETE FROM " + Quote(schema.table()) + " WHERE " + Quote(schema.pk().name) +
                                  " = ?1");
    st.Bind(1, pk);
    st.Step();
    return sqlite3_changes(conn_->handle()) > 0;
}

// ---------------------------------------------------------------------------------------------------------------
// Transaction

Transaction::Transaction(Database* db) : ModelOps(db, db->writer_.get()), owner_(db), writer_lock_(db) {
    auto use = conn_->Use();
    conn_->Exec("BEGIN IMMEDIATE");
}

Transaction::~Transaction() {
    if (open_) {
        try {
            Rollback();
        } catch (...) {
            // Rolling back in a destructor must not throw; SQLite rolls back on its own if this failed.
        }
    }
}

void Transaction::Commit() {
    if (!open_) throw std::logic_error("Transaction::Commit on a finished transaction");
    auto use = conn_->Use();
    try {
        conn_->Exec("COMMIT");
    } catch (...) {
        Rollback();
        throw;
    }
    open_ = false;
    owner_->NotifyCommitted();
}

void Transaction::Rollback() {
    if (!open_) return;
    open_ = false;
    auto use = conn_->Use();
    conn_->Exec("ROLLBACK");
}

// ---------------------------------------------------------------------------------------------------------------
// Database

Database::Database(DatabaseOptions options, std::vector<Schema> models)
    : options_(std::move(options)), models_(std::move(models)) {
    for (std::size_t i = 0; i < models_.size(); ++i) {
        if (!model_index_.emplace(models_[i].table(), i).second) {
            throw StorageError(StorageError::Kind::kSchema, "model \"" + models_[i].table() + "\" declared twice");
        }
    }
}

Database::~Database() = default;

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
        throw StorageError(StorageError::Kind::kIo,
                           "the database needs a file path (the change feed reads it through other connections)");
    }
    std::unique_ptr<Database> db(new Database(std::move(options), std::move(models)));
    db->writer_ = db->OpenConnection(true);
    Connection& w = *db->writer_;
    w.Exec("PRAGMA journal_mode = WAL");
    w.Exec("BEGIN IMMEDIATE");
    try {
        w.Exec(BookkeepingSql());
        for (const auto& schema : db->models_) {
            MigrateTable(w, schema);
            SyncTriggers(w, schema, db->options_.capture_changes);
        }
        RecordSchemaVersion(w, db->models_);
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
        throw StorageError(StorageError::Kind::kSchema, "unknown model \"" + std::string(table) + "\"");
    }
    return models_[it->second];
}

std::int64_t Database::SchemaVersion() const {
    Connection& conn = Reader();
    auto use = conn.Use();
    Statement st = conn.Prepare("SELECT value FROM _syncline_meta WHERE key = 'version'");
    return st.Step() ? st.ColumnInt(0) : 0;
}

Connection& Database::Reader() const {
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

std::int64_t Database::RowVersion(std::string_view table, const Value& pk) const {
    const Schema& schema = Model(table);
    Connection& conn = Reader();
    auto use = conn.Use();
    // Newest first: a row that changed recently is found after a short scan; a row whose changes were all trimmed
    // costs a scan of the retained feed.
    Statement st = conn.Prepare(
        "SELECT seq FROM _syncline_changes WHERE tbl = ?1 AND pk = ?2 ORDER BY seq DESC LIMIT 1");
    st.BindText(1, schema.table());
    st.Bind(2, pk);
    return st.Step() ? st.ColumnInt(0) : 0;
}

std::optional<ModelStore::LastChangeInfo> Database::LastChange(std::string_view table, const Value& pk) const {
    const Schema& schema = Model(table);
    Connection& conn = Reader();
    auto use = conn.Use();
    Statement st = conn.Prepare(
        "SELECT seq, op, old FROM _syncline_changes WHERE tbl = ?1 AND pk = ?2 ORDER BY seq DESC LIMIT 1");
    st.BindText(1, schema.table());
    st.Bind(2, pk);
    if (!st.Step()) return std::nullopt;
    LastChangeInfo info;
    info.version = st.ColumnInt(0);
    info.deleted = static_cast<ChangeOp>(st.ColumnInt(1)) == ChangeOp::kDelete;
    if (!st.ColumnIsNull(2)) {
        try {
            info.before = RowFromJson(schema, st.ColumnText(2));
        } catch (const std::invalid_argument&) {
            // An unreadable image is an unknown one.
        }
    }
    return info;
}

namespace {

// Runs `write` in its own BEGIN IMMEDIATE ... COMMIT on the writer, so that the row it reads back is the one it wrote
// (the BEGIN/COMMIT statements come from the statement cache).
template <class F>
auto InOwnTransaction(Connection& w, F&& write) {
    auto use = w.Use();
    w.Prepare("BEGIN IMMEDIATE").Step();
    try {
        auto result = write();
        w.Prepare("COMMIT").Step();
        return result;
    } catch (...) {
        if (!sqlite3_get_autocommit(w.handle())) w.Prepare("ROLLBACK").Step();
        throw;
    }
}

}  // namespace

Row Database::Insert(std::string_view table, const Assignments& values) {
    Row row;
    {
        WriterLock lock(this);
        row = InOwnTransaction(*writer_, [&] { return ModelOps(this, writer_.get()).Insert(table, values); });
    }
    NotifyCommitted();
    return row;
}

std::optional<Row> Database::Update(std::string_view table, const Value& pk, const Assignments& values) {
    std::optional<Row> row;
    {
        WriterLock lock(this);
        row = InOwnTransaction(*writer_, [&] { return ModelOps(this, writer_.get()).Update(table, pk, values); });
    }
    if (row) NotifyCommitted();
    return row;
}

std::optional<Row> Database::Patch(std::string_view table, const Value& pk, const Assignments& values) {
    std::optional<Row> row;
    {
        WriterLock lock(this);
        row = InOwnTransaction(*writer_, [&] { return ModelOps(this, writer_.get()).Patch(table, pk, values); });
    }
    if (row) NotifyCommitted();
    return row;
}

bool Database::Delete(std::string_view table, const Value& pk) {
    bool deleted = false;
    {
        WriterLock lock(this);
        deleted = InOwnTransaction(*writer_, [&] { return ModelOps(this, writer_.get()).Delete(table, pk); });
    }
    if (deleted) NotifyCommitted();
    return deleted;
}

std::unique_ptr<Transaction> Database::Begin() { return std::unique_ptr<Transaction>(new Transaction(this)); }

void Database::ExecuteWrite(const std::string& sql) {
    {
        WriterLock lock(this);
        auto use = writer_->Use();
        writer_->Exec(sql);
    }
    NotifyCommitted();
}

void Database::SetCursor(const std::string& name, std::int64_t seq) {
    WriterLock lock(this);
    auto use = writer_->Use();
    Statement st = writer_->Prepare(
        "INSERT INTO _syncline_cursors (name, seq, updated_ms) VALUES (?1, ?2, ?3) "
        "ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, updated_ms = excluded.updated_ms");
    st.BindText(1, name);
    st.BindInt(2, seq);
    st.BindInt(3, NowMs());
    st.Step();
}

void Database::RemoveCursor(const std::string& name) {
    WriterLock lock(this);
    auto use = writer_->Use();
    Statement st = writer_->Prepare("DELETE FROM _syncline_cursors WHERE name = ?1");
    st.BindText(1, name);
    st.Step();
}

std::optional<std::int64_t> Database::GetCursor(const std::string& name) const {
    Connection& conn = Reader();
    auto use = conn.Use();
    Statement st = conn.Prepare("SELECT seq FROM _syncline_cursors WHERE name = ?1");
    st.BindText(1, name);
    if (!st.Step()) return std::nullopt;
    return st.ColumnInt(0);
}

bool Database::HoldLease(const std::string& name, const std::string& holder, std::chrono::milliseconds ttl) {
    WriterLock lock(this);
    auto use = writer_->Use();
    std::int64_t now = NowMs();
    Statement st = writer_->Prepare(
        "INSERT INTO _syncline_leases (name, holder, expires_ms) VALUES (?1, ?2, ?3) "
        "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms "
        "WHERE _syncline_leases.holder = excluded.holder OR _syncline_leases.expires_ms < ?4");
    st.BindText(1, name);
    st.BindText(2, holder);
    st.BindInt(3, now + ttl.count());
    st.BindInt(4, now);
    st.Step();
    return sqlite3_changes(writer_->handle()) > 0;
}

void Database::ReleaseLease(const std::string& name, const std::string& holder) {
    WriterLock lock(this);
    auto use = writer_->Use();
    Statement st = writer_->Prepare("DELETE FROM _syncline_leases WHERE name = ?1 AND holder = ?2");
    st.BindText(1, name);
    st.BindText(2, holder);
    st.Step();
}

std::int64_t Database::Trim(std::chrono::milliseconds horizon) {
    WriterLock lock(this);
    auto use = writer_->Use();
    Connection& w = *writer_;
    w.Exec("BEGIN IMMEDIATE");
    try {
        std::int64_t now = NowMs();
        auto scalar = [&](const std::string& sql, std::int64_t bind) -> std::optional<std::int64_t> {
            Statement st = w.Prepare(sql);
            if (sql.find('?') != std::string::npos) st.BindInt(1, bind);
            st.Step();
            if (st.ColumnIsNull(0)) return std::nullopt;
            return st.ColumnInt(0);
        };
        std::int64_t latest = scalar("SELECT max(seq) FROM _syncline_changes", 0).value_or(0);
        {
            Statement st = w.Prepare("INSERT INTO _syncline_trim_marks (at_ms, seq) VALUES (?1, ?2)");
            st.BindInt(1, now);
            st.BindInt(2, latest);
            st.Step();
        }
        // The latest seq that was already committed `horizon` ago: everything up to it is older than the horizon.
        std::optional<std::int64_t> bound =
            scalar("SELECT max(seq) FROM _syncline_trim_marks WHERE at_ms <= ?1", now - horizon.count());
        std::int64_t deleted = 0;
        if (bound) {
            std::int64_t limit = std::min(*bound, latest - 1);  // keep the latest change: seq is never reused
            if (auto cursor = scalar("SELECT min(seq) FROM _syncline_cursors", 0)) limit = std::min(limit, *cursor);
            Statement del = w.Prepare("DELETE FROM _syncline_changes WHERE seq <= ?1");
            del.BindInt(1, limit);
            del.Step();
            deleted = sqlite3_changes(w.handle());
            Statement marks = w.Prepare("DELETE FROM _syncline_trim_marks WHERE seq < ?1");
            marks.BindInt(1, *bound);
            marks.Step();
        }
        w.Exec("COMMIT");
        return deleted;
    } catch (...) {
        w.Exec("ROLLBACK");
        throw;
    }
}

}  // namespace syncline::storage
