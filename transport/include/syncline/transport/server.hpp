#pragma once
/// \file
/// The composition root: a Server opens the database with every model, binds consumers to it and serves them over
/// websockets. Built from C++ (Route<Consumer>) or from a JSON config (config::BuildServer, what `syncline serve`
/// runs).

#include <syncline/core/auth/auth.hpp>
#include <syncline/core/consumer/connection.hpp>
#include <syncline/core/consumer/consumer.hpp>
#include <syncline/core/model/model.hpp>
#include <syncline/core/model/schema.hpp>
#include <syncline/core/protocol/consumer_endpoint.hpp>
#include <syncline/storage/backend.hpp>
#include <syncline/transport/batch_writer.hpp>
#include <syncline/transport/thread_pool_executor.hpp>
#include <syncline/transport/websocket_server.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace syncline {
namespace observer {
class Bus;
class Observer;
class Relay;
}  // namespace observer

namespace transport {

class ServerMetrics;

/// How a Server listens and stores. Defaults are the embedded ones: 127.0.0.1:8000, in-process bus. The websocket
/// fields (host, port, workers, max_message_bytes, ping_interval, pong_timeout, max_queue_bytes, slow_reader_timeout,
/// max_connections, max_handshakes, ...) are WebSocketOptions', documented there; Server hands them to its
/// WebSocketServer as they are. `port` 0 picks a free port (read it back with Server::port()).
struct ServerOptions : WebSocketOptions {
    /// The database (storage::OpenBackend): an SQLite file path, or a "postgresql://..." URL.
    std::string database;
    storage::Synchronous synchronous = storage::Synchronous::kNormal;  ///< SQLite only.
    /// "" for the in-process bus (one process); "redis://host:port/db" to fan out across processes and nodes.
    std::string redis_url;
    unsigned bus_shards = 16;    ///< Channels per table on the bus.
    std::string channel_prefix;  ///< Default: "syncline:" + a hash of the database file's absolute path.
    std::chrono::milliseconds trim_horizon{600000};  ///< Captured changes are kept this long (catch-up window).
    /// With a bus between processes: the most rows whose changes may wait for this process's delivery thread at once
    /// (one entry per row, the latest state); past it the waiting changes are dropped and read from the change feed
    /// instead (observer::Observer::SetMaxQueuedRows).
    std::size_t max_queued_rows = 100000;
    /// Authentication of every route's handshakes (a route's own EndpointOptions::auth overrides it). Default: no
    /// authenticator, every connection anonymous. Cookie credentials are read only on routes whose allowed origins
    /// restrict who may connect (RestrictsOrigins); otherwise they are ignored, with one warning at Start.
    AuthOptions auth;
    /// Which browser origins may open sockets on every route (AllowedOrigins; a route's own
    /// EndpointOptions::allowed_origins, or Multiplex's, overrides it). nullopt: any origin.
    AllowedOrigins allowed_origins;
    /// Threads of the executor that runs detached actions (streamed lists, custom detached actions) for every
    /// route; 0 means one per core, at least 2. Connections take turns on them; a streamed list waiting for a slow
    /// reader holds none (a custom handler that blocks holds one while it blocks).
    unsigned action_threads = 0;
    /// Threads that run writes (create, update, patch, delete, custom writers) for every route, so a write waiting
    /// for the database holds no network thread and the writes of many sockets meet in one transaction (group
    /// commit). A socket's requests stay one at a time and in order: its next frames wait behind its write, and its
    /// socket is not read meanwhile. 0: writes run on the network threads, as reads do.
    unsigned write_threads = 32;
    /// With write_threads > 0 and a store that prefers batches (SQLite, Backend::PrefersBatchedWrites; PostgreSQL
    /// writes stay on the write pool): write requests run whole, one after another, on
    /// one batch writer thread, each batch of them in one transaction (each request in a savepoint of its own, its
    /// reply sent once the batch committed), so a write costs no pool thread and its reads run on the writer
    /// (transport::BatchWriter). The write pool then answers only the frames that waited behind a write. false: writes
    /// run on the write pool and meet through group commit. A slow custom write action delays every write behind it
    /// while batched.
    bool batch_writes = true;
    /// GET /readyz answers 503 while this process's relay has been behind the change feed (reading full batches
    /// without reaching its end) for longer than this; 0: the lag is not checked. It also answers 503 while the relay
    /// cannot read the database and while the Redis bus is disconnected.
    std::chrono::milliseconds ready_max_relay_lag{10000};
    /// GET /metrics on the server's port answers the server's metrics in Prometheus text format (docs/operations.md);
    /// off: it answers 404. The metrics name routes and count traffic: keep the port, or the path, off the internet
    /// (deployment.md's proxy configurations forward only the websocket routes).
    bool serve_metrics = true;
    /// What each connection may send and hold (nesting depth, request_id size, subscriptions, `__in` values); a
    /// route's own EndpointOptions::limits overrides it.
    ConnectionLimits limits;
    /// Memory of the prepared statements each SQLite connection keeps (storage::DatabaseOptions); SQLite only.
    std::size_t statement_cache_bytes = 4 * 1024 * 1024;
};

/// A syncline server. Declare models and routes, then Run (or Start/Stop). Not thread-safe: configure and run it
/// from one controlling thread; Stop may also be called from another thread while Run blocks.
class Server {
public:
    explicit Server(ServerOptions options);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    /// Declares a model (before Start). A model made by Schema::FromDatabase takes its fields from its existing table
    /// when Start opens the database (storage::DescribeTable); Start throws StoreError naming the table when that
    /// table is missing or cannot be served.
    void AddModel(Schema schema);
    /// Declares a typed model (before Start).
    template <class T>
    void Model() {
        AddModel(SchemaOf<T>());
    }
    /// Serves `consumer` at `path` (before Start).
    void Route(std::string path, std::shared_ptr<GenericConsumer> consumer, EndpointOptions options = {});
    /// Serves a multiplexer (docs/protocol.md §9) at `path`: each (stream name, route path) pair names a route declared
    /// with Route (in any order, before Start), whose consumer then also answers on this socket as that stream;
    /// those routes stay served at their own paths too. Start throws std::invalid_argument naming a path that is
    /// not a consumer route. `allowed_origins`: this socket's own (nullopt: ServerOptions::allowed_origins).
    void Multiplex(std::string path, std::vector<std::pair<std::string, std::string>> streams,
                   AllowedOrigins allowed_origins = std::nullopt);
    /// Constructs a consumer of type C from `args` and serves it at `path`; returns it.
    template <class C, class... Args>
    C& Route(std::string path, Args&&... args) {
        auto consumer = std::make_shared<C>(std::forward<Args>(args)...);
        C& ref = *consumer;
        Route(std::move(path), std::move(consumer));
        return ref;
    }

