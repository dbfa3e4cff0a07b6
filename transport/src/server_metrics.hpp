#pragma once
// Private to transport: what a Server answers on GET /metrics (Prometheus text format 0.0.4), built with prometheus-cpp's
// registry and text serializer.
//
// Two kinds of metric. Those counted as they happen live in the registry: actions by route, action name and status,
// action latency, and the time of each single write in the database (ActionMeter and MeteredStore report them, from
// any thread). Those other modules already count (the transport's frames and closes, the observer's pushes, the relay's
// lag, the bus's link, the executors' queues) are read when a scrape comes, in Render, and serialized with the rest:
// nothing on their paths changes for metrics.
//
// Cardinality is bounded whatever clients send: routes come from the configuration, action labels are the routes'
// action names or one of two fixed labels (ActionMeter), statuses are the few the server answers.

#include <syncline/core/model/store.hpp>
#include <syncline/core/support/action_meter.hpp>

#include <chrono>
#include <memory>
#include <string>

namespace prometheus {
class Registry;
class Histogram;
}  // namespace prometheus

namespace syncline {
namespace observer {
class Observer;
class Relay;
class RedisBus;
}  // namespace observer

namespace transport {

class WebSocketServer;
class ThreadPoolExecutor;

class ServerMetrics {
public:
    ServerMetrics();
    ~ServerMetrics();
    ServerMetrics(const ServerMetrics&) = delete;
    ServerMetrics& operator=(const ServerMetrics&) = delete;

    /// A meter for one route's actions (syncline_actions_total, syncline_action_seconds with route="<path>").
    std::shared_ptr<ActionMeter> RouteMeter(const std::string& route);

    /// One single write (create, update, patch or delete) took this long in the database: waiting for the writer, its
    /// transaction and its commit. Any thread.
    void ObserveWrite(std::chrono::steady_clock::duration elapsed);

    /// What Render reads. Any of them may be null (not started, or not used: no Redis bus, no write pool).
    struct Sources {
        const WebSocketServer* websocket = nullptr;
        const observer::Observer* observer = nullptr;
        const observer::Relay* relay = nullptr;
        const observer::RedisBus* redis = nullptr;  // null: the in-process bus, always connected
        const ThreadPoolExecutor* actions = nullptr;
        const ThreadPoolExecutor* writes = nullptr;
    };
    /// The exposition text. Any thread; quick (no database round trip).
    std::string Render(const Sources& sources) const;

private:
    class RouteActionMeter;
    std::shared_ptr<prometheus::Registry> registry_;
    prometheus::Histogram* write_seconds_ = nullptr;
};

/// A ModelStore that forwards everything to another and reports the time of each single write (Insert, Patch,
/// Delete) to ServerMetrics. What the consumers bind to when metrics are on. Thread-safe as the store it wraps.
class MeteredStore final : public ModelStore {
public:
    MeteredStore(ModelStore& store, ServerMetrics& metrics) : store_(store), metrics_(metrics) {}

    const Schema& Model(std::string_view table) const override { return store_.Model(table); }
    std::optional<Row> Get(std::string_view table, std::string_view field, const Value& value) const override {
        return store_.Get(table, field, value);
    }
    std::vector<Row> List(std::string_view table, const Query& query) const override {
        return store_.List(table, query);
    }
    std::int64_t Count(std::string_view table, const std::vector<Filter>& filters) const override {
        return store_.Count(table, filters);
    }
    Row Insert(std::string_view table, const Assignments& values) override;
    std::optional<Row> Patch(std::string_view table, const Value& pk, const Assignments& values) override;
    bool Delete(std::string_view table, const Value& pk) override;
    std::int64_t RowVersion(std::string_view table, const Value& pk) const override {
        return store_.RowVersion(table, pk);
    }
    std::optional<LastChangeInfo> LastChange(std::string_view table, const Value& pk) const override {
        return store_.LastChange(table, pk);
    }
    std::string Epoch() const override { return store_.Epoch(); }
    std::unique_ptr<ReadScope> ReadSnapshot() const override { return store_.ReadSnapshot(); }
    std::optional<std::vector<ChangedRow>> ChangedSince(std::string_view table, std::int64_t since) const override {
        return store_.ChangedSince(table, since);
    }

private:
    ModelStore& store_;
    ServerMetrics& metrics_;
};

}  // namespace transport
}  // namespace syncline
