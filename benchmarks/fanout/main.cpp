// syncline_fanout: fan-out throughput against a bare websocketpp broadcast (the ceiling), and commit-to-receipt latency
// of instance-subscription pushes, in-process, through Redis across processes, and for writes made by another process.
//
// Fan-out cases (fanout-RxS: R rows, S subscribed sockets per row). For each case, in the same run:
//   1. bare:     a bare websocketpp server (fleet.cpp, no syncline code) answers the subscriptions and a broadcaster
//                thread sends each change as one prepared frame, byte-for-byte shaped like syncline's push, to the
//                row's sockets;
//   2. syncline: an in-process syncline::Server (in-process bus, temp database, mixins ["patch","observe_instance"])
//                and a writer thread calling server.database().Patch(...) for each change.
//   The same client code (fleet.cpp) subscribes with {"action":"subscribe_instance","pk":N,"request_id":"s"}, waits
//   for every 201, then counts push frames. The writer writes counter c into row 1 + c % R ("n") as fast as the
//   pipeline accepts, with a bounded backlog: at most `window` versions not yet received by every subscriber of
//   their row (shared_state.hpp; versions syncline coalesced away count as received), and a row's next version only
//   once the server has taken the previous one: for the bare server when Broadcast returned (every frame queued),
//   for syncline when its observer has queued the previous version's frames (server.observer().stats(), polled every
//   50 us after sleeping 3/4 of the previous wait). Without that second rule the writer would write `window` versions
//   in a burst that syncline coalesces into one push, and measure one broadcast in flight at a time. Deliveries/s =
//   push frames received per second in the measurement window, after a warmup. syncline's figure is reported as a
//   percentage of the bare one (aim: >= 70 %).
//
// Latency cases: R rows with one subscriber each, the writer changes them round-robin at --rate changes/s (paced);
// latency = the client's receipt time - the time the write's commit returned (steady_clock, one process), matched by
// the counter in the row. latency-inprocess: server, writer and clients in this process. latency-redis: two
// `syncline serve` children on one database file with the Redis bus; clients on the one NOT holding the relay lease;
// this process writes the file directly. latency-external: one `syncline serve` child with the in-process bus; this
// process writes the file directly (the server notices through PRAGMA data_version polling).
#include <syncline/core/config.hpp>
#include <syncline/core/log.hpp>
#include <syncline/core/schema.hpp>
#include <syncline/observer/observer.hpp>
#include <syncline/storage/database.hpp>
#include <syncline/test_support/sandbox.hpp>
#include <syncline/transport/server.hpp>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <pthread.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "fleet.hpp"
#include "fleet_process.hpp"
#include "processes.hpp"
#include "shared_state.hpp"

namespace syncline::fanout {
namespace {

constexpr const char* kFields = R"({"fields": {
  "id": {"type": "integer", "primary_key": true},
  "n": {"type": "integer", "default": 0},
  "pad": {"type": "text", "blank": true, "default": ""}}})";
constexpr const char* kPath = "/ws/items/";

struct Options {
    std::vector<std::string> cases;
    bool quick = false;
    double duration_s = 5.0;
    double warmup_s = 1.0;
    unsigned server_threads = 2;
    unsigned client_threads = 1;
    std::int64_t backlog = 32768;
    std::int64_t batch = 1;
    int pad = 40;
    double rate = 1000.0;
    int latency_rows = 1000;
    std::string redis_url;
    std::string fanout_clients = "child";
    std::string syncline_bin;
    std::string json_path;
    std::string csv_prefix;
};

// ---------------------------------------------------------------------------------------------------------------
// Small helpers.

using test_support::TempDir;

std::string Pad(int n) { return std::string(static_cast<std::size_t>(std::max(0, n)), 'x'); }

std::string ServerConfig(const std::string& database, unsigned workers, const std::string& redis) {
    std::string text =
        R"({"database": ")" + database + R"(", "listen": {"port": 0}, "workers": )" + std::to_string(workers);
    if (!redis.empty()) text += R"(, "bus": {"redis": ")" + redis + R"("})";
    text += R"(, "models": {"items": )" + std::string(kFields) + R"(}, "routes": {")" + kPath +
            R"(": {"model": "items", "mixins": ["patch", "observe_instance"]}}})";
    return text;
}

