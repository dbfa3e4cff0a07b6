// GET /metrics: the registry's counters and histograms, plus the families Render reads from the modules that already
// count (see server_metrics.hpp).

#include "server_metrics.hpp"

#include <syncline/observer/observer.hpp>
#include <syncline/observer/redis_bus.hpp>
#include <syncline/observer/relay.hpp>
#include <syncline/transport/thread_pool_executor.hpp>
#include <syncline/transport/websocket_server.hpp>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

namespace syncline::transport {
namespace {

double Seconds(std::chrono::steady_clock::duration elapsed) {
    return std::chrono::duration<double>(elapsed).count();
}

// From half a millisecond (a read served from memory) to ten seconds (a write stuck behind a slow disk).
const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
    static const prometheus::Histogram::BucketBoundaries kBuckets{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                                   0.1,    0.25,  0.5,    1,     2.5,  5,    10};
    return kBuckets;
}

prometheus::MetricFamily Family(std::string name, std::string help, prometheus::MetricType type) {
    prometheus::MetricFamily family;
    family.name = std::move(name);
    family.help = std::move(help);
    family.type = type;
    return family;
}

prometheus::ClientMetric Sample(prometheus::MetricType type, double value,
                               std::vector<prometheus::ClientMetric::Label> labels = {}) {
    prometheus::ClientMetric metric;
    metric.label = std::move(labels);
    if (type == prometheus::MetricType::Counter) {
        metric.counter.value = value;
    } else {
        metric.gauge.value = value;
    }
    return metric;
}

// A family with one unlabelled value.
prometheus::MetricFamily Single(std::string name, std::string help, prometheus::MetricType type, double value) {
    prometheus::MetricFamily family = Family(std::move(name), std::move(help), type);
    family.metric.push_back(Sample(type, value));
    return family;
}

// Reports the time from its construction to its destruction as one write (a write that throws counts too).
class WriteTimer {
public:
    explicit WriteTimer(ServerMetrics& metrics) : metrics_(metrics) {}
    WriteTimer(const WriteTimer&) = delete;
    WriteTimer& operator=(const WriteTimer&) = delete;
    ~WriteTimer() { metrics_.ObserveWrite(std::chrono::steady_clock::now() - start_); }

private:
    ServerMetrics& metrics_;
    const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace

// The families are created once by ServerMetrics; each route's meter keeps the series it has added, so that a request
// costs one short lock and a lookup, not the family's own (which hashes the labels each time).
class ServerMetrics::RouteActionMeter final : public ActionMeter {
public:
    RouteActionMeter(std::string route, prometheus::Family<prometheus::Counter>& actions,
                     prometheus::Family<prometheus::Histogram>& seconds)
        : route_(std::move(route)), actions_(actions), seconds_(seconds) {}

