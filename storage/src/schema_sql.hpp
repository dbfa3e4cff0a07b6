#pragma once
// SQL text generated from schemas: DDL, capture triggers, and the identifiers of the bookkeeping tables.
// Identifiers come only from validated schemas (IsValidIdentifier), never from request text.

#include <string>
#include <vector>

#include <syncline/core/model/schema.hpp>

namespace syncline::storage {

inline constexpr const char* kChangesTable = "_syncline_changes";

// "name" as a quoted SQL identifier.
std::string Quote(const std::string& name);
// The declared column type of a field; distinct per FieldType so that a type change is detected on reopen.
std::string SqlType(const FieldSpec& field);
// A default as an SQL literal ('it''s', 1, 2.5, NULL).
std::string SqlLiteral(const Value& value);
// CREATE TABLE for a schema.
std::string CreateTableSql(const Schema& schema);
// The column definition used by ALTER TABLE ADD COLUMN.
std::string ColumnSql(const FieldSpec& field);
// The table of a model's row versions: one row per row that ever changed while captured (pk, seq of its latest
// change, deleted), kept by the capture triggers whatever the feed keeps.
std::string VersionTable(const Schema& schema);
// CREATE TABLE (and the index of its tombstones) for VersionTable.
std::string VersionTableSql(const Schema& schema);
// (name, CREATE TRIGGER text) of the capture triggers of a table.
std::vector<std::pair<std::string, std::string>> CaptureTriggers(const Schema& schema);
// The DDL of syncline's own tables (changes, cursors, trim marks, meta); idempotent.
std::string BookkeepingSql();

}  // namespace syncline::storage
