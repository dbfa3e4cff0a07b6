// Migrations: compare each table with its schema (pragma_table_info), create what is missing, refuse with kSchema what
// cannot be reconciled without losing or inventing data, keep the capture triggers in step with the schema, and record
// the schema version. See migrations.hpp for the entry points and Database::Open for the transaction around them.
#include "migrations.hpp"

#include <syncline/storage/database.hpp>

#include <algorithm>
#include <cctype>
#include <optional>
#include <string>

#include "connection.hpp"
#include "describe_table.hpp"
#include "schema_sql.hpp"

namespace syncline::storage {
namespace {

std::string Upper(std::string s) {
    for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
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

std::string JoinedFingerprint(const std::vector<Schema>& models) {
    std::vector<std::string> parts;
    for (const auto& s : models) parts.push_back(s.Fingerprint());
    std::sort(parts.begin(), parts.end());
    std::string out;
    for (const auto& p : parts) out += p + "\n";
    return out;
}

}  // namespace

bool MigrateTable(Connection& conn, const Schema& schema) {
    const std::string& t = schema.storage_table();
    std::vector<ColumnInfo> columns = TableInfo(conn, t);
    bool changed = false;
    if (columns.empty()) {
        conn.Exec(CreateTableSql(schema));
        changed = true;
    } else {
        auto conflict = [&](const std::string& column, const std::string& why) {
            throw StorageError(StoreErrc::kSchema, "table \"" + t + "\", column \"" + column + "\": " + why);
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
            // An existing table (a Django app's, say) may declare the type in its own words: varchar(200), bool,
            // datetime. They serve the field when they map to its type as "fields": "from_database" reads them.
            if (col->type != SqlType(f) && SqliteFieldType(col->type) != f.type) {
                conflict(f.name, "the database has type " + col->type + ", the schema declares " +
                                     std::string(FieldTypeName(f.type)) + " (" + SqlType(f) + ")");
            }
            if (col->pk != f.primary_key) conflict(f.name, "the primary key differs from the database's");
            if (!f.primary_key && col->notnull != !f.nullable) {
                conflict(f.name, col->notnull ? "the database column is NOT NULL, the schema allows null"
                                              : "the database column allows null, the schema does not");
            }
            if (!f.primary_key && col->notnull && col->has_default && !f.default_value && !f.database_default) {
                conflict(f.name, "the schema dropped the default of a NOT NULL column");
            }
        }
        for (const auto& col : columns) {
            if (!schema.FieldIndex(col.name) && col.notnull && !col.has_default && !col.pk) {
                conflict(col.name,
                         "the column is NOT NULL without a default but the schema does not declare it, so "
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
            throw StorageError(StoreErrc::kSchema,
                               "table \"" + t + "\", column \"" + f.name + "\": cannot make it unique: " + e.what());
        }
    }
    return changed;
}

void SyncVersionColumn(Connection& conn, const Schema& schema) {
    conn.Exec(TombstoneTableSql(schema));
    std::vector<ColumnInfo> columns = TableInfo(conn, schema.storage_table());
    if (std::any_of(columns.begin(), columns.end(), [](const ColumnInfo& c) { return c.name == kVersionColumn; })) {
        return;
    }
    conn.Exec("ALTER TABLE " + Quote(schema.storage_table()) + " ADD COLUMN " + Quote(kVersionColumn) + " INTEGER");
    {
        Statement rows = conn.Prepare("SELECT 1 FROM " + Quote(schema.storage_table()) + " LIMIT 1");
        if (!rows.Step()) return;  // an empty table: every version from now on is captured
    }
    Statement floor =
        conn.Prepare("INSERT OR REPLACE INTO _syncline_meta (key, value) SELECT ?1, coalesce(max(seq), 0) FROM " +
                     std::string(kChangesTable));
    const std::string key = "floor:" + schema.table();  // bound without a copy
    floor.BindText(1, key);
    floor.Step();
}

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

}  // namespace syncline::storage
