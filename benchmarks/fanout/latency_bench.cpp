// syncline_fanout, latency cases: R rows with one subscriber each, the writer changes them round-robin at --rate
// changes/s (paced); latency = the client's receipt time - the time the write's commit returned (steady_clock, one
// process), matched by the counter in the row. latency-inprocess: server, writer and clients in this process.
// latency-redis: two `syncline serve` children on one database file with the Redis bus; clients on the one NOT holding
// the relay lease; this process writes the file directly. latency-external: one `syncline serve` child with the
// in-process bus; this process writes the file directly (the server notices through PRAGMA data_version polling).
#include "latency_bench.hpp"

#include <syncline/config/config.hpp>
#include <syncline/core/model/schema.hpp>
#include <syncline/observer/observer.hpp>
#include <syncline/storage/database.hpp>
#include <syncline/transport/server.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <thread>
#include <vector>

#include "fleet.hpp"
#include "processes.hpp"

namespace syncline::fanout {
namespace {

double PercentileMs(const std::vector<std::int64_t>& sorted, double q) {
    if (sorted.empty()) return 0;
    const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size()))) - 1;
    return static_cast<double>(sorted[std::min(rank, sorted.size() - 1)]) / 1e6;
}

// Writes counter c into row 1 + c % rows at `rate`/s for warmup + duration, and computes the latencies of the writes
// after the warmup.
void MeasureLatency(LatencyResult& r, SharedState& shared, const Options& o,
                    const std::function<void(std::int64_t pk, std::int64_t c)>& write) {
    const auto total = static_cast<std::int64_t>(
        std::min<double>((o.warmup_s + o.duration_s) * o.rate, static_cast<double>(SharedState::kRecords)));
    const auto warm = static_cast<std::int64_t>(o.warmup_s * o.rate);
    std::vector<std::int64_t> commit_ns(static_cast<std::size_t>(total), 0);
    std::vector<std::int64_t> write_ns(static_cast<std::size_t>(total), 0);
    const auto period = std::chrono::duration<double>(1.0 / o.rate);
    auto start = Clock::now();
    auto next_progress = start + std::chrono::seconds(1);
    Clock::time_point measure_start{};
    MachineCpu machine0;
    std::uint64_t frames0 = 0;
    for (std::int64_t c = 0; c < total; ++c) {
        auto target = start + std::chrono::duration_cast<Clock::duration>(period * static_cast<double>(c));
        const auto now = Clock::now();
        if (now < target) {
            std::this_thread::sleep_until(target);  // pacing: one change every 1/rate s
        } else if (now - target > std::chrono::milliseconds(20)) {
            start += now - target;  // fell behind (a stall): do not burst to catch up
        }
        if (c == warm) {
            measure_start = Clock::now();
            machine0 = SampleMachine();
            frames0 = shared.frames.load();
        }
        const std::int64_t before = NowNs();
        write(1 + c % r.rows, c);
        const std::int64_t after = NowNs();
        commit_ns[static_cast<std::size_t>(c)] = after;
        write_ns[static_cast<std::size_t>(c)] = after - before;
        if (Clock::now() >= next_progress) {
            std::fprintf(stderr, "    %s %.0f s: %lld writes\n", r.name.c_str(), Seconds(Clock::now() - start),
                         static_cast<long long>(c + 1));
            next_progress += std::chrono::seconds(1);
        }
    }
    r.achieved_rate = static_cast<double>(total - warm) / Seconds(Clock::now() - measure_start);
    r.deliveries_per_s = static_cast<double>(shared.frames.load() - frames0) / Seconds(Clock::now() - measure_start);
    r.machine_cores = (SampleMachine().busy_s - machine0.busy_s) / Seconds(Clock::now() - measure_start);
    // Drain: up to 3 s for the last pushes, every version's first receipt and the last version at every subscriber of
    // its row (its first receipt alone would end the wait while the other subscribers still get it).
    const auto drain_deadline = Clock::now() + std::chrono::seconds(3);
    while (Clock::now() < drain_deadline) {
        bool all = total == 0 || shared.DoneCount(total - 1) >= shared.subs_per_row.load();
        for (std::int64_t c = warm; c < total && all; ++c) all = shared.recv_ns[c].load() != 0;
        if (all) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));  // waiting for the last pushes; bounded
    }
    if (!o.csv_prefix.empty()) {
        // One line per change: counter, row, when the Patch call started and returned, when the push arrived (ns,
        // steady_clock; 0: never), whether it is in the measurement (after the warmup).
        std::ofstream csv(o.csv_prefix + r.name + ".csv");
        csv << "counter,pk,call_start_ns,call_return_ns,receipt_ns,measured\n";
        for (std::int64_t c = 0; c < total; ++c) {
            const auto i = static_cast<std::size_t>(c);
            csv << c << ',' << 1 + c % r.rows << ',' << commit_ns[i] - write_ns[i] << ',' << commit_ns[i] << ','
                << shared.recv_ns[c].load() << ',' << (c >= warm ? 1 : 0) << '\n';
        }
    }
    std::vector<std::int64_t> lat, writes, from_start;
    double sum = 0;
    for (std::int64_t c = warm; c < total; ++c) {
        const std::int64_t recv = shared.recv_ns[c].load();
        writes.push_back(write_ns[static_cast<std::size_t>(c)]);
        if (recv == 0) {
            ++r.lost;
            continue;
        }
        // From the start of the Patch call: an upper bound that never goes negative (the commit is inside the call).
        from_start.push_back(recv - (commit_ns[static_cast<std::size_t>(c)] - write_ns[static_cast<std::size_t>(c)]));
        std::int64_t l = recv - commit_ns[static_cast<std::size_t>(c)];
        if (l < 0) {
            ++r.negative;
            l = 0;
        }
        lat.push_back(l);
        sum += static_cast<double>(l);
    }
    std::vector<std::int64_t> last_lat;
    for (std::int64_t c = warm; c < total; ++c) {
        const std::int64_t recv = shared.recv_last_ns[c].load();
        if (recv != 0) last_lat.push_back(std::max<std::int64_t>(recv - commit_ns[static_cast<std::size_t>(c)], 0));
    }
    std::sort(last_lat.begin(), last_lat.end());
    r.received_versions = last_lat.size();
    r.last_p50 = PercentileMs(last_lat, 0.50);
    r.last_p99 = PercentileMs(last_lat, 0.99);
    r.last_max = last_lat.empty() ? 0 : static_cast<double>(last_lat.back()) / 1e6;
    // Every subscriber of the last counter's row that has it (or, were that possible, a newer state).
    if (total > 0) r.final_subscribers = shared.DoneCount(total - 1);
    std::sort(lat.begin(), lat.end());
    std::sort(writes.begin(), writes.end());
    std::sort(from_start.begin(), from_start.end());
    r.samples = lat.size();
    r.start_p50 = PercentileMs(from_start, 0.50);
    r.start_p99 = PercentileMs(from_start, 0.99);
    r.start_p999 = PercentileMs(from_start, 0.999);
    r.p50 = PercentileMs(lat, 0.50);
    r.p90 = PercentileMs(lat, 0.90);
    r.p99 = PercentileMs(lat, 0.99);
    r.p999 = PercentileMs(lat, 0.999);
    r.max = lat.empty() ? 0 : static_cast<double>(lat.back()) / 1e6;
    r.mean = lat.empty() ? 0 : sum / static_cast<double>(lat.size()) / 1e6;
    r.write_p50 = PercentileMs(writes, 0.50);
    r.write_p99 = PercentileMs(writes, 0.99);
    r.write_p999 = PercentileMs(writes, 0.999);
    r.write_max = writes.empty() ? 0 : static_cast<double>(writes.back()) / 1e6;
    if (shared.out_of_order.load() != 0) {
        r.error = std::to_string(shared.out_of_order.load()) + " pushes out of order";
    }
}

