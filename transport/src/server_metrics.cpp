// GET /metrics: the counters and histograms of the request path (lock-free, ours), plus the families Render reads from
// the modules that already count, serialized by prometheus-cpp (see server_metrics.hpp).

#include "server_metrics.hpp"

#include <syncline/observer/bus.hpp>
#include <syncline/observer/observer.hpp>
#include <syncline/observer/relay.hpp>
#include <syncline/transport/batch_writer.hpp>
#include <syncline/transport/thread_pool_executor.hpp>
#include <syncline/transport/websocket_server.hpp>

#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <limits>
#include <utility>

namespace syncline::transport {
namespace {

double Seconds(std::chrono::steady_clock::duration elapsed) { return std::chrono::duration<double>(elapsed).count(); }

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

void LatencyHistogram::Observe(std::chrono::steady_clock::duration elapsed) {
    const double seconds = Seconds(elapsed);
    const std::size_t bucket =
        static_cast<std::size_t>(std::lower_bound(kBounds.begin(), kBounds.end(), seconds) - kBounds.begin());
    counts_[bucket].fetch_add(1, std::memory_order_relaxed);
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count();
    sum_ns_.fetch_add(static_cast<std::uint64_t>(std::max<std::int64_t>(ns, 0)), std::memory_order_relaxed);
}

std::uint64_t LatencyHistogram::count() const {
    std::uint64_t total = 0;
    for (const auto& c : counts_) total += c.load(std::memory_order_relaxed);
    return total;
}

LatencyHistogram::Snapshot LatencyHistogram::Take() const {
    Snapshot snapshot;
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
        total += counts_[i].load(std::memory_order_relaxed);
        snapshot.cumulative[i] = total;
    }
    snapshot.sum_seconds = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
    return snapshot;
}

namespace {

prometheus::ClientMetric HistogramSample(const LatencyHistogram& histogram,
                                         std::vector<prometheus::ClientMetric::Label> labels) {
    const LatencyHistogram::Snapshot snapshot = histogram.Take();
    prometheus::ClientMetric metric;
    metric.label = std::move(labels);
    metric.histogram.sample_count = snapshot.cumulative.back();
    metric.histogram.sample_sum = snapshot.sum_seconds;
    for (std::size_t i = 0; i < snapshot.cumulative.size(); ++i) {
        prometheus::ClientMetric::Bucket bucket;
        bucket.cumulative_count = snapshot.cumulative[i];
        bucket.upper_bound = i < LatencyHistogram::kBounds.size() ? LatencyHistogram::kBounds[i]
                                                                  : std::numeric_limits<double>::infinity();
        metric.histogram.bucket.push_back(bucket);
    }
    return metric;
}

}  // namespace

// One route's counts: per action, a counter per status and a latency histogram. The route's own action names are
// fixed at construction and found without a lock; another name (a routed consumer's default action) is added once,
// under a lock, up to kMaxExtra of them (then counted as "(unknown)").
class ServerMetrics::RouteActionMeter final : public ActionMeter {
public:
    RouteActionMeter(std::string route, const std::vector<std::string>& actions) : route_(std::move(route)) {
        for (const std::string& name : actions) fixed_.push_back(std::make_unique<Action>(name));
        fixed_.push_back(std::make_unique<Action>("(unknown)"));
        fixed_.push_back(std::make_unique<Action>("(invalid)"));
    }

    void Record(std::string_view action, int status, std::chrono::steady_clock::duration elapsed) override {
        Action& counts = Find(action);
        const int code = status >= 100 && status <= 599 ? status : 500;
        counts.statuses[static_cast<std::size_t>(code - 100)].fetch_add(1, std::memory_order_relaxed);
        counts.seconds.Observe(elapsed);
    }

    // Appends this route's series to the two families.
    void Collect(prometheus::MetricFamily& actions, prometheus::MetricFamily& seconds) const {
        auto collect = [&](const Action& counts) {
            if (counts.seconds.count() == 0) return;
            for (std::size_t i = 0; i < counts.statuses.size(); ++i) {
                const std::uint64_t n = counts.statuses[i].load(std::memory_order_relaxed);
                if (n == 0) continue;
                prometheus::ClientMetric metric;
                metric.label = {{"action", counts.name}, {"route", route_}, {"status", std::to_string(i + 100)}};
                metric.counter.value = static_cast<double>(n);
                actions.metric.push_back(std::move(metric));
            }
            seconds.metric.push_back(HistogramSample(counts.seconds, {{"action", counts.name}, {"route", route_}}));
        };
        for (const auto& counts : fixed_) collect(*counts);
        std::lock_guard<std::mutex> lock(extra_mutex_);
        for (const auto& counts : extra_) collect(*counts);
    }

private:
    static constexpr std::size_t kMaxExtra = 64;
    struct Action {
        explicit Action(std::string_view n) : name(n) {}
        const std::string name;
        std::array<std::atomic<std::uint64_t>, 500> statuses{};  // index: status - 100
        LatencyHistogram seconds;
    };

