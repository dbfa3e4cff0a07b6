#pragma once
/// \file
/// RapidJSON values back to text: what core's encoders and the config parser (a model declaration handed to
/// Schema::FromJson) share. RapidJSON is part of core's public API, so this header may name it.

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <string>

namespace syncline {

/// `value` as compact JSON text. Pure, thread-safe.
inline std::string JsonText(const rapidjson::Value& value) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    value.Accept(writer);
    return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace syncline
