#pragma once
// Private to transport: what a Server answers on GET /metrics (Prometheus text format 0.0.4), serialized with
// prometheus-cpp's data model and text serializer.
//
// Two kinds of metric. Those counted as they happen: actions by route, action name and status, action latency, and
// the time of each single write in the database (ActionMeter and MeteredStore report them, from any thread). They are
// relaxed atomics of our own, lock-free on the request path: prometheus-cpp 1.0's own counters hash their labels on
// each Family::Add and its histograms take a mutex per observation, which cost 5-14 % of `retrieve` throughput with
// 64 connections on two network threads (benchmarks/README.md). Those other modules already count (the transport's
// frames and closes, the observer's pushes, the relay's lag, the bus's link, the executors' queues) are read when a
// scrape comes, in Render: nothing on their paths changes for metrics.
//
// Cardinality is bounded whatever clients send: routes come from the configuration, action labels are the routes'
// action names or one of two fixed labels (ActionMeter), statuses are HTTP-like codes (100-599; anything else counts
// as 500).

#include <syncline/core/model/store.hpp>
#include <syncline/core/support/action_meter.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace syncline {
namespace observer {
class Observer;
class Relay;
class Bus;
}  // namespace observer

namespace transport {

class WebSocketServer;
class BatchWriter;
class ThreadPoolExecutor;

/// A latency histogram with fixed buckets (0.5 ms to 10 s), observed without a lock from any thread.
class LatencyHistogram {
public:
    /// Upper bounds of the buckets, in seconds (a last bucket, +Inf, holds the rest).
    static constexpr std::array<double, 14> kBounds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                    0.1,    0.25,  0.5,    1,     2.5,  5,     10};
    void Observe(std::chrono::steady_clock::duration elapsed);
    std::uint64_t count() const;
    /// Cumulative bucket counts and sum, as Prometheus wants them. The buckets are read one by one, so a snapshot taken
    /// while observations land may be off by those few; never inconsistent enough to go backwards between scrapes.
    struct Snapshot {
        std::array<std::uint64_t, kBounds.size() + 1> cumulative{};
        double sum_seconds = 0;
    };
    Snapshot Take() const;

private:
    std::array<std::atomic<std::uint64_t>, kBounds.size() + 1> counts_{};
    std::atomic<std::uint64_t> sum_ns_{0};
};

class ServerMetrics {
public:
    ServerMetrics();
    ~ServerMetrics();
    ServerMetrics(const ServerMetrics&) = delete;
    ServerMetrics& operator=(const ServerMetrics&) = delete;

    /// A meter for one route's actions (syncline_actions_total, syncline_action_seconds with route="<path>"). `actions`
    /// are the route's action names, counted without a lock; a name outside them (a routed consumer's default action)
    /// takes a short lock the first time. Before serving.
    std::shared_ptr<ActionMeter> RouteMeter(const std::string& route, const std::vector<std::string>& actions);

    /// One single write (create, update, patch or delete) took this long in the database: waiting for the writer, its
    /// transaction and its commit. Any thread.
    void ObserveWrite(std::chrono::steady_clock::duration elapsed) { write_seconds_.Observe(elapsed); }

    /// What Render reads. Any of them may be null (not started, or not used: no Redis bus, no write pool).
    struct Sources {
        const WebSocketServer* websocket = nullptr;
        const observer::Observer* observer = nullptr;
        const observer::Relay* relay = nullptr;
        const observer::Bus* bus = nullptr;  // null: a bus inside this process, always connected
        const ThreadPoolExecutor* actions = nullptr;
        const ThreadPoolExecutor* writes = nullptr;
        const BatchWriter* batches = nullptr;
    };
    /// The exposition text. Any thread; quick (no database round trip).
    std::string Render(const Sources& sources) const;

private:
    class RouteActionMeter;
    LatencyHistogram write_seconds_;
    mutable std::mutex meters_mutex_;
    std::vector<std::shared_ptr<RouteActionMeter>> meters_;  // guarded by meters_mutex_
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
