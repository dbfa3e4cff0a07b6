#pragma once
// Private to the config module: the JSON helpers the parser's parts share (parse_util.cpp) and the parsers of the
// keys that have a file of their own (parse_auth.cpp, parse_routes.cpp). Every error is a ConfigError of one line,
// "<key path>: <problem>".

#include <syncline/config/config.hpp>

#include <rapidjson/document.h>

#include <cstdint>
#include <string>
#include <vector>

namespace syncline::config::detail {

/// "a, b, c"
std::string Join(const std::vector<std::string>& items);

/// Throws ConfigError("<path>: <problem>").
[[noreturn]] void Fail(const std::string& path, const std::string& problem);

/// Fails on the first key of `object` that is not in `valid`, naming the valid ones.
void CheckKeys(const rapidjson::Value& object, const std::string& path, const std::vector<std::string>& valid);

/// The member `key` of `object`, or nullptr.
const rapidjson::Value* Member(const rapidjson::Value& object, const char* key);

std::string GetString(const rapidjson::Value& v, const std::string& path);
std::int64_t GetInteger(const rapidjson::Value& v, const std::string& path, std::int64_t min, std::int64_t max);
/// A number >= 0.
double GetNumber(const rapidjson::Value& v, const std::string& path);
std::vector<std::string> GetStringList(const rapidjson::Value& v, const std::string& path);
/// A secret: a string as written, or `{"env": "NAME"}`, the value of that environment variable, read now. Fails naming
/// the variable (never a value) when it is unset or empty.
std::string GetSecret(const rapidjson::Value& v, const std::string& path);

/// "allowed_origins": ["https://app.example.com", "http://localhost:3000"] or ["*"].
AllowedOrigins ParseAllowedOrigins(const rapidjson::Value& v, const std::string& path);
/// "rate_limit": {"per_second": 50, "burst": 100, "close_after": 3}.
RateLimit ParseRateLimit(const rapidjson::Value& v, const std::string& path);

/// The top-level "auth" object (parse_auth.cpp).
AuthOptions ParseAuth(const rapidjson::Value& v);

/// A consumer route, or (handler_mode) one handler of a routed route (parse_routes.cpp).
RouteConfig ParseRoute(const std::string& route_path, const rapidjson::Value& v, const std::string& path,
                       const std::vector<Schema>& models, bool handler_mode = false);
/// A multiplexer route: {"streams": {...}} (parse_routes.cpp).
RouteConfig ParseMultiplexRoute(const std::string& route_path, const rapidjson::Value& v, const std::string& path);
/// A routed route: {"routepatterns": {...}} (parse_routes.cpp).
RouteConfig ParseRoutedRoute(const std::string& route_path, const rapidjson::Value& v, const std::string& path,
                             const std::vector<Schema>& models);

}  // namespace syncline::config::detail
