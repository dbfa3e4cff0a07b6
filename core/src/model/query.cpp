#include <syncline/core/model/query.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>

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

// A real as SQLite 3.40 prints it ("%!.15g"): 15 significant digits, trailing zeros dropped but one digit kept after
// the point, exponent form ("1.0e+20", "1.5e-07") below 1e-4 and from 1e15 on. (SQLite rounds with long double
// arithmetic, so its last digit differs in rare ties; lookups do not depend on it: SQL calls this code too.)
std::string SqliteRealText(double r) {
    if (std::isinf(r)) return r < 0 ? "-Inf" : "Inf";
    if (r == 0) return "0.0";  // -0.0 too: SQLite tests r < 0 for the sign
    char buf[48];
    std::snprintf(buf, sizeof buf, "%.14e", std::fabs(r));  // d.dddddddddddddde±XX
    std::string text(buf);
    std::size_t e = text.find('e');
    int exp = std::atoi(text.c_str() + e + 1);
    std::string digits = text.substr(0, 1) + text.substr(2, e - 2);  // the 15 significant digits
    auto trimmed = [](std::string frac) {
        while (frac.size() > 1 && frac.back() == '0') frac.pop_back();
        return frac;
    };
    std::string out = r < 0 ? "-" : "";
    if (exp < -4 || exp > 14) {
        out += digits.substr(0, 1) + "." + trimmed(digits.substr(1)) + "e" + (exp < 0 ? "-" : "+");
        int magnitude = std::abs(exp);
        if (magnitude >= 100) out += static_cast<char>('0' + magnitude / 100);
        out += static_cast<char>('0' + magnitude / 10 % 10);
        out += static_cast<char>('0' + magnitude % 10);
    } else if (exp >= 0) {
        out += digits.substr(0, static_cast<std::size_t>(exp) + 1) + "." +
               trimmed(digits.substr(static_cast<std::size_t>(exp) + 1) + "0");
    } else {
        out += "0." + trimmed(std::string(static_cast<std::size_t>(-exp - 1), '0') + digits);
    }
    return out;
}

}  // namespace

std::optional<std::string> LookupText(const Value& value) {
    switch (value.kind()) {
        case Value::Kind::kNull:
            return std::nullopt;
        case Value::Kind::kInteger:
            return std::to_string(value.AsInteger());
        case Value::Kind::kBoolean:
            return std::string(value.AsBoolean() ? "1" : "0");
        case Value::Kind::kReal:
            if (std::isnan(value.AsReal())) return std::nullopt;
            return SqliteRealText(value.AsReal());
        case Value::Kind::kText:
            return value.AsText();
    }
    return std::nullopt;
}

namespace {

char FoldAscii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool TextMatches(FilterOp op, std::string_view text, std::string_view needle) {
    switch (op) {
        case FilterOp::kContains:
            return text.find(needle) != std::string_view::npos;
        case FilterOp::kIContains:
            return std::search(text.begin(), text.end(), needle.begin(), needle.end(),
                               [](char a, char b) { return FoldAscii(a) == FoldAscii(b); }) != text.end() ||
                   needle.empty();
        case FilterOp::kStartsWith:
            return text.substr(0, needle.size()) == needle;
        default:
            return false;
    }
}

}  // namespace

bool TextLookupMatches(FilterOp op, const Value& value, std::string_view needle) {
    if (value.kind() == Value::Kind::kText) return TextMatches(op, value.AsText(), needle);
    std::optional<std::string> text = LookupText(value);
    return text && TextMatches(op, *text, needle);
}

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
            case FilterOp::kIContains:
            case FilterOp::kStartsWith: {
                // The same function storage's SQL calls (syncline_lookup), on the same values.
                std::optional<std::string> needle = LookupText(f.value);
                ok = needle && TextLookupMatches(f.op, v, *needle);
                break;
            }
        }
        if (!ok) return false;
    }
    return true;
}

}  // namespace syncline
