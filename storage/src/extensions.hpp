#pragma once
// SQL functions syncline adds to each of its connections (private to storage).
//
// syncline_values: a table-valued function over a list of values handed to SQLite as a pointer, so that an `__in`
// filter of any length is one statement with one parameter:
//
//     "col" IN (SELECT +value FROM syncline_values(?1))      -- ?1 bound with Statement::BindValues(1, &values)
//
// SQLite's `carray` extension does the same for arrays of one C type; this one takes syncline Values of any kind and
// hands each out in its own storage class (null, integer, real, boolean as 0/1, text with its exact bytes, NULs
// included), as sqlite3_bind_* would. Select `+value`, not `value`: a column without a declared type has BLOB
// affinity, and SQLite then compares a TEXT column with it without converting either side, while the expression
// `+value` has no affinity, like a bound parameter, so `col IN (SELECT +value ...)` compares exactly as
// `col IN (?, ?, ...)` does: the column's affinity is applied to the values, and a null in the list matches nothing.
//
// syncline_lookup(op, type, col, needle): the text lookups (contains, icontains, startswith) in SQL, decided by the
// very function RowMatches uses in memory (core's TextLookupMatches), on the column's value read as Statement::Column
// reads a field of that type. So SQL and the in-memory matcher of list subscriptions agree by construction, whatever
// the bytes (NULs, LIKE wildcards, invalid UTF-8) and however SQLite would print a number. `op` is the FilterOp and
// `type` the FieldType, as integers; `needle` is LookupText of the filter's operand. Null column: 0.

#include <sqlite3.h>

namespace syncline::storage {

/// The name of the table-valued function, and the pointer type sqlite3_bind_pointer and sqlite3_value_pointer agree on.
inline constexpr const char* kValuesTable = "syncline_values";
/// The name of the lookup function.
inline constexpr const char* kLookupFunction = "syncline_lookup";

/// Registers syncline_values and syncline_lookup on a connection (once, right after it opens). Throws StorageError on
/// failure.
void RegisterExtensions(sqlite3* db);

}  // namespace syncline::storage
