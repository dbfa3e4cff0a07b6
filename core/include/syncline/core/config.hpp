#pragma once
/// \file
/// The server's JSON configuration (`syncline serve --config FILE`): a server declared with no C++ written.
/// Parsing is pure: it turns the text into schemas and consumer options, or one error line naming the key path.

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <syncline/core/auth/auth.hpp>
#include <syncline/core/consumer/consumer.hpp>
#include <syncline/core/protocol/consumer_endpoint.hpp>
#include <syncline/core/model/schema.hpp>
#include <syncline/core/consumer/subscriptions.hpp>

namespace syncline {

/// A configuration error: one line, naming the key path and, where there is a fixed set, the valid choices,
/// e.g. `routes./ws/posts/.mixins[1]: unknown mixin "lst"; valid mixins: list, retrieve, ...`.
class ConfigError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// One pattern of a routed route (`"routepatterns"`, PROTOCOL.md §10).
struct RoutePatternConfig {
    std::string pattern;       ///< The Python-style regular expression, as written.
    std::string handler;       ///< The handler class, e.g. "RetrieveUpdateDestroyAPIActionHandler".
    ConsumerOptions consumer;  ///< The handler's consumer: the route keys given, with the handler class's mixins.
};

/// One route: a consumer over a model, with its endpoint options; or a multiplexer (`streams`), or a routed consumer
/// (`routepatterns`).
struct RouteConfig {
    std::string path;
    ConsumerOptions consumer;
    std::vector<std::string> mixins;  ///< The mixin names, as written.
    EndpointOptions endpoint;
    std::string group_by;  ///< When set: subscribe_group/unsubscribe_group by this field's value (or all rows).
    /// A multiplexer route (PROTOCOL.md §9): (stream name, path of another route of the config), in the order
    /// written. Empty for other routes.
    std::vector<std::pair<std::string, std::string>> streams;
    /// A routed route: its patterns in match order (the JSON object's order). Empty for other routes.
    std::vector<RoutePatternConfig> routepatterns;
};

/// The bus between processes. Empty `redis`: the in-process bus (one process; no Redis needed).
struct BusConfig {
    std::string redis;            ///< "redis://host:port/db"
    unsigned shards = 16;         ///< Channels per table (see README: channel layout).
    std::string channel_prefix;   ///< Default: derived from the database file's path.
};

/// The whole configuration. Defaults are the embedded ones: in-process bus, 127.0.0.1:8000.
struct ServerConfig {
    std::string database;  ///< The SQLite file (relative paths are relative to the config file's directory).
    std::string host = "127.0.0.1";
    std::uint16_t port = 8000;
    unsigned workers = 0;  ///< 0: one per core.
    std::size_t max_message_bytes = 1 << 20;
    std::int64_t ping_interval_ms = 20000;
    std::int64_t pong_timeout_ms = 10000;
    std::string synchronous = "normal";  ///< "normal", "full" or "off".
    std::vector<Schema> models;
    std::vector<RouteConfig> routes;
    BusConfig bus;
    std::int64_t trim_horizon_s = 600;  ///< How long captured changes are kept (the catch-up window).
    std::size_t max_queue_bytes = 4 * 1024 * 1024;  ///< Per-connection outgoing queue limit (slow readers).
    std::int64_t slow_reader_timeout_ms = 10000;      ///< Over the limit this long: closed with 1013.
    /// Top-level "auth": the authenticator (static tokens, JWT, or both chained) and its policy. Default: none,
    /// every connection anonymous.
    AuthOptions auth;
    /// Top-level "allowed_origins" (a route's own, in RouteConfig::endpoint, overrides it). nullopt: any origin.
    AllowedOrigins allowed_origins;
    std::size_t max_connections = 0;   ///< Websocket connections at most; 0: derived from the open-file limit.
    std::size_t max_handshakes = 128;  ///< Sockets still in their handshake at most (the oldest is closed).
    unsigned action_threads = 0;  ///< Threads running detached actions (streamed lists); 0: one per core, at least 2.
    /// "max_json_depth", "max_request_id_bytes", "max_subscriptions_per_socket", "max_filter_values",
    /// "max_pending_actions".
    ConnectionLimits limits;
    /// Memory of cached prepared statements per SQLite connection (storage::DatabaseOptions::statement_cache_bytes).
    std::size_t statement_cache_bytes = 4 * 1024 * 1024;
};

/// The group observer `group_by` configures: rows belong to "all" and to "<field>=<value>"; subscribe_group with
/// the field as an argument joins that value's group, without it the "all" group.
GroupObserver GroupByField(const Schema& schema, const std::string& field);

/// The mixin names a route may list, in the order the README documents them.
const std::vector<std::string>& ConfigMixinNames();

/// The Mixin of a config name; throws std::out_of_range for an unknown one.
Mixin MixinByName(const std::string& name);

/// The permission names a route's "permissions" list accepts as strings (the object forms are "owner", "group",
/// "and", "or" and "not").
const std::vector<std::string>& ConfigPermissionNames();

/// Parses a configuration. Throws ConfigError (one line, key path and choices) on any problem: bad JSON, unknown
/// key, wrong type, unknown model, field, mixin or handler class, an invalid route pattern, a stream naming no
/// consumer route of the config, an invalid allowed_origins entry, or cookie authentication (`auth.cookie`) on a
/// route whose allowed_origins does not restrict origins.
ServerConfig ParseConfig(std::string_view json_text);

}  // namespace syncline