// The frame syncline pushes for row `pk` holding counter `n` (observer_mixins.cpp PushPrefix + the request_id).
std::string PushFrame(std::int64_t pk, std::int64_t n, const std::string& pad, std::int64_t version) {
    return R"({"errors":[],"data":{"id":)" + std::to_string(pk) + R"(,"n":)" + std::to_string(n) + R"(,"pad":")" + pad +
           R"("},"action":"update","response_status":200,"version":)" + std::to_string(version) +
           R"(,"request_id":"s"})";
}

std::string Thousands(double value) {
    const auto v = static_cast<long long>(std::llround(value));
    std::string digits = std::to_string(v < 0 ? -v : v);
    std::string out;
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i != 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return (v < 0 ? "-" : "") + out;
}

std::string Fixed(double value, int decimals) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
    return buf;
}

std::string JsonString(const std::string& text) {
    std::string out = "\"";
    for (char c : text) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += c;
        }
    }
    return out + "\"";
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Sleeps until `until`, printing "  <label> <t>/<total> s <extra()>" to stderr every second.
void SleepWithProgress(Clock::time_point from, Clock::time_point until, const std::string& label,
                       const std::function<std::string()>& extra) {
    const double total = Seconds(until - from);
    auto next = from + std::chrono::seconds(1);
    while (Clock::now() < until) {
        std::this_thread::sleep_until(std::min(next, until));  // the measurement window itself
        if (Clock::now() >= next && Clock::now() < until) {
            std::fprintf(stderr, "    %s %.0f/%.0f s %s\n", label.c_str(), Seconds(Clock::now() - from), total,
                         extra().c_str());
            next += std::chrono::seconds(1);
        }
    }
}

std::string ObserverSummary(observer::Observer& obs) {
    const observer::ObserverStats s = obs.stats();
    return "events=" + std::to_string(s.events) + " duplicates=" + std::to_string(s.duplicates) +
           " frames=" + std::to_string(s.frames) + " serializations=" + std::to_string(s.serializations);
}

// ---------------------------------------------------------------------------------------------------------------
// Fan-out.

struct FanoutShape {
    std::string name;
    int rows = 1;
    int per_row = 1;
    int sockets() const { return rows * per_row; }
};

struct FanoutRun {
    std::string error;
    double seconds = 0;
    double deliveries_per_s = 0;
    std::uint64_t frames = 0;         // in the window
    std::uint64_t written = 0;        // versions written in the window
    std::uint64_t skipped = 0;        // in the window
    std::uint64_t frames_total = 0;   // whole run
    std::uint64_t written_total = 0;  // whole run
    std::uint64_t out_of_order = 0;   // whole run
    std::uint64_t other_frames = 0;   // whole run
    double frame_bytes = 0;
    double drain_ms = -1;
    std::string server_stats;
    std::string cpu;                 // per thread, over the measurement window
    double cpu_us_per_delivery = 0;  // CPU of the tool (and of the fleet process) per frame received
};