std::unique_ptr<storage::Backend> OpenItems(const std::string& database, int rows, const std::string& pad) {
    storage::BackendOptions options;
    options.database = database;
    auto db = storage::OpenBackend(options, {Schema::FromJson("items", kFields)});
    if (db->Count("items", {}) < rows) {
        auto tx = db->Begin();
        for (std::int64_t r = db->Count("items", {}); r < rows; ++r) {
            tx->Insert("items", {{"n", Value(-1)}, {"pad", Value(pad)}});
        }
        tx->Commit();
    }
    return db;
}

// Starts `syncline serve` on `config` and waits for /healthz; nullptr and `error` set on failure.
std::unique_ptr<ChildProcess> StartServe(const Options& o, const std::string& config, const std::string& log,
                                         std::uint16_t port, std::string& error) {
    auto child = std::make_unique<ChildProcess>(
        std::vector<std::string>{o.syncline_bin, "serve", "--config", config, "--port", std::to_string(port)}, log);
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    while (HttpGetStatus(port, "/healthz", std::chrono::milliseconds(200)) != 200) {
        if (child->Exited() || Clock::now() > deadline) {
            error = "syncline serve did not start: " + child->Output().substr(0, 2000);
            return nullptr;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling readiness; bounded
    }
    return child;
}

}  // namespace

