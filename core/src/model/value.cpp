#include <syncline/core/model/value.hpp>

#include <cstdio>
#include <stdexcept>

namespace syncline {
namespace {

[[noreturn]] void WrongKind(const char* wanted, Value::Kind actual) {
    throw std::logic_error(std::string("Value is ") + std::string(KindName(actual)) + ", not " + wanted);
}

}  // namespace

std::int64_t Value::AsInteger() const {
    if (const auto* v = std::get_if<std::int64_t>(&v_)) return *v;
    WrongKind("integer", kind());
}

double Value::AsReal() const {
    if (const auto* v = std::get_if<double>(&v_)) return *v;
    if (const auto* v = std::get_if<std::int64_t>(&v_)) return static_cast<double>(*v);
    WrongKind("real", kind());
}

bool Value::AsBoolean() const {
    if (const auto* v = std::get_if<bool>(&v_)) return *v;
    WrongKind("boolean", kind());
}

const std::string& Value::AsText() const {
    if (const auto* v = std::get_if<std::string>(&v_)) return *v;
    WrongKind("text", kind());
}

std::string Value::DebugString() const {
    switch (kind()) {
        case Kind::kNull:
            return "null";
        case Kind::kInteger:
            return std::to_string(AsInteger());
        case Kind::kReal: {
            char buf[32];
            std::snprintf(buf, sizeof buf, "%.17g", AsReal());
            return buf;
        }
        case Kind::kBoolean:
            return AsBoolean() ? "true" : "false";
        case Kind::kText:
            return "\"" + AsText() + "\"";
    }
    return "?";
}

std::string_view KindName(Value::Kind kind) {
    switch (kind) {
        case Value::Kind::kNull:
            return "null";
        case Value::Kind::kInteger:
            return "integer";
        case Value::Kind::kReal:
            return "real";
        case Value::Kind::kBoolean:
            return "boolean";
        case Value::Kind::kText:
            return "text";
    }
    return "?";
}

}  // namespace syncline
