// The syncline server binary: `syncline serve --config FILE [--host H] [--port N] [--workers N]` serves the models
// and routes a JSON config declares (README.md documents the format).

#include <syncline/config/config.hpp>
#include <syncline/core/support/redact.hpp>
#include <syncline/transport/server.hpp>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace {

int Serve(const std::string& config_path, const std::string& host, int port, int workers) {
    std::ifstream file(config_path);
    if (!file) {
        std::fprintf(stderr, "syncline: cannot read config %s\n", config_path.c_str());
        return 2;
    }
    std::stringstream text;
    text << file.rdbuf();
    syncline::config::Config config;
    try {
        config = syncline::config::ParseConfig(text.str());
    } catch (const syncline::config::ConfigError& e) {
        std::fprintf(stderr, "syncline: config error: %s\n", syncline::RedactCredentials(e.what()).c_str());
        return 2;
    }
    if (!host.empty()) config.server.host = host;
    if (port >= 0) config.server.port = static_cast<std::uint16_t>(port);
    if (workers >= 0) config.server.workers = static_cast<unsigned>(workers);
    std::string base_dir = std::filesystem::absolute(config_path).parent_path().string();
    try {
        auto server = syncline::config::BuildServer(config, base_dir);
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
    app.require_subcommand(1);
    std::string config_path;
    std::string host;
    int port = -1;
    int workers = -1;
    CLI::App* serve = app.add_subcommand("serve", "Serve the models and routes of a JSON config");
    serve->add_option("--config", config_path, "The JSON config file")->required();
    serve->add_option("--host", host, "Listen on this address (overrides listen.host)");
    serve->add_option("--port", port, "Listen on this port, 0 for any free one (overrides listen.port)")
        ->check(CLI::Range(0, 65535));
    serve->add_option("--workers", workers, "Network threads, 0 for one per core (overrides workers)")
        ->check(CLI::Range(0, 256));
    CLI11_PARSE(app, argc, argv);
    if (serve->parsed()) return Serve(config_path, host, port, workers);
    return 0;
}
