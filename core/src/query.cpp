#include <syncline/core/query.hpp>

#include <array>

namespace syncline {
namespace {

constexpr std::array<std::string_view, 11> kOpNames = {"exact", "ne",  "lt",       "lte",       "gt",        "gte",
                                                       "in",    "isnull", "contains", "icontains", "startswith"};

}  // namespace

std::string_view FilterOpName(FilterOp op) { return kOpNames.at(static_cast<std::size_t>(op)); }

std::optional<std::pair<std::string, FilterOp>> ParseLookup(std::string_view key) {
    auto sep = key.rfind("__");
    if (sep == std::string_view::npos || sep == 0) return std::make_pair(std::string(key), FilterOp::kExact);
    std::string_view suffix = key.substr(sep + 2);
    for (std::size_t i = 0; i < kOpNames.size(); ++i) {
        if (kOpNames[i] == suffix) return std::make_pair(std::string(key.substr(0, sep)), static_cast<FilterOp>(i));
    }
    return std::nullopt;
}

OrderBy ParseOrdering(std::string_view term) {
    if (!term.empty() && term[0] == '-') return OrderBy{std::string(term.substr(1)), true};
    return OrderBy{std::string(term), false};
}

}  // namespace syncline
