#pragma once
// RapidJSON helpers private to core.

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <string>
#include <string_view>

#include <syncline/core/schema.hpp>
#include <syncline/core/value.hpp>

namespace syncline {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

inline void WriteString(JsonWriter& w, std::string_view s) {
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

inline std::string JsonText(const rapidjson::Value& value) {
    rapidjson::StringBuffer buffer;
    JsonWriter writer(buffer);
    value.Accept(writer);
    return std::string(buffer.GetString(), buffer.GetSize());
}

inline std::string JsonString(std::string_view s) {
    rapidjson::StringBuffer buffer;
    JsonWriter writer(buffer);
    WriteString(writer, s);
    return std::string(buffer.GetString(), buffer.GetSize());
}

/// Writes a field's value as JSON (booleans stored as 0/1 become true/false; json fields are embedded as JSON).
/// Defined in schema.cpp.
void WriteFieldValue(JsonWriter& writer, const FieldSpec& field, const Value& value);

/// `["text"]`
inline std::string MessageList(std::string_view text) { return "[" + JsonString(text) + "]"; }

}  // namespace syncline