LatencyResult RunLatency(const std::string& name, FleetControl& fleet, SharedState& shared, const Options& o) {
    LatencyResult r;
    r.name = name;
    r.rows = o.latency_rows;
    r.subscribers = o.latency_subscribers;
    r.rate = o.rate;
    const std::string pad = Pad(o.pad);
    std::fprintf(stderr, "[%s] %d rows, %d subscriber(s) each, %.0f changes/s\n", name.c_str(), r.rows,
                 r.subscribers, o.rate);
    TempDir dir;
    std::unique_ptr<test_support::PgTestDatabase> pg;  // outlives the servers of the case
    shared.Reset(static_cast<std::uint32_t>(r.subscribers));
    FleetSpec spec;
    spec.path = kPath;
    spec.sockets = r.rows * r.subscribers;
    spec.rows = r.rows;
    spec.threads = o.client_threads;
    try {
        if (name == "latency-inprocess") {
            auto server = config::BuildServer(config::ParseConfig(ConfigJson(CaseDatabase(o, dir, "latency.db", pg),
                                                                             o.server_threads, "", o.server_json)),
                                              dir.path());
            server->Start();
            storage::Backend& db = server->database();
            {
                auto tx = db.Begin();
                for (int i = 0; i < r.rows; ++i) tx->Insert("items", {{"n", Value(-1)}, {"pad", Value(pad)}});
                tx->Commit();
            }
            spec.port = server->port();
            r.setup = "server, writer and clients in this process (in-process bus)";
            r.error = fleet.Open(spec);
            if (r.error.empty()) {
                MeasureLatency(r, shared, o, [&](std::int64_t pk, std::int64_t c) {
                    db.Patch("items", Value(pk), {{"n", Value(c)}});
                });
                r.server_stats = ObserverSummary(server->observer());
            }
            fleet.Close();
            server->Stop();
            return r;
        }
        if (o.syncline_bin.empty() || access(o.syncline_bin.c_str(), X_OK) != 0) {
            r.error =
                "syncline binary not found at '" + o.syncline_bin + "' (build the syncline target or pass --syncline)";
            return r;
        }
        const std::string db_path = CaseDatabase(o, dir, "shared.db", pg);
        auto db = OpenItems(db_path, r.rows, pad);
        std::unique_ptr<ChildProcess> own_redis;
        std::string redis_url;
        if (name == "latency-redis") {
            redis_url = o.redis_url;
            if (redis_url.empty()) {
                const std::uint16_t redis_port = FreePort();
                const std::string redis_bin = "/usr/bin/redis-server";
                if (access(redis_bin.c_str(), X_OK) != 0) {
                    r.error = "no --redis, no SYNCLINE_TEST_REDIS_URL and no " + redis_bin;
                    return r;
                }
                own_redis = std::make_unique<ChildProcess>(
                    std::vector<std::string>{redis_bin, "--port", std::to_string(redis_port), "--bind", "127.0.0.1",
                                             "--save", "", "--appendonly", "no"},
                    dir.File("redis.log"));
                redis_url = "redis://127.0.0.1:" + std::to_string(redis_port) + "/0";
            }
            auto hp = ParseRedisUrl(redis_url);
            if (!hp) {
                r.error = "bad redis url " + redis_url;
                return r;
            }
            const auto deadline = Clock::now() + std::chrono::seconds(10);
            while (!RedisPing(hp->first, hp->second, std::chrono::milliseconds(200))) {
                if (Clock::now() > deadline) {
                    r.error = "redis at " + redis_url + " does not answer PING";
                    return r;
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling readiness; bounded
            }
        }
        const std::string config = dir.File("config.json");
        std::ofstream(config) << ConfigJson(db_path, o.server_threads, redis_url, o.server_json);
        const int servers = name == "latency-redis" ? 2 : 1;
        std::vector<std::unique_ptr<ChildProcess>> children;
        std::vector<std::uint16_t> ports;
        for (int i = 0; i < servers; ++i) {
            ports.push_back(FreePort());
            auto child = StartServe(o, config, dir.File("server-" + std::to_string(i) + ".log"), ports.back(), r.error);
            if (!child) return r;
            children.push_back(std::move(child));
        }
        std::size_t target = 0;
        if (servers == 2) {
            // The relay lease holder logs "... holds the lease and publishes"; connect to the other process.
            const auto deadline = Clock::now() + std::chrono::seconds(10);
            int holder = -1;
            while (holder < 0 && Clock::now() < deadline) {
                for (int i = 0; i < servers; ++i) {
                    if (children[static_cast<std::size_t>(i)]->Output().find("holds the lease") != std::string::npos) {
                        holder = i;
                    }
                }
                if (holder < 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));  // bounded
            }
            if (holder < 0) {
                r.error = "no server took the relay lease within 10 s";
                return r;
            }
            target = holder == 0 ? 1 : 0;
            r.setup = "clients in this process on server " + std::to_string(target) + " (pid " +
                      std::to_string(children[target]->pid()) + "), relay lease held by server " +
                      std::to_string(holder) + " (pid " +
                      std::to_string(children[static_cast<std::size_t>(holder)]->pid()) + "), Redis " + redis_url +
                      (own_redis ? " (own redis-server)" : "") + ", writer: this process on the file";
        } else {
            r.setup = "one syncline serve child (in-process bus, pid " + std::to_string(children[0]->pid()) +
                      "), clients and writer in this process, writer on the file";
        }
        spec.port = ports[target];
        r.error = fleet.Open(spec);
        if (r.error.empty()) {
            MeasureLatency(r, shared, o, [&](std::int64_t pk, std::int64_t c) {
                db->Patch("items", Value(pk), {{"n", Value(c)}});
            });
        }
        fleet.Close();
        for (auto& child : children) {
            if (auto status = child->Exited()) {
                r.error += (r.error.empty() ? "" : "; ") + std::string("a server exited with ") +
                           std::to_string(*status) + ": " + child->Output().substr(0, 1000);
            }
            child->Stop();
        }
    } catch (const std::exception& e) {
        r.error = e.what();
    }
    return r;
}

