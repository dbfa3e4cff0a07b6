#include <syncline/transport/server.hpp>

#include "server_metrics.hpp"

#include <syncline/core/protocol/multiplexer.hpp>
#include <syncline/core/protocol/routed.hpp>
#include <syncline/core/support/log.hpp>
#include <syncline/core/support/redact.hpp>
#include <syncline/core/support/stable_hash.hpp>
#include <syncline/observer/bus.hpp>
#include <syncline/observer/observer.hpp>
#include <syncline/observer/redis_bus.hpp>
#include <syncline/observer/relay.hpp>

#include <spdlog/spdlog.h>

#include <map>
#include <stdexcept>

namespace syncline::transport {
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

// Processes serving one database (and sharing a Redis) share channels; another database must never hear them.
std::string DefaultChannelPrefix(const std::string& text) {
    return "syncline:" + StableHashHex(text);
}

}  // namespace

Server::Server(ServerOptions options) : options_(std::move(options)) {}

Server::~Server() {
    Stop();
    // Sessions are gone (their subscriptions dropped) before anything else. Then the bus: its thread runs the handlers
    // that call into the relay (publish acknowledgements) and the observer (the catch-up after a reconnect), and its
    // destructor returns once that thread has stopped, so neither is called after it goes. The relay's thread was
    // stopped by Stop(), and the observer no longer calls the bus once the sessions are gone.
    ws_.reset();
    bus_.reset();
    relay_.reset();
    observer_.reset();
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

void Server::Multiplex(std::string path, std::vector<std::pair<std::string, std::string>> streams,
                       AllowedOrigins allowed_origins) {
    if (db_) throw std::logic_error("Server::Multiplex after Start");
    multiplexers_.push_back(MultiplexEntry{std::move(path), std::move(streams), std::move(allowed_origins)});
}

void Server::Prepare() {
    if (db_) throw std::logic_error("Server started twice");
    InstallSpdlogSink();
    storage::BackendOptions db_options;
    db_options.database = options_.database;
    db_options.synchronous = options_.synchronous;
    db_options.statement_cache_bytes = options_.statement_cache_bytes;
    // Models declared with "fields": "from_database" take their fields from their existing tables, read before the
    // database is opened (and migrated) with them; a consumer naming a field the table lacks fails when it binds.
    for (auto& model : models_) {
        if (!model.from_database()) continue;
        model = model.ResolveFields(storage::DescribeTable(options_.database, model.storage_table()));
        spdlog::info("model {}: {} fields read from table {}", model.table(), model.size(), model.storage_table());
    }
    db_ = storage::OpenBackend(db_options, models_);
    spdlog::info("database: {} open (schema version {}, {} models)", RedactCredentials(db_->Describe()),
                 db_->SchemaVersion(), models_.size());

    WebSocketOptions ws_options = options_;
    // Readiness from what the relay and the bus already know: a request never waits for the database.
    ws_options.readiness = [this]() -> std::string {
        if (relay_) {
            observer::Relay::Health health = relay_->health();
            if (!health.error.empty()) return RedactCredentials("database unavailable: " + health.error);
            if (options_.ready_max_relay_lag.count() > 0 && health.behind > options_.ready_max_relay_lag) {
                return "relay behind the change feed for " +
                       std::to_string(std::chrono::duration_cast<std::chrono::seconds>(health.behind).count()) +
                       " s (more than " + std::to_string(options_.ready_max_relay_lag.count()) + " ms)";
            }
        }
        if (bus_ && !bus_->connected()) {
            return "bus disconnected: Redis at " + RedactUrl(options_.redis_url) + " is unreachable";
        }
        return std::string();
    };
    if (options_.serve_metrics) {
        metrics_ = std::make_unique<ServerMetrics>();
        metered_store_ = std::make_unique<MeteredStore>(*db_, *metrics_);
        ws_options.metrics = [this]() {
            ServerMetrics::Sources sources;
            sources.websocket = ws_.get();
            sources.observer = observer_.get();
            sources.relay = relay_.get();
            sources.bus = bus_ && bus_->crosses_processes() ? bus_.get() : nullptr;
            sources.actions = executor_.get();
            sources.writes = write_executor_.get();
            sources.batches = batch_writer_.get();
            return metrics_->Render(sources);
        };
    }
    ws_ = std::make_unique<WebSocketServer>(ws_options);

    observer::ChannelLayout layout(
        options_.channel_prefix.empty() ? DefaultChannelPrefix(db_->Identity()) : options_.channel_prefix,
        options_.bus_shards);
    observer::RelayOptions relay_options;
    relay_options.trim_horizon = options_.trim_horizon;
    if (options_.redis_url.empty()) {
        // The relay's events reach the observer through the in-process bus as they are, on the relay's thread (no
        // encoding, no decoding).
        bus_ = std::make_unique<observer::InProcessBus>();
    } else {
        observer::RedisBusOptions redis_options;
        redis_options.url = options_.redis_url;
        bus_ = std::make_unique<observer::RedisBus>(redis_options);
        // One relay per database publishes (a lease in the database); its cursor follows what Redis confirmed.
        relay_options.use_lease = true;
        relay_options.acknowledged_publishes = true;
    }
    observer::Bus* bus = bus_.get();
    observer::Publisher publish = [bus](const std::string& channel, const observer::RowEvent& event,
                                        const Schema& schema) {
        // Tagged with the feed position (the relay's cursor), which is the version except for a row read ahead.
        bus->PublishEvent(channel, event, schema, event.position);
    };
    observer_ = std::make_unique<observer::Observer>(models_, *bus_, layout, db_->OpenChangeSource());
    observer_->SetMaxQueuedRows(options_.max_queued_rows);
    relay_ =
        std::make_unique<observer::Relay>(db_->OpenChangeSource(), models_, layout, std::move(publish), relay_options);
    spdlog::info("bus: {} ({} channels per table)",
                 options_.redis_url.empty() ? "in-process" : RedactUrl(options_.redis_url), layout.shards());
    executor_ = std::make_shared<transport::ThreadPoolExecutor>(options_.action_threads);
    if (options_.write_threads > 0) {
        write_executor_ = std::make_shared<transport::ThreadPoolExecutor>(options_.write_threads);
        if (options_.batch_writes && db_->PrefersBatchedWrites()) {
            batch_writer_ = std::make_shared<transport::BatchWriter>(*db_);
        }
    }
    std::map<std::string, std::shared_ptr<Endpoint>> endpoints;
    // Routes whose cookie credentials are ignored: cookie authentication requires an origin allow-list.
    std::string cookies_ignored;
    auto check_cookies = [&](const std::string& path, const std::optional<AuthOptions>& auth,
                             const AllowedOrigins& allowed) {
        if (auth && auth->authenticator && ReadsCookies(*auth->authenticator) && !RestrictsOrigins(allowed)) {
            cookies_ignored += (cookies_ignored.empty() ? "" : ", ") + path;
        }
    };
    for (auto& route : routes_) {
        try {
            // With metrics on, through the store that times each write.
            route.consumer->Bind(metered_store_ ? *metered_store_ : static_cast<ModelStore&>(*db_), observer_.get());
            if (metrics_) {
                std::vector<std::string> names;
                for (const ActionSpec& action : route.consumer->actions()) names.push_back(action.name);
                route.consumer->SetActionMeter(metrics_->RouteMeter(route.path, names));
            }
        } catch (const std::invalid_argument& e) {
            throw std::invalid_argument("route " + route.path + ": " + e.what());
        }
        EndpointOptions endpoint_options = route.options;
        if (!endpoint_options.auth) endpoint_options.auth = options_.auth;
        if (!endpoint_options.limits) endpoint_options.limits = options_.limits;
        if (!endpoint_options.allowed_origins) endpoint_options.allowed_origins = options_.allowed_origins;
        if (!endpoint_options.executor) endpoint_options.executor = executor_;
        if (!endpoint_options.write_executor) endpoint_options.write_executor = write_executor_;
        if (!endpoint_options.write_batcher && endpoint_options.write_executor == write_executor_) {
            endpoint_options.write_batcher = batch_writer_;
        }
        check_cookies(route.path, endpoint_options.auth, endpoint_options.allowed_origins);
        std::shared_ptr<ConsumerEndpoint> endpoint;
        try {
            endpoint = std::make_shared<ConsumerEndpoint>(route.consumer, std::move(endpoint_options));
        } catch (const std::invalid_argument& e) {
            throw std::invalid_argument("route " + route.path + ": " + e.what());
        }
        endpoints.emplace(route.path, endpoint);
        ws_->Route(route.path, endpoint);
    }
    // A stream is served by the very endpoint of its route: same consumer, options and handshake checks.
    for (auto& mux : multiplexers_) {
        std::vector<Multiplexer::Stream> streams;
        for (const auto& [name, target] : mux.streams) {
            auto it = endpoints.find(target);
            if (it == endpoints.end()) {
                throw std::invalid_argument("route " + mux.path + ": stream \"" + name + "\" names \"" + target +
                                            "\", which is not a consumer route");
            }
            streams.push_back(Multiplexer::Stream{name, it->second});
        }
        AllowedOrigins allowed = mux.allowed_origins ? mux.allowed_origins : options_.allowed_origins;
        check_cookies(mux.path, options_.auth, allowed);
        try {
            ws_->Route(mux.path, std::make_shared<Multiplexer>(std::move(streams), options_.auth,
                                                               options_.limits.max_json_depth, std::move(allowed)));
        } catch (const std::invalid_argument& e) {
            throw std::invalid_argument("route " + mux.path + ": " + e.what());
        }
    }
    if (!cookies_ignored.empty()) {
        spdlog::warn(
            "auth: cookie credentials are ignored on {}: cookie authentication requires allowed_origins (a list of "
            "the sites whose pages may connect, without \"*\"), or any site could open an authenticated socket as "
            "its visitor",
            cookies_ignored);
    }
}

void Server::StartObserving() {
    observer_->Start();
    // Before listening, so that a subscribe answered later never precedes the bus carrying its channel. Bounded: with
    // Redis down the server starts anyway, and the reconnect catch-up covers what it misses until Redis is back.
    if (!observer_->WaitSubscribed(std::chrono::seconds(2))) {
        spdlog::warn("bus: not every channel confirmed within 2 s; serving anyway (changes published before the bus "
                     "is up are read from the change feed when it is)");
    }
    // Wired after Observer::Start: the reconnect handler may run on the bus thread at once, and the observer's
    // change source must not be used by two threads.
    if (bus_->crosses_processes()) {
        observer::Relay* relay = relay_.get();
        observer::Observer* obs = observer_.get();
        bus_->SetPublishAckHandler([relay](std::int64_t version) { relay->OnAck(version); });
        // After an outage, re-read the feed from the last event seen: subscribers converge on the latest state.
        bus_->SetReconnectHandler([obs] { obs->CatchUp(); });
    }
    relay_->Start();
}

void Server::Start() {
    Prepare();
    StartObserving();
    ws_->Start();
}

std::uint16_t Server::port() const { return ws_ ? ws_->port() : 0; }

void Server::Stop() {
    if (ws_) ws_->Stop();
    // After the network: every session has closed, so running detached actions are cancelled and queued ones
    // never start; this waits for them to return before the database can go.
    // The batch writer first: its writes' completions hand waiting frames to the write pool.
    if (batch_writer_) batch_writer_->Shutdown();
    if (executor_) executor_->Shutdown();
    if (write_executor_) write_executor_->Shutdown();
    if (relay_) relay_->Stop();
}

int Server::Run() {
    Prepare();
    StartObserving();
    int code = ws_->Run();
    if (batch_writer_) batch_writer_->Shutdown();
    executor_->Shutdown();
    if (write_executor_) write_executor_->Shutdown();
    relay_->Stop();
    return code;
}

BatchWriterStats Server::batched_writes() const { return batch_writer_ ? batch_writer_->stats() : BatchWriterStats{}; }

std::int64_t Server::relayed_seq() const { return relay_ ? relay_->cursor() : 0; }

transport::ThreadPoolExecutor& Server::executor() {
    if (!executor_) throw std::logic_error("Server::executor before Start");
    return *executor_;
}

observer::Bus& Server::bus() {
    if (!bus_) throw std::logic_error("Server::bus before Start");
    return *bus_;
}

observer::Observer& Server::observer() {
    if (!observer_) throw std::logic_error("Server::observer before Start");
    return *observer_;
}

storage::Backend& Server::database() {
    if (!db_) throw std::logic_error("Server::database before Start");
    return *db_;
}

}  // namespace syncline::transport
