#include "connection.hpp"

#include <cstring>

namespace syncline::storage {

void ThrowSqlite(sqlite3* db, int rc, const std::string& context) {
    std::string message = context + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    switch (rc & 0xff) {
        case SQLITE_CONSTRAINT:
            throw StorageError(StorageError::Kind::kConstraint, message);
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
            throw StorageError(StorageError::Kind::kBusy, message);
        default:
            throw StorageError(StorageError::Kind::kIo, message);
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
    int rc = sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_STATIC);
    if (rc != SQLITE_OK) ThrowSqlite(conn_->handle(), rc, "bind");
}

bool Statement::Step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    ThrowSqlite(conn_->handle(), rc, std::string("statement \"") + sqlite3_sql(stmt_) + "\"");
}

std::string Statement::ColumnText(int i) const {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, i));
    int size = sqlite3_column_bytes(stmt_, i);
    return text ? std::string(text, static_cast<std::size_t>(size)) : std::string();
}

Value Statement::ColumnAny(int i) const {
    switch (sqlite3_column_type(stmt_, i)) {
        case SQLITE_NULL:
            return Value();
        case SQLITE_INTEGER:
            return Value(static_cast<std::int64_t>(sqlite3_column_int64(stmt_, i)));
        case SQLITE_FLOAT:
            return Value(sqlite3_column_double(stmt_, i));
        default:
            return Value(ColumnText(i));
    }
}

Value Statement::Column(int i, FieldType type) const {
    int storage_class = sqlite3_column_type(stmt_, i);
    if (storage_class == SQLITE_NULL) return Value();
    switch (type) {
        case FieldType::kBoolean:
            if (storage_class == SQLITE_INTEGER) return Value(sqlite3_column_int64(stmt_, i) != 0);
            break;
        case FieldType::kReal:
            if (storage_class == SQLITE_INTEGER || storage_class == SQLITE_FLOAT) {
                return Value(sqlite3_column_double(stmt_, i));
            }
            break;
        case FieldType::kText:
        case FieldType::kDateTime:
        case FieldType::kJson:
            // A shell may store a number in a text column: hand it out as its text, as the field's type promises.
            return Value(ColumnText(i));
        case FieldType::kInteger:
            break;
    }
    return ColumnAny(i);
}

Row Statement::ColumnRow(const Schema& schema, int first) const {
    Row row;
    row.reserve(schema.size());
    for (std::size_t i = 0; i < schema.size(); ++i) {
        row.push_back(Column(first + static_cast<int>(i), schema.field(i).type));
    }
    return row;
}

Connection::Connection(const std::string& path, bool writer, const DatabaseOptions& options)
    : cache_capacity_(options.statement_cache_size) {
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (writer ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) {
        std::string message = "cannot open database \"" + path + "\": " + sqlite3_errmsg(db_);
        sqlite3_close_v2(db_);
        db_ = nullptr;
        throw StorageError(StorageError::Kind::kIo, message);
    }
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, static_cast<int>(options.busy_timeout.count()));
    const char* sync = options.synchronous == Synchronous::kFull     ? "FULL"
                       : options.synchronous == Synchronous::kNormal ? "NORMAL"
                                                                     : "OFF";
    Exec(std::string("PRAGMA foreign_keys=ON; PRAGMA synchronous=") + sync + ";");
}

Connection::~Connection() {
    for (auto& [sql, cached] : cache_) sqlite3_finalize(cached.stmt);
    sqlite3_close_v2(db_);
}

Statement Connection::Prepare(const std::string& sql) {
    auto it = cache_.find(sql);
    if (it != cache_.end() && !it->second.in_use) {
        it->second.in_use = true;
        return Statement(this, it->second.stmt, &it->second.in_use);
    }
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &stmt,
                                nullptr);
    if (rc != SQLITE_OK) ThrowSqlite(db_, rc, "prepare \"" + sql + "\"");
    if (it != cache_.end()) return Statement(this, stmt, nullptr);  // the cached one is in use (nested query)
    if (cache_.size() >= cache_capacity_) {
        // Evict the statements not in use; a simple policy that keeps the hot set after a burst of one-off queries.
        for (auto e = cache_.begin(); e != cache_.end();) {
            if (e->second.in_use) {
                ++e;
            } else {
                sqlite3_finalize(e->second.stmt);
                e = cache_.erase(e);
            }
        }
    }
    auto inserted = cache_.emplace(sql, Cached{stmt, true}).first;
    return Statement(this, stmt, &inserted->second.in_use);
}

void Connection::Exec(const std::string& sql) {
    char* error = nullptr;
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error);
    if (rc != SQLITE_OK) {
        std::string message = error ? error : sqlite3_errstr(rc);
        sqlite3_free(error);
        ThrowSqlite(nullptr, rc, "\"" + sql.substr(0, 200) + "\": " + message);
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
