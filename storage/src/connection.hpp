#pragma once
// One SQLite connection with a prepared-statement cache (private to storage).

#include <sqlite3.h>

#include <atomic>
#include <cassert>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include <syncline/core/model/schema.hpp>
#include <syncline/core/model/value.hpp>
#include <syncline/storage/database.hpp>

namespace syncline::storage {

class Connection;

// A function argument as a field of `type`, read exactly as Statement::Column reads a column of that type.
Value ValueFromSqlite(sqlite3_value* value, FieldType type);

// Throws the StorageError that matches an SQLite result code. `context` names what failed; SQL text in it must come
// through SqlExcerpt.
[[noreturn]] void ThrowSqlite(sqlite3* db, int rc, const std::string& context);

// At most this many bytes of SQL text go into an error message (or a log line through one).
inline constexpr std::size_t kSqlExcerptBytes = 200;

// SQL text for a message: the text itself when short, else its first kSqlExcerptBytes bytes (cut at a character
// boundary) and "... (N bytes)". A statement can be megabytes long; its text never is a message.
std::string SqlExcerpt(std::string_view sql);

// A prepared statement borrowed from a connection's cache; reset and returned when it goes out of scope.
class Statement {
public:
    // `in_use` is the cache entry's flag (nullptr for an uncached statement, finalized at the end).
    Statement(Connection* conn, sqlite3_stmt* stmt, bool* in_use) : conn_(conn), stmt_(stmt), in_use_(in_use) {}
    Statement(Statement&& other) noexcept;
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;
    Statement& operator=(Statement&&) = delete;
    ~Statement();

    // Binds a value to parameter `index` (1-based). Text is bound without a copy: the value must outlive Step().
    void Bind(int index, const Value& value);
    void BindInt(int index, std::int64_t value);
    void BindText(int index, const std::string& value);
    // Binds a list for `syncline_values(?index)` (extensions.hpp), without copying it: the list must outlive Step().
    void BindValues(int index, const std::vector<Value>* values);
    // Resets the statement for another run with new bindings.
    void Reset() {
        sqlite3_reset(stmt_);
        sqlite3_clear_bindings(stmt_);
    }
    // Steps once: true when a row is available, false when done. Throws StorageError on failure (naming the
    // statement by SqlExcerpt).
    bool Step();
    // Reads column `i` as a value of a field of `type` (stored values of another class are converted losslessly
    // where possible, e.g. 0/1 to boolean).
    Value Column(int i, FieldType type) const;
    // Reads column `i` with no declared type: its storage class decides the kind.
    Value ColumnAny(int i) const;
    std::int64_t ColumnInt(int i) const { return sqlite3_column_int64(stmt_, i); }
    bool ColumnIsNull(int i) const { return sqlite3_column_type(stmt_, i) == SQLITE_NULL; }
    std::string ColumnText(int i) const;
    // Reads columns [first, first + schema.size()) as a row.
    Row ColumnRow(const Schema& schema, int first = 0) const;

private:
    Connection* conn_;
    sqlite3_stmt* stmt_;
    bool* in_use_;
};

// An SQLite connection. Never used by two threads at once (asserted in debug builds through Use()).
class Connection {
public:
    Connection(const std::string& path, bool writer, const DatabaseOptions& options);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    sqlite3* handle() const { return db_; }
    // A statement for `sql`, from the cache when it was prepared before and is not in use. A new statement is kept
    // in the cache (least recently used ones are finalized to stay within the options' statement_cache_size and
    // statement_cache_bytes) unless it alone takes more than an eighth of statement_cache_bytes: such a statement is
    // finalized when the returned Statement goes.
    Statement Prepare(const std::string& sql);
    // What the cache holds now (any thread: read from atomics).
    std::size_t cached_statements() const { return cached_count_.load(std::memory_order_relaxed); }
    std::size_t cached_bytes() const { return cached_bytes_.load(std::memory_order_relaxed); }
    // Runs one or more statements with no parameters and no result rows.
    void Exec(const std::string& sql);

    // Debug builds: marks the connection in use by this thread until the guard ends; asserts no other thread is
    // using it at the same time.
    class UseGuard {
    public:
        explicit UseGuard(const Connection* conn);
        ~UseGuard();
        UseGuard(const UseGuard&) = delete;
        UseGuard& operator=(const UseGuard&) = delete;

    private:
        const Connection* conn_;
        bool outer_ = false;
    };
    UseGuard Use() const { return UseGuard(this); }

private:
    struct Cached {
        std::string sql;
        sqlite3_stmt* stmt;
        std::size_t bytes;  // SQLITE_STMTSTATUS_MEMUSED when prepared
        bool in_use;
    };
    using Lru = std::list<Cached>;  // most recently used first; nodes stay put, so Statement keeps &in_use
    // Finalizes unused entries from the least recently used end until `count` more statements and `bytes` more bytes
    // fit; entries in use stay.
    void MakeRoom(std::size_t count, std::size_t bytes);

    sqlite3* db_ = nullptr;
    std::size_t cache_capacity_;
    std::size_t cache_bytes_;
    Lru lru_;
    std::unordered_map<std::string_view, Lru::iterator> cache_;  // keys view Cached::sql
    std::atomic<std::size_t> cached_count_{0};
    std::atomic<std::size_t> cached_bytes_{0};
    mutable std::atomic<std::thread::id> user_{};
};

}  // namespace syncline::storage