    /// Opens the database (migrating it), binds every consumer and starts listening. Throws on a bad model, route
    /// or address (the message names it).
    void Start();
    /// The bound port; 0 before Start.
    std::uint16_t port() const;
    /// Drains and stops (SIGTERM semantics: close sockets with 1001 after what is queued), then lets the detached
    /// actions still running finish (their sockets are closed, so they are cancelled) and joins their executor.
    /// Idempotent.
    void Stop();
    /// Start, block until SIGTERM/SIGINT, Stop. Returns 0.
    int Run();
    /// The database (after Start), whichever engine.
    storage::Backend& database();
    /// The last change seq the relay has read and published (after Start).
    std::int64_t relayed_seq() const;
    /// What the batch writer has done (all zero when writes are not batched: ServerOptions::batch_writes).
    BatchWriterStats batched_writes() const;
    /// The observer (after Start): subscription counts and delivery statistics.
    observer::Observer& observer();
    /// The bus the relay publishes through and the observer listens on (after Start): in-process, or Redis.
    observer::Bus& bus();
    /// The executor of detached actions shared by the routes (after Start).
    transport::ThreadPoolExecutor& executor();

private:
    // Opens the database, binds the consumers and routes them (everything but listening).
    void Prepare();
    // Starts the observer and the relay (after Prepare, before listening).
    void StartObserving();
    struct RouteEntry {
        std::string path;
        std::shared_ptr<GenericConsumer> consumer;
        EndpointOptions options;
    };
    struct MultiplexEntry {
        std::string path;
        std::vector<std::pair<std::string, std::string>> streams;
        AllowedOrigins allowed_origins;
    };
    ServerOptions options_;
    std::vector<Schema> models_;
    std::vector<RouteEntry> routes_;
    std::vector<MultiplexEntry> multiplexers_;
    std::unique_ptr<storage::Backend> db_;
    std::unique_ptr<ServerMetrics> metrics_;       // null when serve_metrics is off
    std::unique_ptr<ModelStore> metered_store_;  // db_ with its writes timed, what the consumers bind to (metrics on)
    std::shared_ptr<transport::ThreadPoolExecutor> executor_;
    std::shared_ptr<transport::ThreadPoolExecutor> write_executor_;  // null when write_threads is 0
    std::shared_ptr<transport::BatchWriter>
        batch_writer_;  // null unless batch_writes, write_threads and the store allow
    std::unique_ptr<observer::Bus> bus_;
    std::unique_ptr<observer::Observer> observer_;
    std::unique_ptr<observer::Relay> relay_;
    std::unique_ptr<WebSocketServer> ws_;
};

}  // namespace transport
}  // namespace syncline