    Action& Find(std::string_view name) {
        for (const auto& counts : fixed_) {
            if (counts->name == name) return *counts;
        }
        std::lock_guard<std::mutex> lock(extra_mutex_);
        for (const auto& counts : extra_) {
            if (counts->name == name) return *counts;
        }
        if (extra_.size() >= kMaxExtra) return *fixed_[fixed_.size() - 2];  // "(unknown)"
        extra_.push_back(std::make_unique<Action>(name));
        return *extra_.back();
    }

    const std::string route_;
    std::vector<std::unique_ptr<Action>> fixed_;  // set at construction, then only read
    mutable std::mutex extra_mutex_;
    std::vector<std::unique_ptr<Action>> extra_;  // guarded by extra_mutex_
};

ServerMetrics::ServerMetrics() = default;

ServerMetrics::~ServerMetrics() = default;

std::shared_ptr<ActionMeter> ServerMetrics::RouteMeter(const std::string& route,
                                                       const std::vector<std::string>& actions) {
    auto meter = std::make_shared<RouteActionMeter>(route, actions);
    std::lock_guard<std::mutex> lock(meters_mutex_);
    meters_.push_back(meter);
    return meter;
}

std::string ServerMetrics::Render(const Sources& sources) const {
    using prometheus::MetricType;
    std::vector<prometheus::MetricFamily> families;
    {
        prometheus::MetricFamily actions = Family(
            "syncline_actions_total", "Requests answered, by route, action and reply status", MetricType::Counter);
        prometheus::MetricFamily seconds = Family(
            "syncline_action_seconds", "Time from reading a request's frame to queuing its reply, by route and action",
            MetricType::Histogram);
        std::lock_guard<std::mutex> lock(meters_mutex_);
        for (const auto& meter : meters_) meter->Collect(actions, seconds);
        families.push_back(std::move(actions));
        families.push_back(std::move(seconds));
    }
    {
        prometheus::MetricFamily writes = Family("syncline_write_seconds",
                                                 "Time of each single write (create, update, patch, delete) in the "
                                                 "database: waiting for the writer, its transaction and its commit",
                                                 MetricType::Histogram);
        writes.metric.push_back(HistogramSample(write_seconds_, {}));
        families.push_back(std::move(writes));
    }
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
        families.push_back(
            Single("syncline_pushes_coalesced_total",
                   "Pushes replaced or left out of a write, in the queue of a socket that was behind (its "
                   "oldest waiting frame had waited coalesce_after_ms), because a newer push of the same "
                   "row waited (the latest state wins)",
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
        families.push_back(Single("syncline_bus_catch_ups_total", "Reads of the change feed after the bus reconnected",
                                  MetricType::Counter, static_cast<double>(stats.catch_ups)));
        families.push_back(Single("syncline_events_coalesced_total",
                                  "Row events from the bus replaced, while waiting to be pushed, by a newer version of "
                                  "the same row (pushes fell behind the changes: the latest state goes out)",
                                  MetricType::Counter, static_cast<double>(stats.coalesced)));
        families.push_back(Single("syncline_events_queued", "Rows whose event from the bus waits to be pushed",
                                  MetricType::Gauge, static_cast<double>(stats.queued)));
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
    if (const observer::Bus* bus = sources.bus) {
        observer::BusStats stats = bus->stats();
        families.push_back(Single("syncline_bus_connected", "1 while the bus is connected, else 0", MetricType::Gauge,
                                  bus->connected() ? 1 : 0));
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
        families.push_back(
            Single("syncline_bus_reconnects_total", "Times a lost Redis connection came back", MetricType::Counter, 0));
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
    if (const BatchWriter* batches = sources.batches) {
        BatchWriterStats stats = batches->stats();
        families.push_back(Single("syncline_batched_writes_queued",
                                  "Write requests submitted to the batch writer and not yet answered",
                                  MetricType::Gauge, static_cast<double>(stats.queued)));
        families.push_back(Single("syncline_batched_writes_total", "Write requests the batch writer ran",
                                  MetricType::Counter, static_cast<double>(stats.writes)));
        families.push_back(Single("syncline_write_batches_total", "Transactions the batch writer ran them in",
                                  MetricType::Counter, static_cast<double>(stats.batches)));
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
