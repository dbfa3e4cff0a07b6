#include "pg_connection.hpp"

#include <syncline/core/model/store.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace syncline::storage::pg {
namespace {

constexpr std::size_t kSqlExcerpt = 200;

std::string Excerpt(std::string_view sql) {
    if (sql.size() <= kSqlExcerpt) return std::string(sql);
    std::size_t cut = kSqlExcerpt;
    while (cut > 0 && (static_cast<unsigned char>(sql[cut]) & 0xC0) == 0x80) --cut;
    return std::string(sql.substr(0, cut)) + "... (" + std::to_string(sql.size()) + " bytes)";
}

// libpq's messages span lines ("...failed: Connection refused\n\tIs the server running..."): one line for a log.
std::string OneLine(std::string text) {
    std::string out;
    for (char c : text) {
        if (c == '\n' || c == '\t' || c == '\r') {
            if (!out.empty() && out.back() != ' ') out += ' ';
        } else {
            out += c;
        }
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
}

std::string Field(const PGresult* res, int code) {
    const char* text = res ? PQresultErrorField(res, code) : nullptr;
    return text ? text : "";
}

// PostgreSQL words a unique violation "duplicate key value violates unique constraint ..." with the detail "Key
// (title)=(...) already exists."; consumers read SQLite's wording ("UNIQUE constraint failed: posts.title"), so the
// message says it that way too (the detail's key value, which may be long or private, is left out).
std::string UniqueMessage(const PGresult* res) {
    const std::string detail = Field(res, PG_DIAG_MESSAGE_DETAIL);
    const std::string table = Field(res, PG_DIAG_TABLE_NAME);
    auto open = detail.find("Key (");
    auto close = detail.find(")=(");
    if (open == std::string::npos || close == std::string::npos || close < open) return "";
    std::string columns = detail.substr(open + 5, close - open - 5);
    std::string out = "UNIQUE constraint failed: ";
    std::size_t start = 0;
    while (start <= columns.size()) {
        std::size_t comma = columns.find(", ", start);
        if (comma == std::string::npos) comma = columns.size();
        out += (start ? ", " : "") + table + "." + columns.substr(start, comma - start);
        start = comma + 2;
    }
    return out;
}

}  // namespace

Param ToParam(const Value& value) {
    switch (value.kind()) {
        case Value::Kind::kNull:
            return std::nullopt;
        case Value::Kind::kInteger:
            return std::to_string(value.AsInteger());
        case Value::Kind::kReal: {
            char buf[40];
            std::snprintf(buf, sizeof buf, "%.17g", value.AsReal());
            return std::string(buf);
        }
        case Value::Kind::kBoolean:
            return std::string(value.AsBoolean() ? "true" : "false");
        case Value::Kind::kText:
            return value.AsText();
    }
    return std::nullopt;
}

Value FromText(const char* text, FieldType type) {
    switch (type) {
        case FieldType::kInteger:
            return Value(static_cast<std::int64_t>(std::strtoll(text, nullptr, 10)));
        case FieldType::kReal:
            return Value(std::strtod(text, nullptr));
        case FieldType::kBoolean:
            return Value(text[0] == 't' || text[0] == '1');
        default:
            return Value(std::string(text));
    }
}

std::string RedactedUrl(std::string_view url) {
    auto scheme = url.find("://");
    if (scheme == std::string_view::npos) return std::string(url);
    auto at = url.find('@', scheme + 3);
    auto slash = url.find('/', scheme + 3);
    if (at == std::string_view::npos || (slash != std::string_view::npos && slash < at)) {
        // No user info; a password may still come as a query parameter.
        std::string out(url);
        auto pw = out.find("password=");
        if (pw != std::string::npos) {
            auto end = out.find('&', pw);
            out.replace(pw + 9, end == std::string::npos ? std::string::npos : end - pw - 9, "***");
        }
        return out;
    }
    auto colon = url.find(':', scheme + 3);
    std::string out(url);
    if (colon != std::string_view::npos && colon < at) out.replace(colon + 1, at - colon - 1, "***");
    auto pw = out.find("password=");
    if (pw != std::string::npos) {
        auto end = out.find('&', pw);
        out.replace(pw + 9, end == std::string::npos ? std::string::npos : end - pw - 9, "***");
    }
    return out;
}

std::int64_t Result::Int(int row, int col) const {
    return IsNull(row, col) ? 0 : std::strtoll(Text(row, col), nullptr, 10);
}

Row Result::GetRow(const Schema& schema, int row, int first) const {
    Row out;
    out.reserve(schema.size());
    for (std::size_t i = 0; i < schema.size(); ++i)
        out.push_back(Get(row, first + static_cast<int>(i), schema.field(i).type));
    return out;
}

std::int64_t Result::Affected() const {
    const char* n = PQcmdTuples(res_.get());
    return n && *n ? std::strtoll(n, nullptr, 10) : 0;
}

std::string WithConnectionDefaults(const std::string& url) {
    // Without them libpq waits for an unreachable server as long as the OS does (minutes), and notices a peer that
    // vanished without closing the connection after the OS's keepalive idle time (two hours): a request would hang.
    std::string out = url;
    for (const char* setting :
         {"connect_timeout=5", "keepalives_idle=10", "keepalives_interval=5", "keepalives_count=3"}) {
        const std::string key = std::string(setting).substr(0, std::string(setting).find('=') + 1);
        if (out.find(key) != std::string::npos) continue;  // the URL sets it
        out += (out.find('?') == std::string::npos ? "?" : "&") + std::string(setting);
    }
    return out;
}

Connection::Connection(std::string url) : url_(std::move(url)) { EnsureConnected(); }

Connection::~Connection() {
    if (conn_) PQfinish(conn_);
}

void Connection::EnsureConnected() {
    if (conn_ && PQstatus(conn_) == CONNECTION_OK) return;
    if (conn_) {
        PQfinish(conn_);
        conn_ = nullptr;
    }
    in_transaction_ = false;
    ForgetStatements();  // they lived in the session that is gone
    conn_ = PQconnectdb(url_.c_str());
    if (PQstatus(conn_) != CONNECTION_OK) {
        std::string message = OneLine(PQerrorMessage(conn_));
        PQfinish(conn_);
        conn_ = nullptr;
        throw StoreError(StoreErrc::kUnavailable, "cannot connect to PostgreSQL at " +
                                                      RedactedUrl(url_.substr(0, url_.find('?'))) + ": " + message);
    }
    // Notices (e.g. "relation already exists, skipping") are not errors; keep them off stderr.
    PQsetNoticeProcessor(
        conn_, [](void*, const char*) {}, nullptr);
}

void Connection::Fail(PGresult* res, const std::string& context) {
    const std::string state = Field(res, PG_DIAG_SQLSTATE);
    std::string message = OneLine(res ? PQresultErrorMessage(res) : PQerrorMessage(conn_));
    const bool broken = PQstatus(conn_) != CONNECTION_OK;
    StoreErrc kind = StoreErrc::kIo;
    if (broken || state.rfind("08", 0) == 0 || state == "57P01" || state == "57P02" || state == "57P03") {
        kind = StoreErrc::kUnavailable;
    } else if (state == "23505") {
        std::string unique = UniqueMessage(res);
        if (!unique.empty()) message = unique;
        kind = StoreErrc::kConstraint;
    } else if (state.rfind("23", 0) == 0 || state.rfind("22", 0) == 0) {
        kind = StoreErrc::kConstraint;
    } else if (state == "40001" || state == "40P01" || state == "55P03" || state == "57014") {
        kind = StoreErrc::kBusy;
    } else if (state.rfind("42", 0) == 0) {
        kind = StoreErrc::kSchema;
    }
    if (res) PQclear(res);
    if (broken) in_transaction_ = false;
    throw StoreError(kind, message + " (" + context + ")");
}

Result Connection::Check(PGresult* res, const std::string& sql) {
    ExecStatusType status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return Result(res);
    Fail(res, "in: " + Excerpt(sql));
}

void Connection::ForgetStatements() {
    statements_.clear();
    uses_.clear();
}

PGresult* Connection::ExecPrepared(const std::string& sql, const std::vector<const char*>& values) {
    const int n = static_cast<int>(values.size());
    auto found = statements_.find(sql);
    if (found == statements_.end()) {
        if (statements_.size() >= kStatementCacheSize && !in_transaction_) {
            // The least recently used goes (DEALLOCATE outside a transaction: an aborted one refuses every command).
            auto oldest = statements_.find(uses_.back());
            PGresult* gone = PQexec(conn_, ("DEALLOCATE " + oldest->second.name).c_str());
            PQclear(gone);
            statements_.erase(oldest);
            uses_.pop_back();
        }
        std::string name = "syncline_" + std::to_string(next_statement_++);
        PGresult* prepared = PQprepare(conn_, name.c_str(), sql.c_str(), n, nullptr);
        if (!prepared || PQresultStatus(prepared) != PGRES_COMMAND_OK) return prepared;
        PQclear(prepared);
        uses_.push_front(sql);
        found = statements_.emplace(sql, Statement{std::move(name), uses_.begin()}).first;
    } else {
        uses_.splice(uses_.begin(), uses_, found->second.use);
    }
    return PQexecPrepared(conn_, found->second.name.c_str(), n, values.data(), nullptr, nullptr, 0);
}

Result Connection::Query(const std::string& sql, const std::vector<Param>& params) {
    if (!in_transaction_) EnsureConnected();
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
    PGresult* res = ExecPrepared(sql, values);
    // A connection the server dropped since its last use (a restart, an idle timeout) shows only now. A read outside
    // a transaction is retried once on a new connection; a write is not (it may have committed before the drop), so
    // its caller sees kUnavailable.
    if (PQstatus(conn_) != CONNECTION_OK && !in_transaction_ && sql.rfind("SELECT", 0) == 0) {
        PQclear(res);
        EnsureConnected();
        res = ExecPrepared(sql, values);
    } else if (res && PQresultStatus(res) == PGRES_FATAL_ERROR && !in_transaction_) {
        // The session lost the statement (26000: a pooler gave us another session, or DISCARD ran) or its plan no
        // longer fits the table (0A000, "cached plan must not change result type"): run it unprepared, once.
        const std::string state = Field(res, PG_DIAG_SQLSTATE);
        if (state == "26000" || state == "0A000") {
            PQclear(res);
            ForgetStatements();
            res = PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                               nullptr, 0);
        }
    }
    return Check(res, sql);
}

void Connection::Exec(const std::string& sql) {
    if (!in_transaction_) EnsureConnected();
    Check(PQexec(conn_, sql.c_str()), sql);
}

void Connection::Begin(const char* sql) {
    Exec(sql);
    in_transaction_ = true;
}

void Connection::Commit() {
    try {
        Exec("COMMIT");
    } catch (...) {
        in_transaction_ = false;
        throw;
    }
    in_transaction_ = false;
}

void Connection::Rollback() {
    in_transaction_ = false;
    if (conn_ && PQstatus(conn_) == CONNECTION_OK) Check(PQexec(conn_, "ROLLBACK"), "ROLLBACK");
}

}  // namespace syncline::storage::pg
