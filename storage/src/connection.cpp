#include "connection.hpp"

#include <cstring>

#include "extensions.hpp"

namespace syncline::storage {

std::string SqlExcerpt(std::string_view sql) {
    if (sql.size() <= kSqlExcerptBytes) return std::string(sql);
    std::size_t cut = kSqlExcerptBytes;
    while (cut > 0 && (static_cast<unsigned char>(sql[cut]) & 0xc0) == 0x80) --cut;  // not inside a UTF-8 character
    return std::string(sql.substr(0, cut)) + "... (" + std::to_string(sql.size()) + " bytes)";
}

void ThrowSqlite(sqlite3* db, int rc, const std::string& context) {
    // SQLite's own messages are short, but one quotes a token of the SQL ("near ...: syntax error"): bounded too.
    std::string message = context + ": " + SqlExcerpt(db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    switch (rc & 0xff) {
        case SQLITE_CONSTRAINT:
            throw StorageError(StoreErrc::kConstraint, message);
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
            throw StorageError(StoreErrc::kBusy, message);
        default:
            throw StorageError(StoreErrc::kIo, message);
    }
}

Statement::Statement(Statement&& other) noexcept : conn_(other.conn_), stmt_(other.stmt_), in_use_(other.in_use_) {
    other.stmt_ = nullptr;
}

Statement::~Statement() {
    if (!stmt_) return;
    if (in_use_) {
        sqlite3_reset(stmt_);
        sqlite3_clear_bindings(stmt_);
        *in_use_ = false;
    } else {
        sqlite3_finalize(stmt_);
    }
}

void Statement::Bind(int index, const Value& value) {
    int rc = SQLITE_OK;
    switch (value.kind()) {
        case Value::Kind::kNull:
            rc = sqlite3_bind_null(stmt_, index);
            break;
        case Value::Kind::kInteger:
            rc = sqlite3_bind_int64(stmt_, index, value.AsInteger());
            break;
        case Value::Kind::kReal:
            rc = sqlite3_bind_double(stmt_, index, value.AsReal());
            break;
        case Value::Kind::kBoolean:
            rc = sqlite3_bind_int(stmt_, index, value.AsBoolean() ? 1 : 0);
            break;
        case Value::Kind::kText:
            BindText(index, value.AsText());
            return;
    }
    if (rc != SQLITE_OK) ThrowSqlite(conn_->handle(), rc, "bind");
}

void Statement::BindInt(int index, std::int64_t value) {
    int rc = sqlite3_bind_int64(stmt_, index, value);
    if (rc != SQLITE_OK) ThrowSqlite(conn_->handle(), rc, "bind");
}

void Statement::BindText(int index, const std::string& value) {
    int rc = sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_STATIC, SQLITE_UTF8);
    if (rc != SQLITE_OK) ThrowSqlite(conn_->handle(), rc, "bind");
}

void Statement::BindValues(int index, const std::vector<Value>* values) {
    int rc = sqlite3_bind_pointer(stmt_, index, const_cast<std::vector<Value>*>(values), kValuesTable, nullptr);
    if (rc != SQLITE_OK) ThrowSqlite(conn_->handle(), rc, "bind");
}

bool Statement::Step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    ThrowSqlite(conn_->handle(), rc, "statement \"" + SqlExcerpt(sqlite3_sql(stmt_)) + "\"");
}

namespace {

// A stored value as a field of `type`: stored values of another class are converted losslessly where possible, and a
// number a shell stored in a text column comes out as its text. One body for a statement's columns and for a
// function's arguments (syncline_lookup), so both read a stored value the same way; `Source` reads the value.
template <class Source>
Value StoredValue(const Source& source, FieldType type) {
    int storage_class = source.Type();
    if (storage_class == SQLITE_NULL) return Value();
    switch (type) {
        case FieldType::kBoolean:
            if (storage_class == SQLITE_INTEGER) return Value(source.Int() != 0);
            break;
        case FieldType::kReal:
            if (storage_class == SQLITE_INTEGER || storage_class == SQLITE_FLOAT) return Value(source.Double());
            break;
        case FieldType::kText:
        case FieldType::kDateTime:
        case FieldType::kJson:
            return Value(source.Text());
        case FieldType::kInteger:
            break;
    }
    switch (storage_class) {
        case SQLITE_INTEGER:
            return Value(static_cast<std::int64_t>(source.Int()));
        case SQLITE_FLOAT:
            return Value(source.Double());
        default:
            return Value(source.Text());
    }
}

struct ColumnSource {
    sqlite3_stmt* stmt;
    int i;
    int Type() const { return sqlite3_column_type(stmt, i); }
    sqlite3_int64 Int() const { return sqlite3_column_int64(stmt, i); }
    double Double() const { return sqlite3_column_double(stmt, i); }
    std::string Text() const {
        const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, i));
        return text ? std::string(text, static_cast<std::size_t>(sqlite3_column_bytes(stmt, i))) : std::string();
    }
};

struct ArgumentSource {
    sqlite3_value* value;
    int Type() const { return sqlite3_value_type(value); }
    sqlite3_int64 Int() const { return sqlite3_value_int64(value); }
    double Double() const { return sqlite3_value_double(value); }
    std::string Text() const {
        const auto* text = reinterpret_cast<const char*>(sqlite3_value_text(value));
        return text ? std::string(text, static_cast<std::size_t>(sqlite3_value_bytes(value))) : std::string();
    }
};

}  // namespace

