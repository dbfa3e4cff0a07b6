#pragma once
// The WHERE builder (private to storage): a query's filters as the text of a WHERE clause and its parameters in order.
// Column names come from the schema (a filter on an undeclared field throws kSchema), values only ever as parameters.
// `in` lists are written inline or bound whole for syncline_values, and the text lookups call syncline_lookup
// (extensions.hpp), so that SQL matches exactly the rows core's in-memory matcher (RowMatches) matches.

#include <cstddef>
#include <string>
#include <vector>

#include <syncline/core/model/query.hpp>
#include <syncline/core/model/schema.hpp>
#include <syncline/core/model/value.hpp>

namespace syncline::storage {

class Statement;

// The parameters of a query, in order: plain values, and `in` lists bound whole for syncline_values (pointing into
// the query's filters, which outlive the statement's run).
class Params {
public:
    // Out of line: inlined into database.cpp, GCC 12 warns that the moved Value "may be used uninitialized".
    void Add(Value value);
    void AddList(const std::vector<Value>* list);
    void BindAll(Statement& st) const;

    // What was added, in order (for tests): parameter i (0-based) is a plain value, or a list when list(i) is set.
    std::size_t size() const { return items_.size(); }
    const Value& value(std::size_t i) const { return items_.at(i).value; }
    const std::vector<Value>* list(std::size_t i) const { return items_.at(i).list; }

private:
    struct Item {
        Value value;
        const std::vector<Value>* list;
    };
    std::vector<Item> items_;
};

// Builds the WHERE clause of a query, appending its parameters in order. The text lookups (contains, icontains,
// startswith) call syncline_lookup (extensions.hpp): the function RowMatches uses, so that SQL and the in-memory
// matcher agree on every row (LIKE and length() stop at a NUL, and LIKE needs its wildcards escaped).
// Returns "" for no filters, else " WHERE " and the conditions joined by " AND ". Throws StorageError(kSchema) naming
// the field and table for a filter on an undeclared field.
std::string WhereSql(const Schema& schema, const std::vector<Filter>& filters, std::size_t inline_in_values,
                     Params& params);

}  // namespace syncline::storage
