// From a parsed config to a transport::Server: its options as parsed (a relative SQLite path resolved against the
// config file's directory, as are static folders; a PostgreSQL URL as it is), its models, and one route per config
// route.

#include <syncline/config/config.hpp>

#include <syncline/core/protocol/routed.hpp>
#include <syncline/storage/backend.hpp>

#include <filesystem>
#include <system_error>

namespace syncline::config {

std::unique_ptr<transport::Server> BuildServer(const Config& config, const std::string& base_dir) {
    transport::ServerOptions options = config.server;
    if (!storage::IsPostgresUrl(options.database)) {
        std::filesystem::path db(options.database);
        options.database = db.is_absolute() ? db.string() : (std::filesystem::path(base_dir) / db).string();
    }
    for (auto& mount : options.static_mounts) {
        std::filesystem::path folder(mount.folder);
        if (!folder.is_absolute()) mount.folder = (std::filesystem::path(base_dir) / folder).string();
        // Checked here too (the server checks again at Start), so that `syncline check` reports it and serve stops
        // before it opens the database.
        std::error_code ec;
        if (!std::filesystem::is_directory(mount.folder, ec)) {
            throw ConfigError("static." + mount.prefix + ": " + mount.folder + " is not a folder");
        }
    }
    auto server = std::make_unique<transport::Server>(std::move(options));
    for (const auto& schema : config.models) server->AddModel(schema);
    for (const auto& route : config.routes) {
        if (!route.streams.empty()) {
            server->Multiplex(route.path, route.streams, route.endpoint.allowed_origins);
        } else if (!route.routepatterns.empty()) {
            std::vector<RoutePattern> patterns;
            for (const auto& pattern : route.routepatterns) {
                patterns.push_back(RoutePattern{pattern.pattern, std::make_shared<GenericConsumer>(pattern.consumer)});
            }
            server->Route(route.path, std::make_shared<RoutedConsumer>(std::move(patterns)), route.endpoint);
        } else {
            server->Route(route.path, std::make_shared<GenericConsumer>(route.consumer), route.endpoint);
        }
    }
    return server;
}

}  // namespace syncline::config