std::string LatencyLine(const LatencyResult& r, double target_ms) {
    std::ostringstream line;
    line << r.name << ": rows=" << r.rows << " subscribers=" << r.rows * r.subscribers << " rate=" << Fixed(r.rate, 0)
         << "/s (achieved " << Fixed(r.achieved_rate, 0) << "/s) | ";
    if (!r.error.empty() && r.samples == 0) {
        line << "ERROR " << r.error;
        return line.str();
    }
    line << "commit->receipt p50=" << Fixed(r.p50, 3) << " ms p90=" << Fixed(r.p90, 3) << " ms p99=" << Fixed(r.p99, 3)
         << " ms p99.9=" << Fixed(r.p999, 3) << " ms max=" << Fixed(r.max, 3) << " ms mean=" << Fixed(r.mean, 3)
         << " ms, n=" << r.samples << " lost=" << r.lost;
    if (r.negative) line << " received-before-Patch-returned=" << r.negative << " (counted as 0)";
    line << " (aim p99 <= " << Fixed(target_ms, 0) << " ms: " << (r.p99 <= target_ms && r.lost == 0 ? "met" : "MISSED")
         << ") | from the Patch call's start p50=" << Fixed(r.start_p50, 3) << " ms p99=" << Fixed(r.start_p99, 3)
         << " ms p99.9=" << Fixed(r.start_p999, 3) << " ms | Patch call p50=" << Fixed(r.write_p50, 3)
         << " ms p99=" << Fixed(r.write_p99, 3) << " ms p99.9=" << Fixed(r.write_p999, 3)
         << " ms max=" << Fixed(r.write_max, 3) << " ms";
    if (r.subscribers > 1) {
        line << " | " << r.subscribers << " subscribers per row: last receipt of each version p50=" << Fixed(r.last_p50, 3)
             << " ms p99=" << Fixed(r.last_p99, 3) << " ms max=" << Fixed(r.last_max, 3) << " ms over "
             << r.received_versions << " versions received, " << Fixed(r.deliveries_per_s, 0)
             << " pushes/s received, " << r.final_subscribers << "/" << r.subscribers
             << " subscribers of the last version's row ended at it";
    }
    if (!r.error.empty()) line << " | ERROR " << r.error;
    return line.str();
}

