// Model rows on PostgreSQL: SELECT/INSERT/UPDATE/DELETE ... RETURNING, and the WHERE builder. Filters match what
// core's in-memory matcher (RowMatches) matches: `ne` keeps nulls (IS DISTINCT FROM), text lookups compare bytes and
// fold ASCII letters only, whatever the database's locale; an operand that cannot be a value of its column matches
// nothing instead of failing.
#include "pg_ops.hpp"

#include <syncline/core/model/store.hpp>

#include <cmath>
#include <cstdlib>
#include <string>

#include "../write_values.hpp"
#include "pg_connection.hpp"
#include "pg_schema.hpp"

namespace syncline::storage::pg {
namespace {

class Params {
public:
    // Adds a parameter and returns its placeholder ("$3").
    std::string Add(Param p) {
        values_.push_back(std::move(p));
        return "$" + std::to_string(values_.size());
    }
    const std::vector<Param>& values() const { return values_; }

private:
    std::vector<Param> values_;
};

// The operand as a value of the column's type, or nullopt when no value of that column can equal it (then the
// condition is false, as SQLite's comparison of an integer column with 'abc' is).
std::optional<Value> AsColumnValue(const FieldSpec& field, const Value& value) {
    if (value.IsNull()) return value;
    switch (field.type) {
        case FieldType::kInteger:
            if (value.kind() == Value::Kind::kInteger) return value;
            if (value.kind() == Value::Kind::kBoolean) return Value(static_cast<std::int64_t>(value.AsBoolean()));
            if (value.kind() == Value::Kind::kReal) {
                double d = value.AsReal();
                if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.2e18) {
                    return Value(static_cast<std::int64_t>(d));
                }
                return std::nullopt;
            }
            if (value.kind() == Value::Kind::kText) {
                const std::string& t = value.AsText();
                char* end = nullptr;
                errno = 0;
                long long n = std::strtoll(t.c_str(), &end, 10);
                if (t.empty() || errno != 0 || *end != '\0') return std::nullopt;
                return Value(static_cast<std::int64_t>(n));
            }
            return std::nullopt;
        case FieldType::kReal:
            if (value.kind() == Value::Kind::kReal) return value;
            if (value.kind() == Value::Kind::kInteger) return Value(static_cast<double>(value.AsInteger()));
            if (value.kind() == Value::Kind::kText) {
                const std::string& t = value.AsText();
                char* end = nullptr;
                double d = std::strtod(t.c_str(), &end);
                if (t.empty() || *end != '\0') return std::nullopt;
                return Value(d);
            }
            return std::nullopt;
        case FieldType::kBoolean:
            if (value.kind() == Value::Kind::kBoolean) return value;
            if (value.kind() == Value::Kind::kInteger && (value.AsInteger() == 0 || value.AsInteger() == 1)) {
                return Value(value.AsInteger() == 1);
            }
            return std::nullopt;
        default:
            if (field.column_type == "uuid") {
                // A uuid column holds UUIDs only: any other text, or a number, equals none of them.
                if (value.kind() != Value::Kind::kText) return std::nullopt;
                std::optional<std::string> uuid = CanonicalUuid(value.AsText());
                if (!uuid) return std::nullopt;
                return Value(std::move(*uuid));
            }
            // PostgreSQL text holds no NUL: no stored value can equal one that has it.
            if (value.kind() == Value::Kind::kText) {
                if (value.AsText().find('\0') != std::string::npos) return std::nullopt;
                return value;
            }
            return Value(*ToParam(value));
    }
}

// Values PostgreSQL would refuse, refused as DRF refuses them (a 400 naming the field, not a database error): a NUL in
// text (libpq would also cut the value at it, never stored cut), and a value of a uuid column that is not a UUID
// (DRF's UUIDField). A UUID is written in its canonical spelling, as the column gives it back.
void RefuseUnstorable(const Schema& schema, std::vector<std::pair<std::size_t, Value>>& columns) {
    std::vector<std::pair<std::string, std::string>> errors;
    for (auto& [index, value] : columns) {
        const FieldSpec& field = schema.field(index);
        if (value.kind() == Value::Kind::kText && value.AsText().find('\0') != std::string::npos) {
            errors.emplace_back(field.name, "Null characters are not allowed.");
        } else if (field.column_type == "uuid" && !value.IsNull()) {
            std::optional<std::string> uuid =
                value.kind() == Value::Kind::kText ? CanonicalUuid(value.AsText()) : std::nullopt;
            if (uuid) {
                value = Value(std::move(*uuid));
            } else {
                errors.emplace_back(field.name, "Must be a valid UUID.");
            }
        }
    }
    if (errors.empty()) return;
    std::string message = "invalid values for \"" + schema.table() + "\":";
    for (const auto& [field, text] : errors) message += " " + field + ": " + text;
    throw StoreError(StoreErrc::kInvalid, message, std::move(errors));
}

std::string ArrayType(const FieldSpec& field) { return PgType(field) + "[]"; }

// A PostgreSQL array literal of values (each double-quoted with \ and " escaped); it travels as one parameter.
std::string ArrayLiteral(const std::vector<Value>& values) {
    std::string out = "{";
    bool first = true;
    for (const Value& v : values) {
        if (!first) out += ',';
        first = false;
        Param p = ToParam(v);
        if (!p) {
            out += "NULL";
            continue;
        }
        out += '"';
        for (char c : *p) {
            if (c == '"' || c == '\\') out += '\\';
            out += c;
        }
        out += '"';
    }
    return out + "}";
}

// The text a text lookup sees of a column (LookupText in core): text as it is, integers in decimal, booleans as 1/0.
std::string LookupColumn(const FieldSpec& field, const std::string& col) {
    switch (field.type) {
        case FieldType::kBoolean:
            return "CASE WHEN " + col + " THEN '1' ELSE '0' END";
        case FieldType::kInteger:
        case FieldType::kReal:
            return col + "::text";
        case FieldType::kDateTime:
            return "(to_json(" + col + ") #>> '{}')";  // as it reads: a timestamp column as ISO 8601 text
        default:
            return field.column_type.empty() ? col : col + "::text";  // a uuid column as it reads
    }
}

std::string FoldAscii(const std::string& expr) {
    return "translate(" + expr + ", 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')";
}

std::string WhereSql(const Schema& schema, const std::vector<Filter>& filters, Params& params) {
    std::string sql;
    for (const auto& filter : filters) {
        auto index = schema.FieldIndex(filter.field);
        if (!index) {
            throw StoreError(StoreErrc::kSchema,
                             "unknown field \"" + filter.field + "\" in a filter on \"" + schema.table() + "\"");
        }
        const FieldSpec& field = schema.field(*index);
        const std::string col = Quote(filter.field);
        std::string cond;
        // A datetime operand takes its column's type: text for syncline's own tables, timestamptz (compared as
        // instants, the ISO 8601 text parsed) or date for an existing table's.
        const bool datetime = field.type == FieldType::kDateTime;
        auto typed = [&](const Value& v) {
            return params.Add(ToParam(v)) + (datetime ? std::string() : "::" + PgType(field));
        };
        switch (filter.op) {
            case FilterOp::kExact:
            case FilterOp::kNe: {
                const bool ne = filter.op == FilterOp::kNe;
                if (filter.value.IsNull()) {
                    cond = col + (ne ? " IS NOT NULL" : " IS NULL");
                    break;
                }
                std::optional<Value> v = AsColumnValue(field, filter.value);
                if (!v) {
                    cond = ne ? "TRUE" : "FALSE";
                } else {
                    cond = col + (ne ? " IS DISTINCT FROM " : " = ") + typed(*v);
                }
                break;
            }
            case FilterOp::kLt:
            case FilterOp::kLte:
            case FilterOp::kGt:
            case FilterOp::kGte: {
                std::optional<Value> v = AsColumnValue(field, filter.value);
                if (!v || v->IsNull()) {
                    cond = "FALSE";
                    break;
                }
                const char* op = filter.op == FilterOp::kLt    ? " < "
                                 : filter.op == FilterOp::kLte ? " <= "
                                 : filter.op == FilterOp::kGt  ? " > "
                                                               : " >= ";
                cond = col + op + typed(*v);
                break;
            }
            case FilterOp::kIn: {
                std::vector<Value> values;
                for (const Value& raw : filter.values) {
                    std::optional<Value> v = AsColumnValue(field, raw);
                    if (v && !v->IsNull()) values.push_back(std::move(*v));
                }
                if (values.empty()) {
                    cond = "FALSE";
                } else {
                    cond = col + " = ANY(" + params.Add(ArrayLiteral(values)) +
                           (datetime ? std::string() : "::" + ArrayType(field)) + ")";
                }
                break;
            }
            case FilterOp::kIsNull: {
                bool is_null =
                    filter.value.kind() == Value::Kind::kBoolean ? filter.value.AsBoolean() : !filter.value.IsNull();
                cond = col + (is_null ? " IS NULL" : " IS NOT NULL");
                break;
            }
            case FilterOp::kContains:
            case FilterOp::kIContains:
            case FilterOp::kStartsWith: {
                std::optional<std::string> needle = LookupText(filter.value);
                if (!needle || needle->find('\0') != std::string::npos) {
                    cond = "FALSE";  // a null operand matches nothing; no PostgreSQL text holds a NUL
                    break;
                }
                std::string hay = LookupColumn(field, col);
                std::string p = params.Add(*needle) + "::text";
                if (filter.op == FilterOp::kIContains) {
                    hay = FoldAscii(hay);
                    p = FoldAscii(p);
                }
                cond = "strpos(" + hay + ", " + p + ")" + (filter.op == FilterOp::kStartsWith ? " = 1" : " > 0");
                break;
            }
        }
        sql += sql.empty() ? " WHERE " : " AND ";
        sql += cond;
    }
    return sql;
}

std::string Returning(const Schema& schema) { return " RETURNING " + SelectList(schema); }

}  // namespace

