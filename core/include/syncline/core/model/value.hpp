#pragma once
/// \file
/// Dynamic values and rows: the engine works on these; typed structs (model.hpp) are a thin layer on top.

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace syncline {

/// One column value: null, 64-bit integer, double, boolean or UTF-8 text. Datetime and JSON fields hold text
/// (ISO 8601, and the JSON document's text); the field's type in the schema says how to read it.
/// A plain value type: copyable, no shared state, safe to use from any thread.
class Value {
public:
    enum class Kind { kNull, kInteger, kReal, kBoolean, kText };

    Value() = default;
    Value(std::nullptr_t) {}                        // NOLINT(google-explicit-constructor)
    Value(std::int64_t v) : v_(v) {}                // NOLINT(google-explicit-constructor)
    Value(int v) : v_(static_cast<std::int64_t>(v)) {}  // NOLINT(google-explicit-constructor)
    Value(double v) : v_(v) {}                      // NOLINT(google-explicit-constructor)
    Value(bool v) : v_(v) {}                        // NOLINT(google-explicit-constructor)
    Value(std::string v) : v_(std::move(v)) {}      // NOLINT(google-explicit-constructor)
    Value(std::string_view v) : v_(std::string(v)) {}  // NOLINT(google-explicit-constructor)
    Value(const char* v) : v_(std::string(v)) {}    // NOLINT(google-explicit-constructor)

    /// The kind of value held.
    Kind kind() const { return static_cast<Kind>(v_.index()); }
    bool IsNull() const { return kind() == Kind::kNull; }

    /// Accessors; each throws std::logic_error when the value is of another kind.
    std::int64_t AsInteger() const;
    double AsReal() const;  ///< Also accepts an integer (widened).
    bool AsBoolean() const;
    const std::string& AsText() const;

    /// A short human-readable rendering for messages and test output ("null", "42", "\"abc\"").
    std::string DebugString() const;

    friend bool operator==(const Value& a, const Value& b) { return a.v_ == b.v_; }
    friend bool operator!=(const Value& a, const Value& b) { return !(a == b); }

private:
    std::variant<std::monostate, std::int64_t, double, bool, std::string> v_;
};

/// The name of a kind ("null", "integer", ...), for error messages.
std::string_view KindName(Value::Kind kind);

/// A row: one value per schema field, in the schema's field order.
using Row = std::vector<Value>;

/// Named values for a write (insert, update, patch): field name and value, in any order.
using Assignments = std::vector<std::pair<std::string, Value>>;

}  // namespace syncline
