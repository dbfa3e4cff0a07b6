#pragma once
// Migrations (private to storage): bring an opened file in line with the declared models. Database::Open runs them on
// the writer, inside one BEGIN IMMEDIATE ... COMMIT, after creating syncline's own tables (BookkeepingSql).

#include <vector>

#include <syncline/core/model/schema.hpp>

namespace syncline::storage {

class Connection;

// Brings one table in line with its schema, or throws kSchema naming the table and column. Returns true when DDL ran.
bool MigrateTable(Connection& conn, const Schema& schema);

// Adds a table's version column (kVersionColumn) when missing, and its tombstone table. A table that already had rows
// gets a version floor (_syncline_meta "floor:<table>") at the newest seq: a row with no version then has a version
// of at most that floor (unknown, so a client's older `since` gets the row pushed).
void SyncVersionColumn(Connection& conn, const Schema& schema);

// Installs (or, with capture off, removes) a table's capture triggers; rewrites only those whose text differs, so
// an unchanged schema does not invalidate other processes' prepared statements.
void SyncTriggers(Connection& conn, const Schema& schema, bool capture);

// Records the models' fingerprint in _syncline_meta and bumps the schema version when it differs from the recorded one.
void RecordSchemaVersion(Connection& conn, const std::vector<Schema>& models);

}  // namespace syncline::storage