std::optional<std::string> KeyParam(const Schema& schema, const Value& pk) {
    std::optional<Value> v = AsColumnValue(schema.pk(), pk);
    if (!v || v->IsNull()) return std::nullopt;
    return ToParam(*v);
}

std::optional<Row> GetRow(Connection& conn, const Schema& schema, std::string_view field, const Value& value) {
    auto index = schema.FieldIndex(field);
    if (!index) {
        throw StoreError(StoreErrc::kSchema,
                         "unknown lookup field \"" + std::string(field) + "\" on \"" + schema.table() + "\"");
    }
    std::optional<Value> v = AsColumnValue(schema.field(*index), value);
    if (!v || v->IsNull()) return std::nullopt;
    Result r = conn.Query("SELECT " + SelectList(schema) + " FROM " + Quote(schema.storage_table()) + " WHERE " +
                              Quote(std::string(field)) + " = $1::" + PgType(schema.field(*index)) + " LIMIT 1",
                          {ToParam(*v)});
    if (r.rows() == 0) return std::nullopt;
    return r.GetRow(schema, 0);
}

std::vector<Row> ListRows(Connection& conn, const Schema& schema, const Query& query) {
    Params params;
    std::string sql = "SELECT " + SelectList(schema) + " FROM " + Quote(schema.storage_table()) +
                      WhereSql(schema, query.filters, params) + " ORDER BY ";
    for (const auto& order : query.ordering) {
        if (!schema.FieldIndex(order.field)) {
            throw StoreError(StoreErrc::kSchema,
                             "unknown field \"" + order.field + "\" in the ordering of \"" + schema.table() + "\"");
        }
        // NULLS FIRST ascending, as SQLite orders them.
        sql += Quote(order.field) + (order.descending ? " DESC NULLS LAST, " : " ASC NULLS FIRST, ");
    }
    sql += Quote(schema.pk().name);
    if (query.limit) sql += " LIMIT " + params.Add(std::to_string(std::max<std::int64_t>(*query.limit, 0)));
    if (query.offset > 0) sql += " OFFSET " + params.Add(std::to_string(query.offset));
    Result r = conn.Query(sql, params.values());
    std::vector<Row> rows;
    rows.reserve(static_cast<std::size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i) rows.push_back(r.GetRow(schema, i));
    return rows;
}

