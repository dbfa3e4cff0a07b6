#pragma once
// PostgreSQL DDL, capture triggers and migrations (private to storage). Identifiers come only from validated schemas
// (IsValidIdentifier), never from request text; the one literal written into SQL, a table name inside the capture
// function, is such an identifier too.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <syncline/core/model/schema.hpp>

namespace syncline::storage::pg {

class Connection;

inline constexpr const char* kChangesTable = "_syncline_changes";
inline constexpr const char* kChangesSequence = "_syncline_changes_seq";
inline constexpr const char* kVersionColumn = "_syncline_version";
inline constexpr const char* kTombstones = "_syncline_tombstones";
// The channel the capture triggers NOTIFY (once per writing statement; PostgreSQL folds repeats within a
// transaction) and the relay LISTENs on.
inline constexpr const char* kNotifyChannel = "syncline_changes";

// "name" as a quoted identifier.
std::string Quote(const std::string& name);
// The column list of a schema's fields, quoted, in order.
std::string SelectList(const Schema& schema);
// The column type syncline creates for a field, which parameters compared with the column are cast to: the field's
// column_type when it has one ("uuid"), else the type of the field's kind (text for text, date-times and JSON).
std::string PgType(const FieldSpec& field);

// The canonical text of a UUID (32 lowercase hex digits in 8-4-4-4-12 groups) from any spelling PostgreSQL's uuid
// input accepts (upper or lower case, optional braces, a hyphen or none after any group of four digits); nullopt when
// PostgreSQL would refuse the text.
std::optional<std::string> CanonicalUuid(std::string_view text);

// Syncline's own tables, sequence and notify function; idempotent.
std::string BookkeepingSql();

// Brings one table in line with its schema (creating it, adding missing columns, refusing conflicts with kSchema
// naming table and column), adds the version column (a table that had rows gets a version floor), installs or
// removes the capture triggers. Runs inside the migration transaction. Returns true when the table's DDL changed.
bool MigrateTable(Connection& conn, const Schema& schema, bool capture);

// Records the models' fingerprint and bumps the schema version when it changed.
void RecordSchemaVersion(Connection& conn, const std::vector<Schema>& models);

}  // namespace syncline::storage::pg
