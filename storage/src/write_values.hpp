#pragma once
// The columns a write sets (private to storage; both engines): the values given, checked against their fields, and for
// an insert or a full update the defaults of the fields left out. Every problem of a write is reported at once.

#include <cstddef>
#include <utility>
#include <vector>

#include <syncline/core/model/schema.hpp>
#include <syncline/core/model/value.hpp>

namespace syncline::storage {

// (field index, value) for every column an INSERT sets: the given values, else defaults, else null for nullable
// fields; an auto-assigned primary key is left out. Throws StoreError(kInvalid) listing every unknown field, invalid
// value and missing required field.
std::vector<std::pair<std::size_t, Value>> InsertColumns(const Schema& schema, const Assignments& values);

// (field index, value) for every column an UPDATE sets: the given values; with `full`, every other non-key field too
// (its default, else null). Throws StoreError(kInvalid) as InsertColumns does.
std::vector<std::pair<std::size_t, Value>> UpdateColumns(const Schema& schema, const Assignments& values, bool full);

}  // namespace syncline::storage