// Connects the fleet, runs the writer (`write(counter)`) with the bounded backlog, measures, drains and closes.
FanoutRun MeasureFanout(const std::string& label, FleetControl& fleet, SharedState& shared, const FanoutShape& shape,
                        std::uint16_t port, const std::string& path, std::int64_t window, const Options& o,
                        const std::function<void(std::int64_t first, std::int64_t count)>& write,
                        const std::function<std::int64_t()>& accepted,
                        const std::vector<std::pair<pid_t, std::string>>& thread_labels) {
    FanoutRun run;
    shared.Reset(static_cast<std::uint32_t>(shape.per_row));
    FleetSpec spec;
    spec.port = port;
    spec.path = path;
    spec.sockets = shape.sockets();
    spec.rows = shape.rows;
    spec.threads = o.client_threads;
    const auto connect_start = Clock::now();
    run.error = fleet.Open(spec);
    if (!run.error.empty()) return run;
    std::fprintf(stderr, "    %s: %d sockets subscribed in %.2f s; writing\n", label.c_str(), spec.sockets,
                 Seconds(Clock::now() - connect_start));

    std::atomic<std::int64_t> written{0};
    std::atomic<bool> stop{false};
    std::string writer_error;
    std::thread writer([&] {
        // The bare run's writer is the broadcaster itself: it calls send() on every socket.
        pthread_setname_np(pthread_self(), accepted ? "writer" : "broadcaster");
        prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);  // 1 us: the 50 us polling sleeps stay 50 us
        try {
            const std::int64_t rows = shape.rows;
            // Waits for one condition, in 100 ms slices (stop requests), at most 10 s (a stall is an error).
            auto wait = [&](const char* what, std::int64_t counter, auto&& condition) {
                const auto stall_deadline = Clock::now() + std::chrono::seconds(10);
                while (!condition(std::min(stall_deadline, Clock::now() + std::chrono::milliseconds(100)))) {
                    if (stop.load()) return false;
                    if (Clock::now() >= stall_deadline) {
                        writer_error = std::string("stalled: counter ") + std::to_string(counter) + " not " + what +
                                       " in 10 s (" + std::to_string(shared.DoneCount(counter)) + " of " +
                                       std::to_string(shape.per_row) + " subscribers have it)";
                        return false;
                    }
                }
                return true;
            };
            const std::int64_t batch = std::clamp<std::int64_t>(o.batch, 1, rows);
            Clock::duration last_accept_wait{};
            for (std::int64_t c = 0; !stop.load(); c += batch) {
                const std::int64_t last = c + batch - 1;  // this step writes counters c..last (one transaction)
                // syncline: the server has taken the row's previous version (its push frames are queued on every
                // socket) before the next is written: never two versions of a row waiting for the relay, which
                // would coalesce them. The bare broadcast has taken a version when Broadcast returns.
                // Polling costs the writer CPU the server could use: after a wait of T, the next wait first sleeps
                // 3/4 of T (bounded by 5 ms), then polls every 50 us.
                if (accepted && last >= rows && accepted() < last - rows + 1) {
                    const auto wait_start = Clock::now();
                    std::this_thread::sleep_for(
                        std::min<Clock::duration>(last_accept_wait * 3 / 4, std::chrono::milliseconds(5)));
                    if (!wait("accepted by the server", last - rows, [&](Clock::time_point d) {
                            while (accepted() < last - rows + 1) {
                                if (Clock::now() >= d) return false;
                                std::this_thread::sleep_for(
                                    std::chrono::microseconds(50));  // polling the observer's counters
                            }
                            return true;
                        })) {
                        return;
                    }
                    last_accept_wait = Clock::now() - wait_start;
                }
                if (last >= window && !wait("received by every subscriber", last - window,
                                            [&](Clock::time_point d) { return shared.WaitDone(last - window, d); })) {
                    return;
                }
                for (std::int64_t k = c; k <= last; ++k) shared.Claim(k);
                write(c, batch);
                written.store(last + 1);
            }
        } catch (const std::exception& e) {
            writer_error = std::string("writer: ") + e.what();
        }
    });

    const auto start = Clock::now();
    const auto t0_at = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.warmup_s));
    SleepWithProgress(start, t0_at, label + " warmup", [] { return std::string(); });
    std::vector<pid_t> pids{getpid()};
    if (fleet.pid() != getpid()) pids.push_back(fleet.pid());
    const std::vector<ThreadCpu> cpu0 = SampleThreads(pids);
    const MachineCpu machine0 = SampleMachine();
    const auto t0 = Clock::now();
    const std::uint64_t frames0 = shared.frames.load();
    const std::int64_t written0 = written.load();
    const std::uint64_t skipped0 = shared.skipped.load();
    const auto t1_at = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.duration_s));
    SleepWithProgress(t0, t1_at, label + " measuring", [&] {
        const double s = Seconds(Clock::now() - t0);
        return Thousands(static_cast<double>(shared.frames.load() - frames0) / s) + " deliveries/s, " +
               Thousands(static_cast<double>(written.load() - written0) / s) + " versions/s";
    });
    const auto t1 = Clock::now();
    const std::uint64_t frames1 = shared.frames.load();
    const std::int64_t written1 = written.load();
    const std::uint64_t skipped1 = shared.skipped.load();
    double cores = 0;
    run.cpu = CpuDelta(cpu0, SampleThreads(pids), Seconds(t1 - t0), thread_labels, &cores);
    if (frames1 > frames0)
        run.cpu_us_per_delivery = cores * Seconds(t1 - t0) * 1e6 / static_cast<double>(frames1 - frames0);
    {
        const MachineCpu machine1 = SampleMachine();
        const double s = Seconds(t1 - t0);
        run.cpu += "; whole machine " + Fixed((machine1.busy_s - machine0.busy_s) / s, 2) + " cores busy, steal " +
                   Fixed((machine1.steal_s - machine0.steal_s) / s, 2);
    }
    stop.store(true);
    writer.join();

    run.seconds = Seconds(t1 - t0);
    run.frames = frames1 - frames0;
    run.written = static_cast<std::uint64_t>(written1 - written0);
    run.skipped = skipped1 - skipped0;
    run.deliveries_per_s = static_cast<double>(run.frames) / run.seconds;
    run.error = writer_error;

    // Drain: every subscriber ends with the last version (syncline always delivers the final state).
    const std::int64_t last = written.load() - 1;
    if (last >= 0 && run.error.empty()) {
        const auto drain_start = Clock::now();
        if (shared.WaitDone(last, drain_start + std::chrono::seconds(15))) {
            run.drain_ms = Seconds(Clock::now() - drain_start) * 1000.0;
        } else {
            run.error = "drain: the last version reached " + std::to_string(shared.DoneCount(last)) + " of " +
                        std::to_string(shape.per_row) + " subscribers in 15 s";
        }
    }
    run.written_total = static_cast<std::uint64_t>(written.load());
    run.frames_total = shared.frames.load();
    run.out_of_order = shared.out_of_order.load();
    run.other_frames = shared.other_frames.load();
    run.frame_bytes = run.frames_total ? static_cast<double>(shared.bytes.load()) / run.frames_total : 0.0;
    fleet.Close();
    return run;
}