std::int64_t CountRows(Connection& conn, const Schema& schema, const std::vector<Filter>& filters) {
    Params params;
    Result r = conn.Query("SELECT count(*) FROM " + Quote(schema.storage_table()) + WhereSql(schema, filters, params),
                          params.values());
    return r.Int(0, 0);
}

Row InsertRow(Connection& conn, const Schema& schema, const Assignments& values) {
    auto columns = InsertColumns(schema, values);
    RefuseUnstorable(schema, columns);
    Params params;
    std::string names, placeholders;
    for (const auto& [index, value] : columns) {
        names += (names.empty() ? "" : ", ") + Quote(schema.field(index).name);
        // No cast: the parameter takes its column's type, which for an existing table may be timestamptz, jsonb,
        // varchar or uuid where syncline's own tables have text (PgType).
        placeholders += (placeholders.empty() ? "" : ", ") + params.Add(ToParam(value));
    }
    std::string sql = "INSERT INTO " + Quote(schema.storage_table()) +
                      (columns.empty() ? " DEFAULT VALUES" : " (" + names + ") VALUES (" + placeholders + ")") +
                      Returning(schema);
    Result r = conn.Query(sql, params.values());
    if (r.rows() != 1) throw StoreError(StoreErrc::kIo, "insert into \"" + schema.table() + "\" left no row");
    return r.GetRow(schema, 0);
}

std::optional<Row> UpdateRow(Connection& conn, const Schema& schema, const Value& pk, const Assignments& values,
                             bool full) {
    auto columns = UpdateColumns(schema, values, full);
    RefuseUnstorable(schema, columns);
    std::optional<std::string> key = KeyParam(schema, pk);
    if (!key) return std::nullopt;
    if (columns.empty()) return GetRow(conn, schema, schema.pk().name, pk);
    Params params;
    std::string sql = "UPDATE " + Quote(schema.storage_table()) + " SET ";
    for (std::size_t i = 0; i < columns.size(); ++i) {
        const FieldSpec& f = schema.field(columns[i].first);
        sql += (i ? ", " : "") + Quote(f.name) + " = " + params.Add(ToParam(columns[i].second));  // column's type
    }
    sql +=
        " WHERE " + Quote(schema.pk().name) + " = " + params.Add(*key) + "::" + PgType(schema.pk()) + Returning(schema);
    Result r = conn.Query(sql, params.values());
    if (r.rows() == 0) return std::nullopt;
    return r.GetRow(schema, 0);
}

bool DeleteRow(Connection& conn, const Schema& schema, const Value& pk) {
    std::optional<std::string> key = KeyParam(schema, pk);
    if (!key) return false;
    Result r = conn.Query("DELETE FROM " + Quote(schema.storage_table()) + " WHERE " + Quote(schema.pk().name) +
                              " = $1::" + PgType(schema.pk()),
                          {*key});
    return r.Affected() > 0;
}

}  // namespace syncline::storage::pg
