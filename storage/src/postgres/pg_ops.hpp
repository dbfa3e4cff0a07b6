#pragma once
// Reads and writes of model rows on one PostgreSQL connection (private to storage): the shared body of
// PostgresDatabase's one-shot calls and of its Transaction. Values travel only as parameters.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <syncline/core/model/query.hpp>
#include <syncline/core/model/schema.hpp>
#include <syncline/core/model/value.hpp>

namespace syncline::storage::pg {

class Connection;

// A primary key as the parameter its column compares with (a UUID in its canonical spelling, as the capture triggers
// record keys), or nullopt when no row can have that key (text for an integer key, a malformed UUID).
std::optional<std::string> KeyParam(const Schema& schema, const Value& pk);

std::optional<Row> GetRow(Connection& conn, const Schema& schema, std::string_view field, const Value& value);
std::vector<Row> ListRows(Connection& conn, const Schema& schema, const Query& query);
std::int64_t CountRows(Connection& conn, const Schema& schema, const std::vector<Filter>& filters);
Row InsertRow(Connection& conn, const Schema& schema, const Assignments& values);
std::optional<Row> UpdateRow(Connection& conn, const Schema& schema, const Value& pk, const Assignments& values,
                             bool full);
bool DeleteRow(Connection& conn, const Schema& schema, const Value& pk);

}  // namespace syncline::storage::pg