struct FanoutResult {
    FanoutShape shape;
    std::int64_t window = 0;
    std::int64_t batch = 1;
    FanoutRun bare, syncline;
};

FanoutResult RunFanout(const FanoutShape& shape, FleetControl& fleet, SharedState& shared, const Options& o) {
    FanoutResult result;
    result.shape = shape;
    result.window = std::clamp<std::int64_t>(o.backlog / shape.per_row, 2, std::int64_t{SharedState::kRing / 4});
    result.batch = std::clamp<std::int64_t>(o.batch, 1, shape.rows);
    const std::string pad = Pad(o.pad);
    std::fprintf(stderr, "[%s] %d rows x %d subscribers = %d sockets, window %lld versions, clients: %s\n",
                 shape.name.c_str(), shape.rows, shape.per_row, shape.sockets(), static_cast<long long>(result.window),
                 fleet.where());
    {
        BareServer bare(o.server_threads);
        const std::int64_t rows = shape.rows;
        result.bare = MeasureFanout(shape.name + " bare", fleet, shared, shape, bare.port(), "/", result.window, o,
                                    [&](std::int64_t first, std::int64_t count) {
                                        for (std::int64_t c = first; c < first + count; ++c) {
                                            const std::int64_t pk = 1 + c % rows;
                                            bare.Broadcast(pk, PushFrame(pk, c, pad, c + rows + 1));
                                        }
                                    },
                                    nullptr, {});
        if (result.bare.error.empty() && bare.subscribers() != static_cast<std::size_t>(shape.sockets())) {
            result.bare.error = "bare server saw " + std::to_string(bare.subscribers()) + " subscriptions";
        }
    }
    {
        TempDir dir;
        auto server = Server::FromConfig(ParseConfig(ServerConfig("fanout.db", o.server_threads, "")), dir.path());
        const std::vector<pid_t> threads_before = OwnThreadIds();
        server->Start();
        // Server::Start starts the relay's thread, then the websocket workers: name them by creation order.
        std::vector<std::pair<pid_t, std::string>> labels;
        for (pid_t tid : OwnThreadIds()) {
            if (std::find(threads_before.begin(), threads_before.end(), tid) != threads_before.end()) continue;
            labels.emplace_back(tid, labels.empty() ? "relay" : "ws-io");
        }
        storage::Database& db = server->database();
        {
            auto tx = db.Begin();
            for (int r = 0; r < shape.rows; ++r) tx->Insert("items", {{"n", Value(-1)}, {"pad", Value(pad)}});
            tx->Commit();
        }
        const std::int64_t rows = shape.rows;
        // Versions the observer has pushed: its frame counter (updated once per event, after every socket's frame
        // is queued) over the subscribers per row. Exact as long as nothing is coalesced, which the writer ensures.
        observer::Observer& obs = server->observer();
        const std::uint64_t frames_before = obs.stats().frames;
        result.syncline = MeasureFanout(
            shape.name + " syncline", fleet, shared, shape, server->port(), kPath, result.window, o,
            [&](std::int64_t first, std::int64_t count) {
                if (count == 1) {
                    db.Patch("items", Value(1 + first % rows), {{"n", Value(first)}});
                    return;
                }
                auto tx = db.Begin();  // --batch: several rows' changes in one transaction
                for (std::int64_t c = first; c < first + count; ++c) {
                    tx->Patch("items", Value(1 + c % rows), {{"n", Value(c)}});
                }
                tx->Commit();
            },
            [&] { return static_cast<std::int64_t>((obs.stats().frames - frames_before) / shape.per_row); }, labels);
        result.syncline.server_stats = ObserverSummary(server->observer());
        server->Stop();
    }
    return result;
}

