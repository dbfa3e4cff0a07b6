#include <syncline/transport/server.hpp>

#include <syncline/core/log.hpp>
#include <syncline/transport/websocket_server.hpp>

#include <spdlog/spdlog.h>

#include <filesystem>
#include <stdexcept>

namespace syncline {
namespace {

void InstallSpdlogSink() {
    SetLogSink([](LogLevel level, std::string_view message) {
        switch (level) {
            case LogLevel::kDebug:
                spdlog::debug("{}", message);
                break;
            case LogLevel::kInfo:
                spdlog::info("{}", message);
                break;
            case LogLevel::kWarn:
                spdlog::warn("{}", message);
                break;
            case LogLevel::kError:
                spdlog::error("{}", message);
                break;
        }
    });
}

storage::Synchronous ParseSynchronous(const std::string& name) {
    if (name == "full") return storage::Synchronous::kFull;
    if (name == "off") return storage::Synchronous::kOff;
    return storage::Synchronous::kNormal;
}

}  // namespace

Server::Server(ServerOptions options) : options_(std::move(options)) {}

Server::~Server() { Stop(); }

std::unique_ptr<Server> Server::FromConfig(const ServerConfig& config, const std::string& base_dir) {
    ServerOptions options;
    options.host = config.host;
    options.port = config.port;
    options.workers = config.workers;
    std::filesystem::path db(config.database);
    options.database = db.is_absolute() ? db.string() : (std::filesystem::path(base_dir) / db).string();
    options.synchronous = ParseSynchronous(config.synchronous);
    options.max_message_bytes = config.max_message_bytes;
    options.ping_interval = std::chrono::milliseconds(config.ping_interval_ms);
    options.pong_timeout = std::chrono::milliseconds(config.pong_timeout_ms);
    auto server = std::make_unique<Server>(options);
    for (const auto& schema : config.models) server->AddModel(schema);
    for (const auto& route : config.routes) {
        server->Route(route.path, std::make_shared<GenericConsumer>(route.consumer), route.endpoint);
    }
    return server;
}

void Server::AddModel(Schema schema) {
    if (db_) throw std::logic_error("Server::AddModel after Start");
    models_.push_back(std::move(schema));
}

void Server::Route(std::string path, std::shared_ptr<GenericConsumer> consumer, EndpointOptions options) {
    if (db_) throw std::logic_error("Server::Route after Start");
    if (!consumer) throw std::invalid_argument("Server::Route: null consumer for " + path);
    routes_.push_back(RouteEntry{std::move(path), std::move(consumer), options});
}

void Server::Prepare() {
    if (db_) throw std::logic_error("Server started twice");
    InstallSpdlogSink();
    storage::DatabaseOptions db_options;
    db_options.path = options_.database;
    db_options.synchronous = options_.synchronous;
    db_ = storage::Database::Open(db_options, models_);
    spdlog::info("database {} open (schema version {}, {} models)", options_.database, db_->SchemaVersion(),
                 models_.size());

    transport::ServerOptions ws_options;
    ws_options.host = options_.host;
    ws_options.port = options_.port;
    ws_options.workers = options_.workers;
    ws_options.max_message_bytes = options_.max_message_bytes;
    ws_options.ping_interval = options_.ping_interval;
    ws_options.pong_timeout = options_.pong_timeout;
    ws_ = std::make_unique<transport::WebSocketServer>(ws_options);
    for (auto& route : routes_) {
        try {
            route.consumer->Bind(*db_);
        } catch (const std::invalid_argument& e) {
            throw std::invalid_argument("route " + route.path + ": " + e.what());
        }
        ws_->Route(route.path, std::make_shared<ConsumerEndpoint>(route.consumer, route.options));
    }
}

void Server::Start() {
    Prepare();
    ws_->Start();
}

std::uint16_t Server::port() const { return ws_ ? ws_->port() : 0; }

void Server::Stop() {
    if (ws_) ws_->Stop();
}

int Server::Run() {
    Prepare();
    return ws_->Run();
}

storage::Database& Server::database() {
    if (!db_) throw std::logic_error("Server::database before Start");
    return *db_;
}

}  // namespace syncline
