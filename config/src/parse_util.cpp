// The JSON helpers every part of the config parser shares: key checks, typed getters, one-line errors.

#include "parse.hpp"

#include <syncline/core/protocol/consumer_endpoint.hpp>

#include <algorithm>
#include <cstdlib>

namespace syncline::config::detail {

std::string Join(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
    return out;
}

[[noreturn]] void Fail(const std::string& path, const std::string& problem) {
    throw ConfigError(path + ": " + problem);
}

void CheckKeys(const rapidjson::Value& object, const std::string& path, const std::vector<std::string>& valid) {
    for (auto it = object.MemberBegin(); it != object.MemberEnd(); ++it) {
        std::string key = it->name.GetString();
        if (std::find(valid.begin(), valid.end(), key) == valid.end()) {
            Fail(path.empty() ? key : path + "." + key, "unknown key; valid keys: " + Join(valid));
        }
    }
}

const rapidjson::Value* Member(const rapidjson::Value& object, const char* key) {
    auto it = object.FindMember(key);
    return it == object.MemberEnd() ? nullptr : &it->value;
}

std::string GetString(const rapidjson::Value& v, const std::string& path) {
    if (!v.IsString()) Fail(path, "expected a string");
    return std::string(v.GetString(), v.GetStringLength());
}

std::int64_t GetInteger(const rapidjson::Value& v, const std::string& path, std::int64_t min, std::int64_t max) {
    if (!v.IsInt64() || v.GetInt64() < min || v.GetInt64() > max) {
        Fail(path, "expected an integer from " + std::to_string(min) + " to " + std::to_string(max));
    }
    return v.GetInt64();
}

double GetNumber(const rapidjson::Value& v, const std::string& path) {
    if (!v.IsNumber() || v.GetDouble() < 0) Fail(path, "expected a number >= 0");
    return v.GetDouble();
}

std::vector<std::string> GetStringList(const rapidjson::Value& v, const std::string& path) {
    if (!v.IsArray()) Fail(path, "expected a list of strings");
    std::vector<std::string> out;
    for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
        out.push_back(GetString(v[i], path + "[" + std::to_string(i) + "]"));
    }
    return out;
}

std::string GetSecret(const rapidjson::Value& v, const std::string& path) {
    if (v.IsString()) return std::string(v.GetString(), v.GetStringLength());
    if (!v.IsObject()) Fail(path, "expected a string or {\"env\": \"NAME\"} (an environment variable)");
    CheckKeys(v, path, {"env"});
    const auto* env = Member(v, "env");
    if (!env) Fail(path, "expected a string or {\"env\": \"NAME\"} (an environment variable)");
    std::string name = GetString(*env, path + ".env");
    if (name.empty() || name.find('=') != std::string::npos) Fail(path + ".env", "not a variable name");
    // Read once, at parse time, by the thread that parses (start-up): nothing else sets the environment then.
    const char* value = std::getenv(name.c_str());
    if (!value) Fail(path, "environment variable " + name + " is not set");
    if (*value == '\0') Fail(path, "environment variable " + name + " is empty");
    return value;
}

// "allowed_origins": ["https://app.example.com", "http://localhost:3000"] or ["*"].
AllowedOrigins ParseAllowedOrigins(const rapidjson::Value& v, const std::string& path) {
    if (!v.IsArray()) Fail(path, "expected a list of origins such as [\"https://app.example.com\"]");
    std::vector<std::string> origins = GetStringList(v, path);
    for (std::size_t i = 0; i < origins.size(); ++i) {
        if (std::string error = OriginEntryError(origins[i]); !error.empty()) {
            Fail(path + "[" + std::to_string(i) + "]", error);
        }
    }
    return origins;
}

RateLimit ParseRateLimit(const rapidjson::Value& v, const std::string& path) {
    if (!v.IsObject()) Fail(path, "expected an object such as {\"per_second\": 50, \"burst\": 100}");
    CheckKeys(v, path, {"per_second", "burst", "close_after"});
    RateLimit limit;
    if (auto* p = Member(v, "per_second")) limit.per_second = GetNumber(*p, path + ".per_second");
    if (auto* p = Member(v, "burst")) limit.burst = GetNumber(*p, path + ".burst");
    if (auto* p = Member(v, "close_after")) {
        limit.close_after = static_cast<int>(GetInteger(*p, path + ".close_after", 0, 1000000));
    }
    return limit;
}

}  // namespace syncline::config::detail
