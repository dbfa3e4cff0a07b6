#pragma once
/// \file
/// The server's JSON configuration (`syncline serve --config FILE`): a server declared with no C++ written.
/// Parsing is pure: it turns the text into the server's options, schemas and consumer options, or one error line
/// naming the key path. BuildServer then assembles a transport::Server from the result. This module sits above
/// transport (core <- storage, observer <- transport <- config <- apps).

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <syncline/core/consumer/consumer.hpp>
#include <syncline/core/consumer/subscriptions.hpp>
#include <syncline/core/model/schema.hpp>
#include <syncline/core/protocol/consumer_endpoint.hpp>
#include <syncline/transport/server.hpp>

namespace syncline::config {

/// A configuration error: one line, naming the key path and, where there is a fixed set, the valid choices,
/// e.g. `routes./ws/posts/.mixins[1]: unknown mixin "lst"; valid mixins: list, retrieve, ...`.
class ConfigError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// One pattern of a routed route (`"routepatterns"`, docs/protocol.md §10).
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
    /// A multiplexer route (docs/protocol.md §9): (stream name, path of another route of the config), in the order
    /// written. Empty for other routes.
    std::vector<std::pair<std::string, std::string>> streams;
    /// A routed route: its patterns in match order (the JSON object's order). Empty for other routes.
    std::vector<RoutePatternConfig> routepatterns;
};

/// The whole configuration: the server's options (defaults are the embedded ones: in-process bus, 127.0.0.1:8000)
/// with every top-level key applied, and the models and routes. `server.database` is the file as written (BuildServer
/// resolves a relative path against the config file's directory).
struct Config {
    transport::ServerOptions server;
    /// How `syncline serve` writes its log lines: "text" (spdlog's default pattern) or "json" (one object per line).
    /// The binary's `--log-format` overrides it.
    std::string log_format = "text";
    std::vector<Schema> models;
    std::vector<RouteConfig> routes;
};

/// The group observer `group_by` configures: rows belong to "all" and to "<field>=<value>"; subscribe_group with
/// the field as an argument joins that value's group, without it the "all" group.
GroupObserver GroupByField(const Schema& schema, const std::string& field);

/// The mixin names a route may list, in the order docs/configuration.md ("Consumer routes") lists them.
const std::vector<std::string>& ConfigMixinNames();

/// The Mixin of a config name; throws std::out_of_range for an unknown one.
Mixin MixinByName(const std::string& name);

/// The permission names a route's "permissions" list accepts as strings (the object forms are "owner", "group",
/// "and", "or" and "not").
const std::vector<std::string>& ConfigPermissionNames();

/// Parses a configuration. A secret (`database`, `bus.redis`, `auth.jwt.secret`, a token's `token`) may be written
/// `{"env": "NAME"}`: it is read from the environment now, and an unset or empty variable is a ConfigError naming the
/// variable, never a value. Throws ConfigError (one line, key path and choices) on any problem: bad JSON, unknown
/// key, wrong type, unknown model, field, mixin or handler class, an invalid route pattern, a stream naming no
/// consumer route of the config, an invalid allowed_origins entry, or cookie authentication (`auth.cookie`) on a
/// route whose allowed_origins does not restrict origins.
Config ParseConfig(std::string_view json_text);

/// Builds a server from a parsed config: its options, models and routes (consumer, multiplexer and routed ones).
/// A relative `config.server.database`, and a relative folder of `static_mounts`, resolve against `base_dir` (the
/// config file's directory); a static folder that is not a directory throws ConfigError naming its key. Nothing is opened
/// or bound until Server::Start.
std::unique_ptr<transport::Server> BuildServer(const Config& config, const std::string& base_dir = ".");

}  // namespace syncline::config
