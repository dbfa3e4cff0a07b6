#include <syncline/core/query.hpp>

#include <algorithm>
#include <array>
#include <cctype>

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

namespace syncline {
namespace {

bool IsNumber(const Value& v) {
    return v.kind() == Value::Kind::kInteger || v.kind() == Value::Kind::kReal || v.kind() == Value::Kind::kBoolean;
}

double AsNumber(const Value& v) {
    if (v.kind() == Value::Kind::kBoolean) return v.AsBoolean() ? 1 : 0;
    return v.AsReal();
}

std::string AsText(const Value& v) { return v.kind() == Value::Kind::kText ? v.AsText() : v.DebugString(); }

// SQLite's ordering across storage classes: NULL < numbers < text.
int Compare(const Value& a, const Value& b) {
    int class_a = a.IsNull() ? 0 : IsNumber(a) ? 1 : 2;
    int class_b = b.IsNull() ? 0 : IsNumber(b) ? 1 : 2;
    if (class_a != class_b) return class_a < class_b ? -1 : 1;
    if (class_a == 0) return 0;
    if (class_a == 1) {
        double x = AsNumber(a), y = AsNumber(b);
        return x < y ? -1 : x > y ? 1 : 0;
    }
    int c = a.AsText().compare(b.AsText());
    return c < 0 ? -1 : c > 0 ? 1 : 0;
}

std::string Lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

}  // namespace

bool RowMatches(const Schema& schema, const Row& row, const std::vector<Filter>& filters) {
    for (const auto& f : filters) {
        auto index = schema.FieldIndex(f.field);
        if (!index || *index >= row.size()) return false;
        const Value& v = row[*index];
        bool ok = false;
        switch (f.op) {
            case FilterOp::kExact:
                ok = f.value.IsNull() ? v.IsNull() : (!v.IsNull() && Compare(v, f.value) == 0);
                break;
            case FilterOp::kNe:
                ok = f.value.IsNull() ? !v.IsNull() : (v.IsNull() || Compare(v, f.value) != 0);
                break;
            case FilterOp::kLt:
                ok = !v.IsNull() && !f.value.IsNull() && Compare(v, f.value) < 0;
                break;
            case FilterOp::kLte:
                ok = !v.IsNull() && !f.value.IsNull() && Compare(v, f.value) <= 0;
                break;
            case FilterOp::kGt:
                ok = !v.IsNull() && !f.value.IsNull() && Compare(v, f.value) > 0;
                break;
            case FilterOp::kGte:
                ok = !v.IsNull() && !f.value.IsNull() && Compare(v, f.value) >= 0;
                break;
            case FilterOp::kIn:
                ok = !v.IsNull() && std::any_of(f.values.begin(), f.values.end(),
                                                [&](const Value& c) { return !c.IsNull() && Compare(v, c) == 0; });
                break;
            case FilterOp::kIsNull: {
                bool want_null = f.value.kind() == Value::Kind::kBoolean ? f.value.AsBoolean() : !f.value.IsNull();
                ok = v.IsNull() == want_null;
                break;
            }
            case FilterOp::kContains:
                ok = !v.IsNull() && AsText(v).find(AsText(f.value)) != std::string::npos;
                break;
            case FilterOp::kIContains:
                ok = !v.IsNull() && Lower(AsText(v)).find(Lower(AsText(f.value))) != std::string::npos;
                break;
            case FilterOp::kStartsWith:
                ok = !v.IsNull() && AsText(v).rfind(AsText(f.value), 0) == 0;
                break;
        }
        if (!ok) return false;
    }
    return true;
}

}  // namespace syncline
