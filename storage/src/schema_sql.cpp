#include "schema_sql.hpp"

#include <cstdio>

namespace syncline::storage {
namespace {

// SQLite's json_object() takes at most 127 arguments (SQLITE_MAX_FUNCTION_ARG): build wide rows in chunks of 60
// fields merged with json_patch, so tables of any width capture their old row.
constexpr std::size_t kJsonObjectChunk = 60;

std::string OldRowJson(const Schema& schema) {
    std::vector<std::string> chunks;
    std::string current;
    std::size_t in_chunk = 0;
    for (const auto& f : schema.fields()) {
        if (in_chunk == kJsonObjectChunk) {
            chunks.push_back("json_object(" + current + ")");
            current.clear();
            in_chunk = 0;
        }
        if (!current.empty()) current += ", ";
        current += "'" + f.name + "', OLD." + Quote(f.name);
        ++in_chunk;
    }
    chunks.push_back("json_object(" + current + ")");
    std::string out = chunks[0];
    for (std::size_t i = 1; i < chunks.size(); ++i) out = "json_patch(" + out + ", " + chunks[i] + ")";
    return out;
}

}  // namespace

std::string Quote(const std::string& name) { return "\"" + name + "\""; }

std::string SqlType(const FieldSpec& field) {
    // Type names chosen for SQLite's affinity rules: DATETIME_TEXT and JSON_TEXT contain "TEXT" (text affinity, so
    // "2024" or "123" stay text) and no "INT"; BOOLEAN has numeric affinity and stores 0/1.
    switch (field.type) {
        case FieldType::kInteger:
            return "INTEGER";
        case FieldType::kReal:
            return "REAL";
        case FieldType::kText:
            return "TEXT";
        case FieldType::kBoolean:
            return "BOOLEAN";
        case FieldType::kDateTime:
            return "DATETIME_TEXT";
        case FieldType::kJson:
            return "JSON_TEXT";
    }
    return "TEXT";
}

std::string SqlLiteral(const Value& value) {
    switch (value.kind()) {
        case Value::Kind::kNull:
            return "NULL";
        case Value::Kind::kInteger:
            return std::to_string(value.AsInteger());
        case Value::Kind::kReal: {
            char buf[40];
            std::snprintf(buf, sizeof buf, "%.17g", value.AsReal());
            return buf;
        }
        case Value::Kind::kBoolean:
            return value.AsBoolean() ? "1" : "0";
        case Value::Kind::kText: {
            std::string out = "'";
            for (char c : value.AsText()) {
                out += c;
                if (c == '\'') out += '\'';
            }
            return out + "'";
        }
    }
    return "NULL";
}

std::string ColumnSql(const FieldSpec& field) {
    std::string sql = Quote(field.name) + " " + SqlType(field);
    if (field.primary_key) {
        sql += field.type == FieldType::kInteger ? " PRIMARY KEY AUTOINCREMENT" : " NOT NULL PRIMARY KEY";
        return sql;
    }
    if (!field.nullable) sql += " NOT NULL";
    if (field.default_value) sql += " DEFAULT " + SqlLiteral(*field.default_value);
    return sql;
}

std::string CreateTableSql(const Schema& schema) {
    std::string sql = "CREATE TABLE " + Quote(schema.storage_table()) + " (";
    for (std::size_t i = 0; i < schema.size(); ++i) {
        if (i) sql += ", ";
        sql += ColumnSql(schema.field(i));
    }
    return sql + ", " + Quote(kVersionColumn) + " INTEGER)";
}

std::string TombstoneTable(const Schema& schema) { return "_syncline_tombstones_" + schema.storage_table(); }

std::string TombstoneTableSql(const Schema& schema) {
    const std::string name = TombstoneTable(schema);
    const bool integer = schema.pk().type == FieldType::kInteger;
    return "CREATE TABLE IF NOT EXISTS " + Quote(name) + " (pk " +
           (integer ? "INTEGER PRIMARY KEY" : "NOT NULL PRIMARY KEY") + ", seq INTEGER NOT NULL)" +
           (integer ? "" : " WITHOUT ROWID") + ";" + "CREATE INDEX IF NOT EXISTS " + Quote(name + "_seq") + " ON " +
           Quote(name) + " (seq);";
}

std::vector<std::pair<std::string, std::string>> CaptureTriggers(const Schema& schema) {
    // The storage table in SQL and trigger names; the model's name in the feed (tbl), which events carry.
    const std::string& t = schema.storage_table();
    std::string pk = Quote(schema.pk().name);
    std::string insert =
        "INSERT INTO " + std::string(kChangesTable) + "(tbl, pk, op, old) VALUES ('" + schema.table() + "', ";
    // Right after each change, the row's version is that change's seq (last_insert_rowid() inside a trigger is the
    // row the trigger just inserted): in the row for a row that is there, in the tombstones for one that went.
    // A row that arrives ends the tombstone its key may have (text keys can be reused).
    auto version = [&](const std::string& key, bool arrives) {
        return "UPDATE " + Quote(t) + " SET " + Quote(kVersionColumn) + " = last_insert_rowid() WHERE " + pk + " = " +
               key + "; " +
               (arrives ? "DELETE FROM " + Quote(TombstoneTable(schema)) + " WHERE pk = " + key + "; " : "");
    };
    auto tombstone = [&](const std::string& key) {
        return "INSERT OR REPLACE INTO " + Quote(TombstoneTable(schema)) + " (pk, seq) VALUES (" + key +
               ", last_insert_rowid()); ";
    };
    // Updates of the declared columns only: the triggers' own update of the version column fires nothing, whether or
    // not recursive triggers are on.
    std::string columns;
    for (const auto& f : schema.fields()) columns += (columns.empty() ? "" : ", ") + Quote(f.name);
    std::string old_json = OldRowJson(schema);
    std::vector<std::pair<std::string, std::string>> triggers;
    auto add = [&](const std::string& suffix, const std::string& when, const std::string& body) {
        std::string name = "_syncline_" + suffix + "_" + t;
        triggers.emplace_back(name, "CREATE TRIGGER " + Quote(name) + " " + when + " ON " + Quote(t) +
                                        " FOR EACH ROW " + body);
    };
    add("ai", "AFTER INSERT", "BEGIN " + insert + "NEW." + pk + ", 1, NULL); " + version("NEW." + pk, true) + "END");
    add("au", "AFTER UPDATE OF " + columns,
        "WHEN OLD." + pk + " IS NEW." + pk + " BEGIN " + insert + "NEW." + pk + ", 2, " + old_json + "); " +
            version("NEW." + pk, false) + "END");
    // A write that changes the key itself is, for subscribers, the old row leaving and a new one arriving.
    add("auk", "AFTER UPDATE OF " + columns,
        "WHEN OLD." + pk + " IS NOT NEW." + pk + " BEGIN " + insert + "OLD." + pk + ", 3, " + old_json + "); " +
            tombstone("OLD." + pk) + insert + "NEW." + pk + ", 1, NULL); " + version("NEW." + pk, true) + "END");
    add("ad", "AFTER DELETE",
        "BEGIN " + insert + "OLD." + pk + ", 3, " + old_json + "); " + tombstone("OLD." + pk) + "END");
    return triggers;
}

std::string BookkeepingSql() {
    // seq is a rowid alias without AUTOINCREMENT (AUTOINCREMENT costs a third of the capture write rate, see
    // STACK_NOTES.md). A seq is still never reused because trimming always keeps the latest change.
    return "CREATE TABLE IF NOT EXISTS _syncline_changes ("
           "seq INTEGER PRIMARY KEY, tbl TEXT NOT NULL, pk NOT NULL, op INTEGER NOT NULL, old TEXT);"
           // No index on (tbl, pk): measured, it halves the captured write rate (benchmarks/README.md). A row's
           // version is kept in the row (kVersionColumn) or its tombstone, which trimming leaves alone.
           "CREATE TABLE IF NOT EXISTS _syncline_cursors (name TEXT PRIMARY KEY, seq INTEGER NOT NULL, "
           "updated_ms INTEGER NOT NULL);"
           "CREATE TABLE IF NOT EXISTS _syncline_trim_marks (at_ms INTEGER NOT NULL, seq INTEGER NOT NULL);"
           "CREATE TABLE IF NOT EXISTS _syncline_meta (key TEXT PRIMARY KEY, value);"
           // The database's epoch: versions are comparable only within one (a recreated or restored file has another).
           "INSERT OR IGNORE INTO _syncline_meta (key, value) VALUES ('epoch', lower(hex(randomblob(8))));"
           "CREATE TABLE IF NOT EXISTS _syncline_leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, "
           "expires_ms INTEGER NOT NULL);";
}

}  // namespace syncline::storage
