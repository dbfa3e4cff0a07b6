#pragma once
// Migrations (private to storage): bring an opened file in line with the declared models. Database::Open runs them on
// the writer, inside one BEGIN IMMEDIATE ... COMMIT, after creating syncline's own tables (BookkeepingSql).

#include <vector>

#include <syncline/core/model/schema.hpp>

namespace syncline::storage {

class Connection;

// Brings one table in line with its schema, or throws kSchema naming the table and column. Returns true when DDL ran.
bool MigrateTable(Connection& conn, const Schema& schema);

// Creates a table's version table (VersionTable) when missing. On a table that already has rows, the versions still
// in the feed are copied in, and the table's version floor (_syncline_meta "floor:<table>") is set to the newest seq:
// a row with no version entry then has a version of at most that floor.
void SyncVersionTable(Connection& conn, const Schema& schema);

// Installs (or, with capture off, removes) a table's capture triggers; rewrites only those whose text differs, so
// an unchanged schema does not invalidate other processes' prepared statements.
void SyncTriggers(Connection& conn, const Schema& schema, bool capture);

// Records the models' fingerprint in _syncline_meta and bumps the schema version when it differs from the recorded one.
void RecordSchemaVersion(Connection& conn, const std::vector<Schema>& models);

}  // namespace syncline::storage
