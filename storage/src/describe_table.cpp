// `"fields": "from_database"`: an existing table's columns as syncline fields, on either engine.
#include "describe_table.hpp"

#include <syncline/core/model/store.hpp>
#include <syncline/storage/backend.hpp>
#include <syncline/storage/database.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <filesystem>

#include "connection.hpp"
#include "postgres/pg_connection.hpp"

namespace syncline::storage {
namespace {

std::string Upper(std::string_view text) {
    std::string out(text);
    for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return out;
}

std::string Lower(std::string_view text) {
    std::string out(text);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::string_view Trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

// The value of literal text as a field of `type`, or nullopt when it cannot be one.
std::optional<Value> LiteralValue(const std::string& text, FieldType type, bool quoted) {
    switch (type) {
        case FieldType::kInteger: {
            char* end = nullptr;
            errno = 0;
            long long n = std::strtoll(text.c_str(), &end, 10);
            if (text.empty() || errno != 0 || *end != '\0') return std::nullopt;
            return Value(static_cast<std::int64_t>(n));
        }
        case FieldType::kReal: {
            char* end = nullptr;
            double d = std::strtod(text.c_str(), &end);
            if (text.empty() || *end != '\0') return std::nullopt;
            return Value(d);
        }
        case FieldType::kBoolean: {
            std::string l = Lower(text);
            if (l == "true" || l == "t" || l == "1") return Value(true);
            if (l == "false" || l == "f" || l == "0") return Value(false);
            return std::nullopt;
        }
        case FieldType::kDateTime:
            if (!quoted || !IsIsoDateTime(text)) return std::nullopt;
            return Value(text);
        case FieldType::kJson:
            if (!quoted || !IsValidJson(text)) return std::nullopt;
            return Value(text);
        case FieldType::kText:
            return Value(text);
    }
    return std::nullopt;
}

}  // namespace

std::optional<FieldType> SqliteFieldType(std::string_view declared) {
    const std::string t = Upper(declared);
    auto has = [&](const char* word) { return t.find(word) != std::string::npos; };
    if (has("JSON")) return FieldType::kJson;
    if (has("BOOL")) return FieldType::kBoolean;
    if (has("DATE") || has("TIME")) return FieldType::kDateTime;
    if (has("INT")) return FieldType::kInteger;
    if (has("CHAR") || has("CLOB") || has("TEXT")) return FieldType::kText;
    if (has("REAL") || has("FLOA") || has("DOUB") || has("NUMERIC") || has("DECIMAL")) return FieldType::kReal;
    return std::nullopt;
}

std::optional<std::size_t> DeclaredMaxLength(std::string_view declared) {
    const std::string t = Upper(declared);
    if (t.find("CHAR") == std::string::npos) return std::nullopt;
    auto open = t.find('('), close = t.find(')');
    if (open == std::string::npos || close == std::string::npos || close <= open + 1) return std::nullopt;
    std::string digits(Trim(std::string_view(t).substr(open + 1, close - open - 1)));
    if (digits.empty() || !std::all_of(digits.begin(), digits.end(), [](char c) { return std::isdigit(c); })) {
        return std::nullopt;
    }
    std::size_t n = std::strtoull(digits.c_str(), nullptr, 10);
    if (n == 0) return std::nullopt;
    return n;
}

std::optional<FieldType> PostgresFieldType(std::string_view data_type) {
    auto is = [&](std::initializer_list<const char*> names) {
        return std::any_of(names.begin(), names.end(), [&](const char* n) { return data_type == n; });
    };
    if (is({"smallint", "integer", "bigint"})) return FieldType::kInteger;
    if (is({"real", "double precision", "numeric"})) return FieldType::kReal;
    if (is({"boolean"})) return FieldType::kBoolean;
    if (is({"text", "character varying", "character", "uuid"})) return FieldType::kText;
    if (is({"timestamp with time zone", "timestamp without time zone", "date"})) return FieldType::kDateTime;
    if (is({"json", "jsonb"})) return FieldType::kJson;
    return std::nullopt;
}

DefaultDescription ParseDefault(std::string_view sql, FieldType type) {
    std::string_view s = Trim(sql);
    while (s.size() >= 2 && s.front() == '(' && s.back() == ')') s = Trim(s.substr(1, s.size() - 2));
    std::string text;
    bool quoted = false;
    if (!s.empty() && s.front() == '\'') {
        std::size_t i = 1;
        for (;; ++i) {
            if (i >= s.size()) return {std::nullopt, true};
            if (s[i] == '\'') {
                if (i + 1 < s.size() && s[i + 1] == '\'') {
                    text += '\'';
                    ++i;
                    continue;
                }
                break;
            }
            text += s[i];
        }
        std::string_view rest = Trim(s.substr(i + 1));
        // Only PostgreSQL's casts may follow a literal ('abc'::character varying).
        if (!rest.empty() && rest.rfind("::", 0) != 0) return {std::nullopt, true};
        if (rest.find('(') != std::string_view::npos && rest.find("character") == std::string_view::npos &&
            rest.find("numeric") == std::string_view::npos) {
            return {std::nullopt, true};
        }
        quoted = true;
    } else {
        std::string_view bare = s.substr(0, s.find("::"));
        bare = Trim(bare);
        while (bare.size() >= 2 && bare.front() == '(' && bare.back() == ')')
            bare = Trim(bare.substr(1, bare.size() - 2));
        text = std::string(bare);
        std::string l = Lower(text);
        if (l == "null") return {};
        bool number = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
            return std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '+' || c == '.' || c == 'e' ||
                   c == 'E';
        });
        if (!number && l != "true" && l != "false") return {std::nullopt, true};
        if (type == FieldType::kText && !number) return {std::nullopt, true};
    }
    std::optional<Value> value = LiteralValue(text, type, quoted || type == FieldType::kText);
    if (!value) return {std::nullopt, true};
    return {std::move(value), false};
}