std::string LatencyJson(const LatencyResult& r) {
    std::ostringstream j;
    j << "{\"case\":" << JsonString(r.name) << ",\"error\":" << JsonString(r.error)
      << ",\"setup\":" << JsonString(r.setup) << ",\"rows\":" << r.rows << ",\"rate\":" << r.rate
      << ",\"achieved_rate\":" << Fixed(r.achieved_rate, 1) << ",\"samples\":" << r.samples << ",\"lost\":" << r.lost
      << ",\"machine_cores_busy\":" << Fixed(r.machine_cores, 3) << ",\"negative\":" << r.negative
      << ",\"p50_ms\":" << Fixed(r.p50, 4) << ",\"p90_ms\":" << Fixed(r.p90, 4) << ",\"p99_ms\":" << Fixed(r.p99, 4)
      << ",\"p999_ms\":" << Fixed(r.p999, 4) << ",\"max_ms\":" << Fixed(r.max, 4) << ",\"mean_ms\":" << Fixed(r.mean, 4)
      << ",\"write_p50_ms\":" << Fixed(r.write_p50, 4) << ",\"write_p99_ms\":" << Fixed(r.write_p99, 4)
      << ",\"write_p999_ms\":" << Fixed(r.write_p999, 4) << ",\"write_max_ms\":" << Fixed(r.write_max, 4)
      << ",\"from_call_start_p50_ms\":" << Fixed(r.start_p50, 4)
      << ",\"from_call_start_p99_ms\":" << Fixed(r.start_p99, 4)
      << ",\"from_call_start_p999_ms\":" << Fixed(r.start_p999, 4) << ",\"server_stats\":" << JsonString(r.server_stats)
      << "}";
    return j.str();
}

}  // namespace syncline::fanout
