#pragma once
/// \file
/// Query descriptions: filters, ordering, limit/offset. Pure data: storage turns them into bound SQL, and refuses
/// any field the schema does not declare (an identifier never comes from the caller's text).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <syncline/core/model/schema.hpp>
#include <syncline/core/model/value.hpp>

namespace syncline {

/// Filter operators, named as Django lookups: exact, ne, lt, lte, gt, gte, in, isnull, contains (case-sensitive),
/// icontains (ASCII case-insensitive), startswith. The text lookups (contains, icontains, startswith) compare the
/// bytes of LookupText: every byte counts, NUL included; %, _ and \ are ordinary characters.
enum class FilterOp { kExact, kNe, kLt, kLte, kGt, kGte, kIn, kIsNull, kContains, kIContains, kStartsWith };

/// One condition on a declared field. `value` is the operand; `kIn` uses `values`; `kIsNull` reads
/// value as a boolean (true: the field is null).
struct Filter {
    std::string field;
    FilterOp op = FilterOp::kExact;
    Value value;
    std::vector<Value> values;
};

/// Sorting by one field.
struct OrderBy {
    std::string field;
    bool descending = false;
};

/// A list query. Rows come ordered by `ordering`, then by primary key (so pages are stable).
struct Query {
    std::vector<Filter> filters;
    std::vector<OrderBy> ordering;
    std::optional<std::int64_t> limit;  ///< No limit when absent.
    std::int64_t offset = 0;
};

/// The Django lookup name of an operator ("exact", "gte", ...).
std::string_view FilterOpName(FilterOp op);

/// Splits a Django-style lookup key: "author" → (author, exact); "id__gte" → (id, gte). Returns nullopt when the
/// suffix after "__" is not an operator name.
std::optional<std::pair<std::string, FilterOp>> ParseLookup(std::string_view key);

/// Parses one ordering term: "title" ascending, "-title" descending.
OrderBy ParseOrdering(std::string_view term);

/// Evaluates filters on a row in memory, with SQLite's semantics for the values syncline stores (numbers compare
/// numerically, text by bytes, null matches only isnull/exact-null/ne); the text lookups give exactly the rows
/// storage's SQL gives (see LookupText). Filters on fields the schema does not declare never match.
bool RowMatches(const Schema& schema, const Row& row, const std::vector<Filter>& filters);

/// The text a text lookup (contains, icontains, startswith) sees of a value: text as it is (every byte, NULs
/// included), an integer in decimal, a boolean as "1" or "0" (SQLite stores it as an integer), a real with 15
/// significant digits as SQLite prints one ("1.5", "2.0", "1.0e+20", "Inf"). nullopt for null (and NaN, which SQLite
/// stores as null): a text lookup never matches a null value, nor with a null operand.
std::optional<std::string> LookupText(const Value& value);

/// Whether `value` matches the text lookup `op` (kContains, kIContains or kStartsWith; false for any other op) with
/// `needle`, the LookupText of the filter's operand. Compares bytes: a NUL is an ordinary character, %, _ and \ are
/// literal, and kIContains folds the ASCII letters A-Z only ("É" and "é" differ). RowMatches decides text lookups
/// with it, and storage calls it from SQL (syncline_lookup), so a list and a list subscription agree on every row.
bool TextLookupMatches(FilterOp op, const Value& value, std::string_view needle);

}  // namespace syncline