std::vector<FieldSpec> FieldsFromColumns(const std::string& where, const std::vector<ColumnDescription>& columns,
                                         bool postgres) {
    std::vector<FieldSpec> fields;
    std::size_t keys = 0;
    for (const auto& c : columns) {
        if (c.primary_key) ++keys;
    }
    if (keys == 0) {
        throw StoreError(StoreErrc::kSchema, where +
                                                 " has no primary key; syncline serves tables with a one-column "
                                                 "primary key");
    }
    if (keys > 1) {
        throw StoreError(StoreErrc::kSchema,
                         where + " has a composite primary key; syncline serves tables with a one-column primary key");
    }
    for (const auto& c : columns) {
        if (c.name == "_syncline_version") continue;
        std::optional<FieldType> type = postgres ? PostgresFieldType(c.type) : SqliteFieldType(c.type);
        if (!type) {
            throw StoreError(StoreErrc::kSchema, where + ", column \"" + c.name + "\": type \"" + c.type +
                                                     "\" is not supported (integer, real, numeric, boolean, text, "
                                                     "varchar, char, uuid, timestamp, date, json types are)");
        }
        FieldSpec f;
        f.name = c.name;
        f.type = *type;
        f.primary_key = c.primary_key;
        f.nullable = !c.not_null && !c.primary_key;
        if (f.type == FieldType::kText) f.max_length = postgres ? c.max_length : DeclaredMaxLength(c.type);
        if (c.identity) {
            f.database_default = true;
        } else if (c.default_sql) {
            DefaultDescription d = ParseDefault(*c.default_sql, f.type);
            f.database_default = d.computed;
            f.default_value = d.value;
            if (f.default_value && f.default_value->kind() == Value::Kind::kText && f.default_value->AsText().empty()) {
                f.blank = true;  // the database's own default is the empty text: it must be allowed
            }
        }
        if (postgres && c.type == "uuid") f.column_type = "uuid";  // compared and written as uuid, not text
        if (f.primary_key && f.type == FieldType::kInteger) {
            // The database assigns an integer key only when it has a way to: an identity or a computed default
            // (serial's nextval) on PostgreSQL, the rowid on SQLite (a column declared exactly INTEGER PRIMARY KEY is
            // its alias). Any other integer key, `id integer PRIMARY KEY` on PostgreSQL say, is the writer's to give.
            const bool assigned = postgres ? f.database_default : Upper(Trim(c.type)) == "INTEGER";
            f.supplied_key = !assigned;
            f.database_default = false;
        } else if (f.primary_key && !postgres) {
            // SQLite reads an inserted row back by the key it was given: a text key is always supplied.
            f.database_default = false;
        }
        // A text key on PostgreSQL with a computed default (gen_random_uuid()) keeps database_default: the insert may
        // leave it out, and reads the key the database chose back with RETURNING.
        fields.push_back(std::move(f));
    }
    return fields;
}