std::string FanoutLine(const FanoutResult& r) {
    std::ostringstream line;
    line << r.shape.name << ": rows=" << r.shape.rows << " subscribers/row=" << r.shape.per_row
         << " sockets=" << r.shape.sockets() << " window=" << r.window;
    if (r.batch != 1) line << " batch=" << r.batch;
    line << " | ";
    if (!r.bare.error.empty() || !r.syncline.error.empty()) {
        line << "ERROR bare: " << (r.bare.error.empty() ? "ok" : r.bare.error)
             << "; syncline: " << (r.syncline.error.empty() ? "ok" : r.syncline.error);
        if (r.bare.error.empty()) line << " | bare " << Thousands(r.bare.deliveries_per_s) << " deliveries/s";
        return line.str();
    }
    const double ratio =
        r.bare.deliveries_per_s > 0 ? 100.0 * r.syncline.deliveries_per_s / r.bare.deliveries_per_s : 0;
    const double written = static_cast<double>(r.syncline.written);
    const double expected = written * r.shape.per_row;  // frames if no version were coalesced away
    line << "syncline " << Thousands(r.syncline.deliveries_per_s) << " deliveries/s, bare websocketpp "
         << Thousands(r.bare.deliveries_per_s) << " deliveries/s -> " << Fixed(ratio, 1)
         << " % of the ceiling (aim >= 70 %: " << (ratio >= 70.0 ? "met" : "MISSED") << ")"
         << " | syncline versions written " << Thousands(written) << " (" << Thousands(written / r.syncline.seconds)
         << "/s), frames = " << Fixed(expected > 0 ? 100.0 * static_cast<double>(r.syncline.frames) / expected : 0.0, 1)
         << " % of versions x subscribers (coalesced away: " << Thousands(static_cast<double>(r.syncline.skipped))
         << ")"
         << " | bare versions " << Thousands(static_cast<double>(r.bare.written) / r.bare.seconds) << "/s"
         << " | frame " << Fixed(r.syncline.frame_bytes, 0) << " B (bare " << Fixed(r.bare.frame_bytes, 0) << " B)"
         << " | CPU per delivery " << Fixed(r.syncline.cpu_us_per_delivery, 2) << " us (bare "
         << Fixed(r.bare.cpu_us_per_delivery, 2) << " us), clients and server together"
         << " | drain " << Fixed(r.syncline.drain_ms, 1) << " ms (bare " << Fixed(r.bare.drain_ms, 1) << " ms)"
         << " | out-of-order " << r.syncline.out_of_order + r.bare.out_of_order;
    return line.str();
}

std::string RunJson(const FanoutRun& r) {
    std::ostringstream j;
    j << "{\"error\":" << JsonString(r.error) << ",\"seconds\":" << r.seconds
      << ",\"deliveries_per_s\":" << Fixed(r.deliveries_per_s, 1) << ",\"frames\":" << r.frames
      << ",\"versions_written\":" << r.written << ",\"skipped\":" << r.skipped << ",\"frames_total\":" << r.frames_total
      << ",\"versions_written_total\":" << r.written_total << ",\"out_of_order\":" << r.out_of_order
      << ",\"other_frames\":" << r.other_frames << ",\"frame_bytes\":" << Fixed(r.frame_bytes, 1)
      << ",\"drain_ms\":" << Fixed(r.drain_ms, 2) << ",\"server_stats\":" << JsonString(r.server_stats)
      << ",\"cpu\":" << JsonString(r.cpu) << ",\"cpu_us_per_delivery\":" << Fixed(r.cpu_us_per_delivery, 3) << "}";
    return j.str();
}

