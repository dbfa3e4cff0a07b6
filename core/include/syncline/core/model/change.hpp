#pragma once
/// \file
/// The change event: what storage's change feed emits and the observer consumes. storage and observer never
/// include each other; they meet here.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <syncline/core/model/value.hpp>

namespace syncline {

/// The kind of a captured change. The numbers are stored in the database: never renumber them.
enum class ChangeOp : int { kInsert = 1, kUpdate = 2, kDelete = 3 };

/// "insert", "update" or "delete".
std::string_view ChangeOpName(ChangeOp op);

/// One committed change to one row.
struct ChangeEvent {
    std::int64_t seq = 0;  ///< Strictly increasing, never reused; the row's version after this change.
    std::string table;
    Value pk;
    ChangeOp op = ChangeOp::kInsert;
    /// The row before the change as a JSON object (update and delete), as RowFromJson reads it.
    std::optional<std::string> old_json;
    /// The row's current state when the change was read (absent for a delete, or when the row is gone since).
    std::optional<Row> row;
    /// `row` was read after a later change of the row had committed (one beyond this read's batch: its seq is past
    /// the batch's limit, or past PostgreSQL's safe horizon): it is that later change's state, whose version is
    /// `row_version`, not this one's. A consumer labels it with `row_version`, never with `seq`.
    bool ahead = false;
    /// The version of `row` (the row's version column when it was read); 0 when there is no row.
    std::int64_t row_version = 0;
};

}  // namespace syncline