namespace {

std::vector<ColumnDescription> SqliteColumns(const std::string& path, const std::string& table) {
    if (!std::filesystem::exists(path)) {
        throw StoreError(StoreErrc::kSchema,
                         "table \"" + table + "\" does not exist: there is no database file \"" + path + "\"");
    }
    DatabaseOptions options;
    options.path = path;
    Connection conn(path, false, options);
    Statement st = conn.Prepare("SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1)");
    st.BindText(1, table);
    std::vector<ColumnDescription> out;
    while (st.Step()) {
        ColumnDescription c;
        c.name = st.ColumnText(0);
        c.type = st.ColumnText(1);
        c.not_null = st.ColumnInt(2) != 0;
        if (!st.ColumnIsNull(3)) c.default_sql = st.ColumnText(3);
        c.primary_key = st.ColumnInt(4) != 0;
        out.push_back(std::move(c));
    }
    return out;
}

std::vector<ColumnDescription> PostgresColumns(const std::string& url, const std::string& table) {
    pg::Connection conn(url);
    pg::Result r = conn.Query(
        "SELECT c.column_name, c.data_type, c.is_nullable = 'NO', c.column_default, c.is_identity = 'YES', "
        "c.character_maximum_length, EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indisprimary AND a.attname = c.column_name AND i.indrelid = "
        "to_regclass(quote_ident(current_schema()) || '.' || quote_ident($1))) "
        "FROM information_schema.columns c WHERE c.table_schema = current_schema() AND c.table_name = $1 "
        "ORDER BY c.ordinal_position",
        {table});
    std::vector<ColumnDescription> out;
    for (int i = 0; i < r.rows(); ++i) {
        ColumnDescription c;
        c.name = r.Text(i, 0);
        c.type = r.Text(i, 1);
        c.not_null = r.Text(i, 2)[0] == 't';
        if (!r.IsNull(i, 3)) c.default_sql = r.Text(i, 3);
        c.identity = r.Text(i, 4)[0] == 't';
        if (!r.IsNull(i, 5)) c.max_length = static_cast<std::size_t>(r.Int(i, 5));
        c.primary_key = r.Text(i, 6)[0] == 't';
        out.push_back(std::move(c));
    }
    return out;
}

}  // namespace

std::vector<FieldSpec> DescribeTable(const std::string& database, const std::string& table) {
    const bool postgres = IsPostgresUrl(database);
    std::vector<ColumnDescription> columns =
        postgres ? PostgresColumns(database, table) : SqliteColumns(database, table);
    if (columns.empty()) {
        throw StoreError(StoreErrc::kSchema, "table \"" + table +
                                                 "\" does not exist in the database (a model with \"fields\": "
                                                 "\"from_database\" serves an existing table)");
    }
    return FieldsFromColumns("table \"" + table + "\"", columns, postgres);
}

}  // namespace syncline::storage