std::string FanoutJson(const FanoutResult& r) {
    const double ratio = r.bare.deliveries_per_s > 0 ? r.syncline.deliveries_per_s / r.bare.deliveries_per_s : 0;
    std::ostringstream j;
    j << "{\"case\":" << JsonString(r.shape.name) << ",\"rows\":" << r.shape.rows
      << ",\"subscribers_per_row\":" << r.shape.per_row << ",\"sockets\":" << r.shape.sockets()
      << ",\"window\":" << r.window << ",\"batch\":" << r.batch << ",\"ratio\":" << Fixed(ratio, 4)
      << ",\"bare\":" << RunJson(r.bare) << ",\"syncline\":" << RunJson(r.syncline) << "}";
    return j.str();
}

// ---------------------------------------------------------------------------------------------------------------
// Latency.

struct LatencyResult {
    std::string name;
    std::string error;
    std::string setup;  // where the clients and the relay were
    int rows = 0;
    double rate = 0;
    double achieved_rate = 0;
    std::size_t samples = 0;
    std::size_t lost = 0;
    // Receipts recorded before the Patch call returned (counted as 0): the call returns after the commit is visible,
    // e.g. after a WAL auto-checkpoint that SQLite runs inside the committing call, or the writer thread was
    // preempted between its commit and its clock read.
    std::size_t negative = 0;
    double p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0, mean = 0;       // ms
    double write_p50 = 0, write_p99 = 0, write_p999 = 0, write_max = 0;  // ms, the Patch call itself
    double start_p50 = 0, start_p99 = 0, start_p999 = 0;                 // ms, receipt - start of the Patch call
    double machine_cores = 0;  // the whole machine's busy cores during the measurement (all processes)
    std::string server_stats;
};

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
    r.machine_cores = (SampleMachine().busy_s - machine0.busy_s) / Seconds(Clock::now() - measure_start);
    // Drain: up to 3 s for the last pushes.
    const auto drain_deadline = Clock::now() + std::chrono::seconds(3);
    while (Clock::now() < drain_deadline) {
        bool all = true;
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

std::unique_ptr<storage::Database> OpenItems(const std::string& path, int rows, const std::string& pad) {
    storage::DatabaseOptions options;
    options.path = path;
    auto db = storage::Database::Open(options, {Schema::FromJson("items", kFields)});
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

LatencyResult RunLatency(const std::string& name, FleetControl& fleet, SharedState& shared, const Options& o) {
    LatencyResult r;
    r.name = name;
    r.rows = o.latency_rows;
    r.rate = o.rate;
    const std::string pad = Pad(o.pad);
    std::fprintf(stderr, "[%s] %d rows, one subscriber each, %.0f changes/s\n", name.c_str(), r.rows, o.rate);
    TempDir dir;
    shared.Reset(1);
    FleetSpec spec;
    spec.path = kPath;
    spec.sockets = r.rows;
    spec.rows = r.rows;
    spec.threads = o.client_threads;
    try {
        if (name == "latency-inprocess") {
            auto server = Server::FromConfig(ParseConfig(ServerConfig("latency.db", o.server_threads, "")), dir.path());
            server->Start();
            storage::Database& db = server->database();
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
        const std::string db_path = dir.File("shared.db");
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
        std::ofstream(config) << ServerConfig(db_path, o.server_threads, redis_url);
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
    line << r.name << ": rows=" << r.rows << " subscribers=" << r.rows << " rate=" << Fixed(r.rate, 0)
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

// ---------------------------------------------------------------------------------------------------------------

const std::vector<std::string>& AllCases() {
    static const std::vector<std::string> cases = {"fanout-1x1000",     "fanout-1x10000", "fanout-1000x1",
                                                   "latency-inprocess", "latency-redis",  "latency-external"};
    return cases;
}

FanoutShape ShapeOf(const std::string& name, bool quick) {
    if (name == "fanout-1x1000") return {name, 1, quick ? 500 : 1000};
    if (name == "fanout-1x10000") return {name, 1, quick ? 2000 : 10000};
    return {name, quick ? 200 : 1000, 1};
}

int Main(int argc, char** argv) {
    Options o;
    CLI::App app{"syncline_fanout: push fan-out against a bare websocketpp broadcast, and commit-to-receipt latency"};
    app.add_option(
           "--case", o.cases,
           "case(s) to run, default all: " +
               [] {
                   std::string names;
                   for (const auto& c : AllCases()) names += (names.empty() ? "" : ", ") + c;
                   return names;
               }())
        ->delimiter(',');
    app.add_flag("--quick", o.quick,
                 "short smoke run: 0.3 s warmup, 1 s per case, fewer sockets (500, 2,000, 200 rows; latency 200 rows)");
    app.add_option("--duration", o.duration_s, "measurement window per case, seconds")->capture_default_str();
    app.add_option("--warmup", o.warmup_s, "unmeasured warmup per case, seconds")->capture_default_str();
    app.add_option("--server-threads", o.server_threads, "websocket worker threads of syncline and of the bare server")
        ->capture_default_str();
    app.add_option("--client-threads", o.client_threads, "client io threads")->capture_default_str();
    app.add_option("--backlog", o.backlog,
                   "fan-out: deliveries in flight; window = backlog / subscribers per row versions (2 at least)")
        ->capture_default_str();
    app.add_option("--batch", o.batch,
                   "fan-out: changes per write transaction (at most the rows; default 1: one Patch per change)")
        ->capture_default_str();
    app.add_option("--pad", o.pad, "length of the row's text field (sets the frame size)")->capture_default_str();
    app.add_option("--rate", o.rate, "latency: changes per second")->capture_default_str();
    app.add_option("--latency-rows", o.latency_rows, "latency: rows (one subscriber each)")->capture_default_str();
    app.add_option("--redis", o.redis_url,
                   "latency-redis: redis://host:port/db (default $SYNCLINE_TEST_REDIS_URL, else an own redis-server)");
    app.add_option("--fanout-clients", o.fanout_clients,
                   "where fan-out clients run: child (a forked process; 10,000 sockets need it) or inprocess")
        ->check(CLI::IsMember({"child", "inprocess"}))
        ->capture_default_str();
    app.add_option("--syncline", o.syncline_bin, "the syncline binary (default: next to this executable)");
    app.add_option("--json", o.json_path, "also write the results as a JSON array to this file");
    app.add_option("--latency-csv", o.csv_prefix,
                   "latency cases: write every change's timestamps to <PREFIX><case>.csv (for looking at the tail)");
    CLI11_PARSE(app, argc, argv);

    const bool duration_set = app.count("--duration") != 0, warmup_set = app.count("--warmup") != 0;
    if (o.quick) {
        if (!duration_set) o.duration_s = 1.0;
        if (!warmup_set) o.warmup_s = 0.3;
        if (app.count("--latency-rows") == 0) o.latency_rows = 200;
    }
    if (o.cases.empty() || (o.cases.size() == 1 && o.cases[0] == "all")) o.cases = AllCases();
    for (const auto& c : o.cases) {
        if (std::find(AllCases().begin(), AllCases().end(), c) == AllCases().end()) {
            std::fprintf(stderr, "syncline_fanout: unknown case %s\n", c.c_str());
            return 2;
        }
    }
    if (o.duration_s <= 0 || o.warmup_s < 0 || o.rate <= 0 || o.latency_rows <= 0 || o.backlog <= 0 || o.batch <= 0) {
        std::fprintf(stderr, "syncline_fanout: durations, rate, rows and backlog must be positive\n");
        return 2;
    }
    if (o.redis_url.empty()) {
        if (const char* env = std::getenv("SYNCLINE_TEST_REDIS_URL")) o.redis_url = env;
    }
    if (o.syncline_bin.empty()) {
        std::error_code ec;
        o.syncline_bin = (std::filesystem::canonical("/proc/self/exe", ec).parent_path() / "syncline").string();
    }

    // 10,000 sockets: raise the soft limit on descriptors to the hard one.
    rlimit limit{};
    getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    getrlimit(RLIMIT_NOFILE, &limit);
    std::signal(SIGPIPE, SIG_IGN);

    SharedState* shared = MapSharedState();
    const bool any_fanout =
        std::any_of(o.cases.begin(), o.cases.end(), [](const std::string& c) { return c.rfind("fanout", 0) == 0; });
    // Forked now, while this process has one thread.
    std::unique_ptr<FleetControl> fanout_fleet;
    if (any_fanout && o.fanout_clients == "child") fanout_fleet = ForkFleetProcess(*shared);
    std::unique_ptr<FleetControl> local_fleet = MakeLocalFleet(*shared);
    if (!fanout_fleet) fanout_fleet = MakeLocalFleet(*shared);

    spdlog::set_level(spdlog::level::warn);  // syncline's start-up info lines would interleave with the results

    char date[64];
    const std::time_t now = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S %Z", std::localtime(&now));
    double load[3] = {0, 0, 0};
    getloadavg(load, 3);
    std::printf("syncline_fanout %s | %u cpus | open files %llu | server threads %u, client threads %u | %s%s\n", date,
                std::thread::hardware_concurrency(), static_cast<unsigned long long>(limit.rlim_cur), o.server_threads,
                o.client_threads, o.quick ? "quick, " : "",
                ("warmup " + Fixed(o.warmup_s, 1) + " s, window " + Fixed(o.duration_s, 1) + " s").c_str());
    std::printf("load average at start: %.2f %.2f %.2f\n", load[0], load[1], load[2]);
    std::fflush(stdout);

    std::vector<std::string> json;
    bool errors = false;
    for (const std::string& name : o.cases) {
        getloadavg(load, 3);
        std::fprintf(stderr, "  (load average %.2f %.2f %.2f)\n", load[0], load[1], load[2]);
        if (name.rfind("fanout", 0) == 0) {
            const FanoutShape shape = ShapeOf(name, o.quick);
            if (o.fanout_clients == "inprocess" && 2 * static_cast<rlim_t>(shape.sockets()) + 256 > limit.rlim_cur) {
                std::printf(
                    "%s: ERROR %d client and %d server sockets do not fit in %llu descriptors; use "
                    "--fanout-clients child\n",
                    name.c_str(), shape.sockets(), shape.sockets(), static_cast<unsigned long long>(limit.rlim_cur));
                errors = true;
                continue;
            }
            FanoutResult r;
            try {
                r = RunFanout(shape, *fanout_fleet, *shared, o);
            } catch (const std::exception& e) {
                r.shape = shape;
                r.syncline.error = e.what();
            }
            errors = errors || !r.bare.error.empty() || !r.syncline.error.empty();
            std::printf("%s\n", FanoutLine(r).c_str());
            if (!r.syncline.server_stats.empty())
                std::printf("  syncline observer: %s\n", r.syncline.server_stats.c_str());
            if (!r.bare.cpu.empty()) std::printf("  cpu bare (cores busy+waiting for a cpu): %s\n", r.bare.cpu.c_str());
            if (!r.syncline.cpu.empty()) {
                std::printf("  cpu syncline (cores busy+waiting for a cpu): %s\n", r.syncline.cpu.c_str());
            }
            json.push_back(FanoutJson(r));
        } else {
            const double target = name == "latency-redis" ? 5.0 : 2.0;
            LatencyResult r = RunLatency(name, *local_fleet, *shared, o);
            errors = errors || !r.error.empty();
            std::printf("%s\n", LatencyLine(r, target).c_str());
            if (!r.setup.empty()) {
                std::printf("  setup: %s; whole machine %.2f cores busy during the measurement\n", r.setup.c_str(),
                            r.machine_cores);
            }
            if (!r.server_stats.empty()) std::printf("  syncline observer: %s\n", r.server_stats.c_str());
            json.push_back(LatencyJson(r));
        }
        std::fflush(stdout);
    }
    if (!o.json_path.empty()) {
        std::ofstream out(o.json_path);
        out << "[\n";
        for (std::size_t i = 0; i < json.size(); ++i) out << "  " << json[i] << (i + 1 < json.size() ? ",\n" : "\n");
        out << "]\n";
    }
    return errors ? 1 : 0;
}

}  // namespace
}  // namespace syncline::fanout

int main(int argc, char** argv) {
    try {
        return syncline::fanout::Main(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "syncline_fanout: %s\n", e.what());
        return 1;
    }
}
