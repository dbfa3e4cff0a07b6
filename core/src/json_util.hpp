#pragma once
// RapidJSON helpers private to core.

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <string>
#include <string_view>

#include <syncline/core/model/schema.hpp>
#include <syncline/core/model/value.hpp>

namespace syncline {

struct ActionResult;

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

/// Writes the keys every reply envelope starts with (DCRF's and the routed one): "errors" and "data" (raw JSON
/// text, as the action answered them) and "action" (echoed, or null).
inline void WriteReplyHead(JsonWriter& w, std::string_view errors_json, std::string_view data_json,
                           const rapidjson::Value* action) {
    w.Key("errors");
    w.RawValue(errors_json.data(), errors_json.size(), rapidjson::kArrayType);
    w.Key("data");
    w.RawValue(data_json.data(), data_json.size(), rapidjson::kObjectType);
    w.Key("action");
    WriteOrNull(w, action);
}

/// `result`, or a 500 in its place when its data or errors are not valid UTF-8, which no websocket text frame may
/// carry (a custom action's output, say): the reply is never dropped. Logged rarely (LogRarely).
const ActionResult& EncodableResult(const ActionResult& result);  // defined in protocol/envelope.cpp

/// `["text"]`
inline std::string MessageList(std::string_view text) { return "[" + JsonString(text) + "]"; }

}  // namespace syncline
