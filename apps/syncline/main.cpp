// The server binary:
//   syncline serve --config FILE [--host H] [--port N] [--workers N] [--log-level L] [--log-format F]
//   syncline check --config FILE
//   syncline --version
// serves (or only checks) the models and routes a JSON config declares (docs/configuration.md documents the format).
// Exit codes: 0 success; 1 the server could not start or stopped on an error; 2 the config is unreadable or invalid,
// for serve and check alike; a malformed command line exits with CLI11's code (105-115).

#include <syncline/config/config.hpp>
#include <syncline/core/support/redact.hpp>
#include <syncline/storage/backend.hpp>
#include <syncline/transport/server.hpp>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <pthread.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "log_setup.hpp"
#include "syncline_version.hpp"

namespace {

constexpr int kConfigInvalid = 2;

std::string VersionText() {
    std::string text = std::string("syncline ") + SYNCLINE_VERSION;
    if (*SYNCLINE_GIT_COMMIT) text += std::string(" (git ") + SYNCLINE_GIT_COMMIT + ")";
    return text;
}

// Reads and parses the config as serve does; prints the one-line error and returns nullopt on failure. Secrets named
// by {"env": ...} are read here.
std::optional<syncline::config::Config> LoadConfig(const std::string& config_path) {
    std::ifstream file(config_path);
    if (!file) {
        std::fprintf(stderr, "syncline: cannot read config %s\n", config_path.c_str());
        return std::nullopt;
    }
    std::stringstream text;
    text << file.rdbuf();
    try {
        return syncline::config::ParseConfig(text.str());
    } catch (const syncline::config::ConfigError& e) {
        std::fprintf(stderr, "syncline: config error: %s\n", syncline::RedactCredentials(e.what()).c_str());
        return std::nullopt;
    }
}

std::string BaseDir(const std::string& config_path) {
    return std::filesystem::absolute(config_path).parent_path().string();
}

// `syncline check`: everything serve does before it opens the database, binds or connects, and nothing after. It
// builds the server object (BuildServer opens nothing), so a config it accepts fails in serve only for what needs the
// world: the database (unreachable, a schema conflict, a "from_database" table), the port, Redis.
int Check(const std::string& config_path) {
    std::optional<syncline::config::Config> config = LoadConfig(config_path);
    if (!config) return kConfigInvalid;
    try {
        syncline::config::BuildServer(*config, BaseDir(config_path));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "syncline: config error: %s\n", syncline::RedactCredentials(e.what()).c_str());
        return kConfigInvalid;
    }
    const auto& server = config->server;
    const std::string database = syncline::storage::IsPostgresUrl(server.database)
                                     ? "PostgreSQL " + syncline::RedactUrl(server.database)
                                     : "SQLite " + server.database;
    const std::string bus = server.redis_url.empty() ? "in-process" : syncline::RedactUrl(server.redis_url);
    std::printf("config OK: %zu route%s, %zu model%s; listen %s:%u; database %s (not opened); bus %s (not connected)\n",
                config->routes.size(), config->routes.size() == 1 ? "" : "s", config->models.size(),
                config->models.size() == 1 ? "" : "s", server.host.c_str(), static_cast<unsigned>(server.port),
                database.c_str(), bus.c_str());
    return 0;
}

struct ServeFlags {
    std::string host;
    int port = -1;
    int workers = -1;
    std::optional<std::string> log_level;
    std::optional<std::string> log_format;
};

int Serve(const std::string& config_path, const ServeFlags& flags) {
    // Before any thread exists, so that every thread inherits it: SIGTERM and SIGINT stay pending until
    // WebSocketServer::Run reads them from a signalfd (one that arrives while the server starts is answered as soon as
    // it runs, with the same graceful stop).
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    std::optional<syncline::config::Config> loaded = LoadConfig(config_path);
    if (!loaded) return kConfigInvalid;
    syncline::config::Config& config = *loaded;
    if (!flags.host.empty()) config.server.host = flags.host;
    if (flags.port >= 0) config.server.port = static_cast<std::uint16_t>(flags.port);
    if (flags.workers >= 0) config.server.workers = static_cast<unsigned>(flags.workers);
    const std::string format = flags.log_format.value_or(config.log_format);
    syncline::app::ConfigureLog(flags.log_level,
                                format == "json" ? syncline::app::LogFormat::kJson : syncline::app::LogFormat::kText);
    try {
        auto server = syncline::config::BuildServer(config, BaseDir(config_path));
        return server->Run();
    } catch (const std::exception& e) {
        // Start-up errors quote URLs (e.g. a malformed bus URL): never with their password.
        spdlog::error("syncline: cannot start: {}", syncline::RedactCredentials(e.what()));
        return 1;
    }
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"syncline: a realtime sync engine with a DCRF-compatible websocket API"};
    app.set_version_flag("--version", VersionText(), "Print the version (and git commit) and exit");
    app.require_subcommand(1);
    std::string config_path;
    ServeFlags flags;
    CLI::App* serve = app.add_subcommand("serve", "Serve the models and routes of a JSON config");
    serve->add_option("--config", config_path, "The JSON config file")->required();
    serve->add_option("--host", flags.host, "Listen on this address (overrides listen.host)");
    serve->add_option("--port", flags.port, "Listen on this port, 0 for any free one (overrides listen.port)")
        ->check(CLI::Range(0, 65535));
    serve->add_option("--workers", flags.workers, "Network threads, 0 for one per core (overrides workers)")
        ->check(CLI::Range(0, 256));
    serve->add_option("--log-level", flags.log_level, "Log lines at this level and above (overrides SPDLOG_LEVEL)")
        ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
    serve
        ->add_option("--log-format", flags.log_format, "text, or json: one JSON object per line (overrides log_format)")
        ->check(CLI::IsMember({"text", "json"}));
    CLI::App* check = app.add_subcommand("check", "Validate a config as serve would, without serving it");
    check->add_option("--config", config_path, "The JSON config file")->required();
    CLI11_PARSE(app, argc, argv);  // --help and --version exit 0; a bad command line exits with CLI11's code
    if (serve->parsed()) return Serve(config_path, flags);
    if (check->parsed()) return Check(config_path);
    return 0;
}
