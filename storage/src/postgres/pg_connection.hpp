#pragma once
// One libpq connection and its results (private to storage's PostgreSQL backend). Text protocol: parameters and
// results travel as text and are converted by the declared field type, so one code path serves every column type.

#include <libpq-fe.h>

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <syncline/core/model/schema.hpp>
#include <syncline/core/model/value.hpp>

namespace syncline::storage::pg {

// A parameter as libpq takes it: text, or SQL NULL.
using Param = std::optional<std::string>;

// A value as the text PostgreSQL reads for a column of `type` (nullopt: NULL).
Param ToParam(const Value& value);
// The text of a result cell as a value of a field of `type`.
Value FromText(const char* text, FieldType type);

// The URL with syncline's connection defaults added where it sets none: connect_timeout=5 (seconds) and TCP keepalives
// (idle 10 s, interval 5 s, 3 probes), so an unreachable or vanished server is noticed in seconds.
std::string WithConnectionDefaults(const std::string& url);

// The URL with its password replaced by "***" (for messages and logs).
std::string RedactedUrl(std::string_view url);

// A query result; owns the PGresult.
class Result {
public:
    explicit Result(PGresult* res) : res_(res, &PQclear) {}
    int rows() const { return PQntuples(res_.get()); }
    int columns() const { return PQnfields(res_.get()); }
    bool IsNull(int row, int col) const { return PQgetisnull(res_.get(), row, col) != 0; }
    const char* Text(int row, int col) const { return PQgetvalue(res_.get(), row, col); }
    std::int64_t Int(int row, int col) const;
    Value Get(int row, int col, FieldType type) const {
        return IsNull(row, col) ? Value() : FromText(Text(row, col), type);
    }
    // Columns [first, first + schema.size()) of a row.
    Row GetRow(const Schema& schema, int row, int first = 0) const;
    // Rows affected by an INSERT, UPDATE or DELETE.
    std::int64_t Affected() const;

private:
    std::unique_ptr<PGresult, void (*)(PGresult*)> res_;
};

// A connection. Never used by two threads at once. Every failure throws StoreError: kConstraint for integrity and
// data errors (23xxx, 22xxx), kBusy for serialization failures, deadlocks and lock timeouts, kSchema for undefined
// objects, kUnavailable when the server cannot be reached or the connection broke (the next use reconnects), kIo
// otherwise. Messages name what failed and never carry the password or more than a short excerpt of SQL.
class Connection {
public:
    explicit Connection(std::string url);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // Runs one statement with parameters ($1, $2, ...). Reconnects first if the connection was lost (outside a
    // transaction only: a broken transaction is an error of its own). The statement is prepared on this connection
    // the first time its text is seen and executed by name after that (parsed and planned once per connection, not
    // per call), the kStatementCacheSize most recently used kept. When the server no longer has it (a pooler such as
    // PgBouncer in transaction mode hands out other sessions; a table changed its row type under a cached plan), the
    // cache is dropped and the statement runs unprepared (outside a transaction; inside one the error is the
    // transaction's).
    Result Query(const std::string& sql, const std::vector<Param>& params = {});
    static constexpr std::size_t kStatementCacheSize = 256;
    // Prepared statements held now.
    std::size_t prepared() const { return statements_.size(); }
    // Runs one or more statements without parameters.
    void Exec(const std::string& sql);
    // Transaction state, as this connection's user set it: Begin/Commit/Rollback run the statements and track it.
    void Begin(const char* sql = "BEGIN");
    void Commit();
    void Rollback();
    bool in_transaction() const { return in_transaction_; }

    PGconn* handle() { return conn_; }
    const std::string& url() const { return url_; }
    // Ensures the connection is up (reconnecting if it broke); throws kUnavailable when it cannot be.
    void EnsureConnected();

private:
    [[noreturn]] void Fail(PGresult* res, const std::string& context);
    Result Check(PGresult* res, const std::string& sql);
    // Executes `sql` through its prepared statement (preparing it first when new); nullptr results are failures of
    // libpq itself. `prepare_failed` is set when the statement could not be prepared (the result is that failure).
    PGresult* ExecPrepared(const std::string& sql, const std::vector<const char*>& values);
    void ForgetStatements();
    std::string url_;
    PGconn* conn_ = nullptr;
    bool in_transaction_ = false;
    struct Statement {
        std::string name;
        std::list<std::string>::iterator use;  // in uses_
    };
    std::unordered_map<std::string, Statement> statements_;  // by SQL text
    std::list<std::string> uses_;                             // SQL texts, most recently used first
    std::uint64_t next_statement_ = 0;
};

}  // namespace syncline::storage::pg
