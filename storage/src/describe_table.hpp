#pragma once
// Reading a model's fields from an existing table (`"fields": "from_database"`): the pieces both engines share, kept
// apart so unit tests can check the type and default mappings without a database. DescribeTable (backend.hpp) is the
// entry point.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <syncline/core/model/schema.hpp>

namespace syncline::storage {

// One column as the database describes it.
struct ColumnDescription {
    std::string name;
    std::string type;  // SQLite: the declared type; PostgreSQL: information_schema data_type
    bool not_null = false;
    std::optional<std::string> default_sql;  // the default's SQL text, when the column has one
    bool identity = false;                   // PostgreSQL: GENERATED ... AS IDENTITY
    std::optional<std::size_t> max_length;   // PostgreSQL: character_maximum_length
    bool primary_key = false;
};

// The field type of an SQLite declared type, by SQLite's affinity words (JSON -> json, BOOL -> boolean, DATE/TIME ->
// datetime, INT -> integer, CHAR/CLOB/TEXT -> text, REAL/FLOA/DOUB/NUMERIC/DECIMAL -> real); nullopt for anything
// else (BLOB, no type).
std::optional<FieldType> SqliteFieldType(std::string_view declared);

// The n of a declared type such as varchar(200) or CHARACTER(10); nullopt without one.
std::optional<std::size_t> DeclaredMaxLength(std::string_view declared);

// The field type of a PostgreSQL information_schema data_type; nullopt for the types syncline cannot serve.
std::optional<FieldType> PostgresFieldType(std::string_view data_type);

// A column default read from the database: a constant literal (a number, a quoted string, true/false, optionally in
// parentheses and with PostgreSQL's ::type casts) becomes the field's default_value; NULL is no default; anything
// else (nextval(...), now(), CURRENT_TIMESTAMP, an expression) is computed by the database (computed = true).
struct DefaultDescription {
    std::optional<Value> value;
    bool computed = false;
};
DefaultDescription ParseDefault(std::string_view sql, FieldType type);

// The fields of a table from its columns (syncline's own _syncline_version column skipped). `where` names the table
// for messages. Throws StoreError(kSchema) for an unsupported type, no primary key or a composite one.
std::vector<FieldSpec> FieldsFromColumns(const std::string& where, const std::vector<ColumnDescription>& columns,
                                         bool postgres);

}  // namespace syncline::storage