    void Record(std::string_view action, int status, std::chrono::steady_clock::duration elapsed) override {
        prometheus::Counter* counter = nullptr;
        prometheus::Histogram* histogram = nullptr;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            std::string key(action);
            auto latency = by_action_.find(key);
            if (latency == by_action_.end()) {
                latency = by_action_
                              .emplace(key, &seconds_.Add({{"route", route_}, {"action", key}}, LatencyBuckets()))
                              .first;
            }
            histogram = latency->second;
            key += '\n';
            key += std::to_string(status);
            auto count = by_status_.find(key);
            if (count == by_status_.end()) {
                count = by_status_
                            .emplace(key, &actions_.Add({{"route", route_},
                                                         {"action", std::string(action)},
                                                         {"status", std::to_string(status)}}))
                            .first;
            }
            counter = count->second;
        }
        counter->Increment();
        histogram->Observe(Seconds(elapsed));
    }

private:
    const std::string route_;
    prometheus::Family<prometheus::Counter>& actions_;
    prometheus::Family<prometheus::Histogram>& seconds_;
    std::mutex mutex_;
    std::unordered_map<std::string, prometheus::Counter*> by_status_;     // guarded by mutex_; "action\nstatus"
    std::unordered_map<std::string, prometheus::Histogram*> by_action_;  // guarded by mutex_
};

ServerMetrics::ServerMetrics() : registry_(std::make_shared<prometheus::Registry>()) {
    write_seconds_ = &prometheus::BuildHistogram()
                          .Name("syncline_write_seconds")
                          .Help("Time of each single write (create, update, patch, delete) in the database: waiting "
                                "for the writer, its transaction and its commit")
                          .Register(*registry_)
                          .Add({}, LatencyBuckets());
}

ServerMetrics::~ServerMetrics() = default;

std::shared_ptr<ActionMeter> ServerMetrics::RouteMeter(const std::string& route) {
    // Registering a name twice returns the family already registered.
    auto& actions = prometheus::BuildCounter()
                        .Name("syncline_actions_total")
                        .Help("Requests answered, by route, action and reply status")
                        .Register(*registry_);
    auto& seconds = prometheus::BuildHistogram()
                        .Name("syncline_action_seconds")
                        .Help("Time from reading a request's frame to queuing its reply, by route and action")
                        .Register(*registry_);
    return std::make_shared<RouteActionMeter>(route, actions, seconds);
}

void ServerMetrics::ObserveWrite(std::chrono::steady_clock::duration elapsed) {
    write_seconds_->Observe(Seconds(elapsed));
}

std::string ServerMetrics::Render(const Sources& sources) const {
    using prometheus::MetricType;
    std::vector<prometheus::MetricFamily> families = registry_->Collect();
    if (const WebSocketServer* ws = sources.websocket) {
        WebSocketStats stats = ws->stats();
        prometheus::MetricFamily connections =
            Family("syncline_connections", "Open websocket connections, by route", MetricType::Gauge);
        for (const auto& [route, open] : stats.connections) {
            connections.metric.push_back(Sample(MetricType::Gauge, static_cast<double>(open), {{"route", route}}));
        }
        families.push_back(std::move(connections));
        families.push_back(Single("syncline_frames_received_total", "Websocket frames received (text and binary)",
                                  MetricType::Counter, static_cast<double>(stats.frames_in)));
        families.push_back(Single("syncline_frames_sent_total",
                                  "Websocket data frames handed to sockets: replies and pushes", MetricType::Counter,
                                  static_cast<double>(stats.frames_out)));
        families.push_back(Single("syncline_pushes_coalesced_total",
                                  "Pushes replaced, in a socket's queue that could not keep up, by a newer push of the "
                                  "same row (the latest state wins)",
                                  MetricType::Counter, static_cast<double>(stats.pushes_replaced)));
        families.push_back(Single("syncline_slow_reader_closes_total",
                                  "Connections closed with 1013 because they read too slowly", MetricType::Counter,
                                  static_cast<double>(stats.slow_reader_closes)));
    }
    if (const observer::Observer* observer = sources.observer) {
        observer::ObserverStats stats = observer->stats();
        families.push_back(Single("syncline_pushes_delivered_total", "Push frames handed to subscribed sockets",
                                  MetricType::Counter, static_cast<double>(stats.frames)));
        families.push_back(Single("syncline_row_events_total", "Row changes the observer processed",
                                  MetricType::Counter, static_cast<double>(stats.events)));
        families.push_back(Single("syncline_bus_catch_ups_total",
                                  "Reads of the change feed after the bus reconnected", MetricType::Counter,
                                  static_cast<double>(stats.catch_ups)));
    }
    if (const observer::Relay* relay = sources.relay) {
        observer::Relay::Health health = relay->health();
        families.push_back(Single("syncline_relay_publishing",
                                  "1 while this process's relay publishes the change feed (holds the lease), else 0",
                                  MetricType::Gauge, relay->publishing() ? 1 : 0));
        families.push_back(Single("syncline_relay_up",
                                  "0 while the relay's last attempt to read the change feed failed, else 1",
                                  MetricType::Gauge, health.error.empty() ? 1 : 0));
        families.push_back(Single("syncline_relay_lag_changes",
                                  "Changes in the feed after the last batch the relay read (0 once it reaches the end)",
                                  MetricType::Gauge, static_cast<double>(health.behind_changes)));
        families.push_back(Single("syncline_relay_lag_seconds",
                                  "How long the relay has been reading full batches without reaching the end of the "
                                  "change feed (0 while it keeps up)",
                                  MetricType::Gauge, Seconds(health.behind)));
        families.push_back(Single("syncline_relay_changes_coalesced_total",
                                  "Changes the relay folded into a later change of the same row in the same batch",
                                  MetricType::Counter, static_cast<double>(relay->coalesced())));
    }
    if (const observer::RedisBus* redis = sources.redis) {
        observer::RedisBus::Stats stats = redis->stats();
        families.push_back(Single("syncline_bus_connected", "1 while the bus is connected, else 0", MetricType::Gauge,
                                  redis->connected() ? 1 : 0));
        families.push_back(Single("syncline_bus_reconnects_total", "Times a lost Redis connection came back",
                                  MetricType::Counter, static_cast<double>(stats.reconnects)));
        families.push_back(Single("syncline_bus_published_total", "Events published to Redis", MetricType::Counter,
                                  static_cast<double>(stats.published)));
        families.push_back(Single("syncline_bus_received_total", "Events received from Redis", MetricType::Counter,
                                  static_cast<double>(stats.received)));
        families.push_back(Single("syncline_bus_dropped_publishes_total",
                                  "Publishes given up (over the pending limit, or refused by Redis)",
                                  MetricType::Counter, static_cast<double>(stats.dropped_publishes)));
    } else {
        families.push_back(Single("syncline_bus_connected", "1 while the bus is connected, else 0 (in-process: 1)",
                                  MetricType::Gauge, 1));
        families.push_back(Single("syncline_bus_reconnects_total", "Times a lost Redis connection came back",
                                  MetricType::Counter, 0));
    }
    if (const ThreadPoolExecutor* actions = sources.actions) {
        ThreadPoolExecutor::Load load = actions->load();
        families.push_back(Single("syncline_detached_actions_queued",
                                  "Detached actions (streamed lists, custom detached actions) waiting for a thread",
                                  MetricType::Gauge, static_cast<double>(load.waiting)));
        families.push_back(Single("syncline_detached_actions_running", "Detached actions running now",
                                  MetricType::Gauge, static_cast<double>(load.running)));
    }
    if (const ThreadPoolExecutor* writes = sources.writes) {
        ThreadPoolExecutor::Load load = writes->load();
        families.push_back(Single("syncline_writes_queued", "Writes waiting for a thread of the write pool",
                                  MetricType::Gauge, static_cast<double>(load.waiting)));
        families.push_back(Single("syncline_writes_running",
                                  "Writes running on the write pool (waiting for the database included)",
                                  MetricType::Gauge, static_cast<double>(load.running)));
    }
    return prometheus::TextSerializer().Serialize(families);
}

Row MeteredStore::Insert(std::string_view table, const Assignments& values) {
    WriteTimer timer(metrics_);
    return store_.Insert(table, values);
}

std::optional<Row> MeteredStore::Patch(std::string_view table, const Value& pk, const Assignments& values) {
    WriteTimer timer(metrics_);
    return store_.Patch(table, pk, values);
}

bool MeteredStore::Delete(std::string_view table, const Value& pk) {
    WriteTimer timer(metrics_);
    return store_.Delete(table, pk);
}

}  // namespace syncline::transport
