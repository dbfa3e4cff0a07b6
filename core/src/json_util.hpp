#pragma once
// RapidJSON helpers private to core.

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <string>
#include <string_view>

#include <syncline/core/model/schema.hpp>
#include <syncline/core/model/value.hpp>
#include <syncline/core/support/json_text.hpp>

namespace syncline {

struct ActionResult;

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

inline void WriteString(JsonWriter& w, std::string_view s) {
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

inline std::string JsonString(std::string_view s) {
    rapidjson::StringBuffer buffer;
    JsonWriter writer(buffer);
    WriteString(writer, s);
    return std::string(buffer.GetString(), buffer.GetSize());
}

/// Writes a field's value as JSON (booleans stored as 0/1 become true/false; json fields are embedded as JSON).
/// Defined in model/schema.cpp.
void WriteFieldValue(JsonWriter& writer, const FieldSpec& field, const Value& value);

/// Writes `value` as JSON, or null when it is absent.
inline void WriteOrNull(JsonWriter& w, const rapidjson::Value* value) {
    if (value) {
        value->Accept(w);
    } else {
        w.Null();
    }
}

/// `result`, or a 500 in its place when its data or errors are not valid UTF-8, which no websocket text frame may
/// carry (a custom action's output, say): the reply is never dropped. Logged rarely (LogRarely).
const ActionResult& EncodableResult(const ActionResult& result);  // defined in protocol/envelope.cpp

}  // namespace syncline
