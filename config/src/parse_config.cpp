// The top level of the JSON config: the server's keys (listen, workers, limits, bus, auth, ...) into
// transport::ServerOptions, then the models and routes, then the checks that need every route (cookie
// authentication's origin rule, streams naming consumer routes).

#include "parse.hpp"

#include <syncline/core/protocol/json_input.hpp>
#include <syncline/core/support/json_text.hpp>

#include <algorithm>
#include <chrono>

namespace syncline::config {

using namespace detail;

namespace {

// "static": {"/": "web"}: URL prefix -> folder (BuildServer resolves a relative folder against the config file's
// directory), and "static_max_file_bytes".
void ParseStatic(const rapidjson::Value& doc, transport::ServerOptions& server) {
    if (const auto* mounts = Member(doc, "static")) {
        if (!mounts->IsObject()) Fail("static", "expected an object of URL prefix to folder, such as {\"/\": \"web\"}");
        for (auto it = mounts->MemberBegin(); it != mounts->MemberEnd(); ++it) {
            const std::string prefix = it->name.GetString();
            const std::string path = "static." + prefix;
            if (prefix.empty() || prefix[0] != '/') Fail(path, "a URL prefix must start with /");
            if (prefix.find_first_of("?#%\\") != std::string::npos || prefix.find("//") != std::string::npos) {
                Fail(path, "a URL prefix is a plain path (no ?, #, %, \\ or //)");
            }
            for (const auto& mount : server.static_mounts) {
                if (mount.prefix == prefix) Fail(path, "declared twice");
            }
            std::string folder = GetString(it->value, path);
            if (folder.empty()) Fail(path, "empty folder");
            server.static_mounts.push_back(transport::StaticMount{prefix, std::move(folder)});
        }
    }
    if (const auto* p = Member(doc, "static_max_file_bytes")) {
        server.static_max_file_bytes =
            static_cast<std::size_t>(GetInteger(*p, "static_max_file_bytes", 1, std::int64_t{1} << 30));
    }
}

}  // namespace

Config ParseConfig(std::string_view json_text) {
    rapidjson::Document doc;
    if (JsonInputError error = ParseUntrustedJson(doc, json_text, kMaxJsonDepthLimit, true)) {
        throw ConfigError("config: invalid JSON at offset " + std::to_string(error.offset) + ": " + error.reason);
    }
    if (!doc.IsObject()) throw ConfigError("config: expected a JSON object");
    CheckKeys(doc, "",
              {"database",
               "listen",
               "workers",
               "max_message_bytes",
               "ping_interval_ms",
               "pong_timeout_ms",
               "synchronous",
               "models",
               "routes",
               "rate_limit",
               "bus",
               "trim_horizon_s",
               "max_queued_rows",
               "max_queue_bytes",
               "slow_reader_timeout_ms",
               "coalesce_after_ms",
               "auth",
               "action_threads",
               "write_threads",
               "batch_writes",
               "ready_max_relay_lag_ms",
               "metrics",
               "max_waiting_request_bytes",
               "max_json_depth",
               "max_request_id_bytes",
               "max_subscriptions_per_socket",
               "max_filter_values",
               "max_list_filter_values_per_socket",
               "max_pending_actions",
               "statement_cache_bytes",
               "allowed_origins",
               "max_connections",
               "max_handshakes",
               "log_format",
               "static",
               "static_max_file_bytes"});
    Config config;
    transport::ServerOptions& server = config.server;
    const rapidjson::Value* database = Member(doc, "database");
    if (!database) Fail("database", "missing (the SQLite file, e.g. \"app.db\", or a postgresql:// URL)");
    server.database = GetSecret(*database, "database");
    if (server.database.empty()) Fail("database", "empty");
    if (const auto* listen = Member(doc, "listen")) {
        if (!listen->IsObject()) Fail("listen", "expected an object such as {\"host\": \"127.0.0.1\", \"port\": 8000}");
        CheckKeys(*listen, "listen", {"host", "port"});
        if (const auto* p = Member(*listen, "host")) server.host = GetString(*p, "listen.host");
        if (const auto* p = Member(*listen, "port")) {
            server.port = static_cast<std::uint16_t>(GetInteger(*p, "listen.port", 0, 65535));
        }
    }
    if (const auto* p = Member(doc, "workers"))
        server.workers = static_cast<unsigned>(GetInteger(*p, "workers", 0, 256));
    if (const auto* p = Member(doc, "max_message_bytes")) {
        server.max_message_bytes = static_cast<std::size_t>(GetInteger(*p, "max_message_bytes", 1, 1 << 30));
    }
    if (const auto* p = Member(doc, "ping_interval_ms")) {
        server.ping_interval = std::chrono::milliseconds(GetInteger(*p, "ping_interval_ms", 0, 3600000));
    }
    if (const auto* p = Member(doc, "pong_timeout_ms")) {
        server.pong_timeout = std::chrono::milliseconds(GetInteger(*p, "pong_timeout_ms", 0, 3600000));
    }
    if (const auto* p = Member(doc, "synchronous")) {
        std::string synchronous = GetString(*p, "synchronous");
        if (synchronous == "normal") {
            server.synchronous = storage::Synchronous::kNormal;
        } else if (synchronous == "full") {
            server.synchronous = storage::Synchronous::kFull;
        } else if (synchronous == "off") {
            server.synchronous = storage::Synchronous::kOff;
        } else {
            Fail("synchronous", "unknown value \"" + synchronous + "\"; valid values: normal, full, off");
        }
    }
    if (const auto* bus = Member(doc, "bus")) {
        if (!bus->IsObject()) Fail("bus", "expected an object such as {\"redis\": \"redis://127.0.0.1:6379/0\"}");
        CheckKeys(*bus, "bus", {"redis", "shards", "channel_prefix"});
        if (const auto* p = Member(*bus, "redis")) {
            server.redis_url = GetSecret(*p, "bus.redis");
            if (server.redis_url.rfind("redis://", 0) != 0) Fail("bus.redis", "expected a redis://host:port/db URL");
        }
        if (const auto* p = Member(*bus, "shards"))
            server.bus_shards = static_cast<unsigned>(GetInteger(*p, "bus.shards", 1, 4096));
        if (const auto* p = Member(*bus, "channel_prefix")) server.channel_prefix = GetString(*p, "bus.channel_prefix");
    }
    if (const auto* p = Member(doc, "max_queued_rows")) {
        server.max_queued_rows = static_cast<std::size_t>(GetInteger(*p, "max_queued_rows", 1, std::int64_t{1} << 30));
    }
    if (const auto* p = Member(doc, "trim_horizon_s"))
        server.trim_horizon = std::chrono::seconds(GetInteger(*p, "trim_horizon_s", 1, 365 * 86400));
    if (const auto* p = Member(doc, "max_queue_bytes")) {
        server.max_queue_bytes =
            static_cast<std::size_t>(GetInteger(*p, "max_queue_bytes", 4096, std::int64_t{1} << 34));
    }
    if (const auto* p = Member(doc, "slow_reader_timeout_ms")) {
        server.slow_reader_timeout = std::chrono::milliseconds(GetInteger(*p, "slow_reader_timeout_ms", 0, 86400000));
    }
    if (const auto* p = Member(doc, "coalesce_after_ms")) {
        server.coalesce_after = std::chrono::milliseconds(GetInteger(*p, "coalesce_after_ms", 0, 60000));
    }
    if (const auto* p = Member(doc, "action_threads")) {
        server.action_threads = static_cast<unsigned>(GetInteger(*p, "action_threads", 0, 256));
    }
    if (const auto* p = Member(doc, "max_json_depth")) {
        server.limits.max_json_depth = static_cast<std::size_t>(
            GetInteger(*p, "max_json_depth", 2, static_cast<std::int64_t>(kMaxJsonDepthLimit)));
    }
    if (const auto* p = Member(doc, "max_request_id_bytes")) {
        server.limits.max_request_id_bytes =
            static_cast<std::size_t>(GetInteger(*p, "max_request_id_bytes", 16, std::int64_t{1} << 20));
    }
    if (const auto* p = Member(doc, "max_subscriptions_per_socket")) {
        server.limits.max_subscriptions =
            static_cast<std::size_t>(GetInteger(*p, "max_subscriptions_per_socket", 1, 1000000));
    }
    if (const auto* p = Member(doc, "max_list_filter_values_per_socket")) {
        server.limits.max_list_filter_values =
            static_cast<std::size_t>(GetInteger(*p, "max_list_filter_values_per_socket", 1, 100000000));
    }
    if (const auto* p = Member(doc, "max_filter_values")) {
        server.limits.max_filter_values = static_cast<std::size_t>(GetInteger(*p, "max_filter_values", 1, 100000));
    }
    if (const auto* p = Member(doc, "ready_max_relay_lag_ms")) {
        server.ready_max_relay_lag =
            std::chrono::milliseconds(GetInteger(*p, "ready_max_relay_lag_ms", 0, std::int64_t{1} << 31));
    }
    if (const auto* p = Member(doc, "metrics")) {
        if (!p->IsBool()) Fail("metrics", "expected true or false (whether GET /metrics answers)");
        server.serve_metrics = p->GetBool();
    }
    if (const auto* p = Member(doc, "write_threads")) {
        server.write_threads = static_cast<unsigned>(GetInteger(*p, "write_threads", 0, 1024));
    }
    if (const auto* p = Member(doc, "batch_writes")) {
        if (!p->IsBool()) Fail("batch_writes", "expected true or false (whether write requests run in batches)");
        server.batch_writes = p->GetBool();
    }
    if (const auto* p = Member(doc, "max_waiting_request_bytes")) {
        server.limits.max_waiting_request_bytes =
            static_cast<std::size_t>(GetInteger(*p, "max_waiting_request_bytes", 0, std::int64_t{1} << 30));
    }
    if (const auto* p = Member(doc, "max_pending_actions")) {
        server.limits.max_pending_actions = static_cast<std::size_t>(GetInteger(*p, "max_pending_actions", 0, 1 << 20));
    }
    if (const auto* p = Member(doc, "statement_cache_bytes")) {
        server.statement_cache_bytes =
            static_cast<std::size_t>(GetInteger(*p, "statement_cache_bytes", 0, std::int64_t{1} << 34));
    }
    if (const auto* p = Member(doc, "max_connections")) {
        server.max_connections = static_cast<std::size_t>(GetInteger(*p, "max_connections", 1, 10000000));
    }
    if (const auto* p = Member(doc, "max_handshakes")) {
        server.max_handshakes = static_cast<std::size_t>(GetInteger(*p, "max_handshakes", 1, 1000000));
    }
    if (const auto* p = Member(doc, "allowed_origins"))
        server.allowed_origins = ParseAllowedOrigins(*p, "allowed_origins");
    if (const auto* p = Member(doc, "log_format")) {
        config.log_format = GetString(*p, "log_format");
        if (config.log_format != "text" && config.log_format != "json") {
            Fail("log_format", "unknown value \"" + config.log_format + "\"; valid values: text, json");
        }
    }
    ParseStatic(doc, server);
    RateLimit default_limit;
    if (const auto* p = Member(doc, "rate_limit")) default_limit = ParseRateLimit(*p, "rate_limit");
    if (const auto* p = Member(doc, "auth")) server.auth = ParseAuth(*p);

    const rapidjson::Value* models = Member(doc, "models");
    if (!models || !models->IsObject() || models->MemberCount() == 0) {
        Fail("models", "expected a non-empty object of model declarations");
    }
    for (auto it = models->MemberBegin(); it != models->MemberEnd(); ++it) {
        std::string name = it->name.GetString();
        try {
            config.models.push_back(Schema::FromJson(name, JsonText(it->value)));
        } catch (const SchemaError& e) {
            throw ConfigError(std::string("models.") + e.what());
        }
    }
    const rapidjson::Value* routes = Member(doc, "routes");
    if (!routes || !routes->IsObject() || routes->MemberCount() == 0) {
        Fail("routes", "expected a non-empty object of routes such as {\"/ws/posts/\": {...}}");
    }
    for (auto it = routes->MemberBegin(); it != routes->MemberEnd(); ++it) {
        std::string route_path = it->name.GetString();
        std::string path = "routes." + route_path;
        RouteConfig route;
        if (it->value.IsObject() && Member(it->value, "streams")) {
            if (route_path.empty() || route_path[0] != '/') Fail(path, "a route path must start with /");
            route = ParseMultiplexRoute(route_path, it->value, path);
        } else if (it->value.IsObject() && Member(it->value, "routepatterns")) {
            if (route_path.empty() || route_path[0] != '/') Fail(path, "a route path must start with /");
            route = ParseRoutedRoute(route_path, it->value, path, config.models);
        } else {
            route = ParseRoute(route_path, it->value, path, config.models);
        }
        if (!Member(it->value, "rate_limit")) route.endpoint.rate_limit = default_limit;
        config.routes.push_back(std::move(route));
    }
    // A browser sends its cookies with a handshake whichever site's page opens it: cookie tokens need an origin
    // allow-list on every route, or any site could open an authenticated socket as its visitor.
    const rapidjson::Value* auth_json = Member(doc, "auth");
    const rapidjson::Value* cookie = auth_json ? Member(*auth_json, "cookie") : nullptr;
    if (cookie && cookie->IsString() && cookie->GetStringLength() > 0) {
        for (const auto& route : config.routes) {
            if (!RestrictsOrigins(route.endpoint.allowed_origins ? route.endpoint.allowed_origins
                                                                 : server.allowed_origins)) {
                Fail("auth.cookie",
                     "cookie authentication requires allowed_origins (the sites whose pages may "
                     "connect, without \"*\"), at the top level or on every route; route " +
                         route.path + " has none");
            }
        }
    }
    // A stream names another route of this config that serves requests itself (not a multiplexer).
    std::vector<std::string> consumer_routes;
    for (const auto& route : config.routes) {
        if (route.streams.empty()) consumer_routes.push_back(route.path);
    }
    for (const auto& route : config.routes) {
        for (const auto& [stream, target] : route.streams) {
            if (std::find(consumer_routes.begin(), consumer_routes.end(), target) == consumer_routes.end()) {
                Fail("routes." + route.path + ".streams." + stream,
                     "unknown route \"" + target + "\"; valid routes: " + Join(consumer_routes));
            }
        }
    }
    return config;
}

}  // namespace syncline::config