Value ValueFromSqlite(sqlite3_value* value, FieldType type) { return StoredValue(ArgumentSource{value}, type); }

std::string Statement::ColumnText(int i) const { return ColumnSource{stmt_, i}.Text(); }

Value Statement::ColumnAny(int i) const {
    // Integer is the one type Column converts nothing for: the storage class decides.
    return StoredValue(ColumnSource{stmt_, i}, FieldType::kInteger);
}

Value Statement::Column(int i, FieldType type) const { return StoredValue(ColumnSource{stmt_, i}, type); }

Row Statement::ColumnRow(const Schema& schema, int first) const {
    Row row;
    row.reserve(schema.size());
    for (std::size_t i = 0; i < schema.size(); ++i) {
        row.push_back(Column(first + static_cast<int>(i), schema.field(i).type));
    }
    return row;
}

Connection::Connection(const std::string& path, bool writer, const DatabaseOptions& options)
    : cache_capacity_(options.statement_cache_size), cache_bytes_(options.statement_cache_bytes) {
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (writer ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) {
        std::string message = "cannot open database \"" + path + "\": " + sqlite3_errmsg(db_);
        sqlite3_close_v2(db_);
        db_ = nullptr;
        throw StorageError(StoreErrc::kIo, message);
    }
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, static_cast<int>(options.busy_timeout.count()));
    try {
        RegisterExtensions(db_);
    } catch (...) {
        sqlite3_close_v2(db_);
        db_ = nullptr;
        throw;
    }
    const char* sync = options.synchronous == Synchronous::kFull     ? "FULL"
                       : options.synchronous == Synchronous::kNormal ? "NORMAL"
                                                                     : "OFF";
    Exec(std::string("PRAGMA foreign_keys=ON; PRAGMA synchronous=") + sync + ";");
}

Connection::~Connection() {
    for (auto& cached : lru_) sqlite3_finalize(cached.stmt);
    sqlite3_close_v2(db_);
}

Statement Connection::Prepare(const std::string& sql) {
    auto it = cache_.find(sql);
    if (it != cache_.end() && !it->second->in_use) {
        lru_.splice(lru_.begin(), lru_, it->second);
        it->second->in_use = true;
        return Statement(this, it->second->stmt, &it->second->in_use);
    }
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &stmt,
                                nullptr);
    if (rc != SQLITE_OK) {
        sqlite3_finalize(stmt);
        ThrowSqlite(db_, rc, "prepare \"" + SqlExcerpt(sql) + "\"");
    }
    if (it != cache_.end()) return Statement(this, stmt, nullptr);  // the cached one is in use (nested query)
    auto bytes = static_cast<std::size_t>(sqlite3_stmt_status(stmt, SQLITE_STMTSTATUS_MEMUSED, 0));
    // A huge statement (thousands of conditions) is used once and finalized: caching it would hold megabytes for a
    // query that is unlikely to come again with the same shape.
    if (bytes > cache_bytes_ / 8 || cache_capacity_ == 0) return Statement(this, stmt, nullptr);
    MakeRoom(1, bytes);
    lru_.push_front(Cached{sql, stmt, bytes, true});
    cache_.emplace(lru_.front().sql, lru_.begin());
    cached_count_.fetch_add(1, std::memory_order_relaxed);
    cached_bytes_.fetch_add(bytes, std::memory_order_relaxed);
    return Statement(this, stmt, &lru_.front().in_use);
}

void Connection::MakeRoom(std::size_t count, std::size_t bytes) {
    std::size_t held_count = cached_count_.load(std::memory_order_relaxed);
    std::size_t held_bytes = cached_bytes_.load(std::memory_order_relaxed);
    for (auto e = lru_.end();
         e != lru_.begin() && (held_count + count > cache_capacity_ || held_bytes + bytes > cache_bytes_);) {
        --e;
        if (e->in_use) continue;
        held_count -= 1;
        held_bytes -= e->bytes;
        sqlite3_finalize(e->stmt);
        cache_.erase(e->sql);
        e = lru_.erase(e);
    }
    cached_count_.store(held_count, std::memory_order_relaxed);
    cached_bytes_.store(held_bytes, std::memory_order_relaxed);
}

void Connection::Exec(const std::string& sql) {
    char* error = nullptr;
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error);
    if (rc != SQLITE_OK) {
        std::string message = error ? error : sqlite3_errstr(rc);
        sqlite3_free(error);
        ThrowSqlite(nullptr, rc, "\"" + SqlExcerpt(sql) + "\": " + SqlExcerpt(message));
    }
}

Connection::UseGuard::UseGuard(const Connection* conn) : conn_(conn) {
#ifndef NDEBUG
    std::thread::id none;
    std::thread::id self = std::this_thread::get_id();
    if (conn_->user_.compare_exchange_strong(none, self)) {
        outer_ = true;
    } else {
        assert(none == self && "an SQLite connection was used by two threads at once");
    }
#endif
}

Connection::UseGuard::~UseGuard() {
#ifndef NDEBUG
    if (outer_) conn_->user_.store(std::thread::id());
#endif
}

}  // namespace syncline::storage
