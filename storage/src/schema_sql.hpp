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
// The column, in every model table, that holds the row's version: the seq of its latest change, set by the capture
// triggers in the writing transaction (NULL for a row not changed since capture began). Kept in the row itself, it
// costs no page beyond the row's own (a table of versions apart cost a sixth of the captured write rate, measured).
inline constexpr const char* kVersionColumn = "_syncline_version";
// The table of a model's deleted rows: (pk, seq of the change that deleted it), until Trim forgets old ones.
std::string TombstoneTable(const Schema& schema);
// CREATE TABLE IF NOT EXISTS (and the seq index Trim uses) for TombstoneTable.
std::string TombstoneTableSql(const Schema& schema);
// (name, CREATE TRIGGER text) of the capture triggers of a table.
std::vector<std::pair<std::string, std::string>> CaptureTriggers(const Schema& schema);
// The DDL of syncline's own tables (changes, cursors, trim marks, meta); idempotent.
std::string BookkeepingSql();

}  // namespace syncline::storage
