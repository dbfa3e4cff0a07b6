// syncline_fanout, fan-out cases (fanout-RxS: R rows, S subscribed sockets per row). For each case, in the same run:
//   1. bare:     a bare websocketpp server (fleet.cpp, no syncline code) answers the subscriptions and a broadcaster
//                thread sends each change as one prepared frame, byte-for-byte shaped like syncline's push, to the
//                row's sockets;
//   2. syncline: an in-process transport::Server (in-process bus, temp database, mixins ["patch","observe_instance"])
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
//   percentage of the bare one (aims: >= 70 % for one row to many sockets, >= 50 % for many rows; FanoutLine).
#include "fanout_bench.hpp"

#include <syncline/config/config.hpp>
#include <syncline/core/model/schema.hpp>
#include <syncline/observer/observer.hpp>
#include <syncline/storage/database.hpp>
#include <syncline/transport/server.hpp>

#include <pthread.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <functional>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include "fleet.hpp"
#include "processes.hpp"

namespace syncline::fanout {
namespace {

// The frame syncline pushes for row `pk` holding counter `n` (observer_mixins.cpp PushPrefix + the request_id).
std::string PushFrame(std::int64_t pk, std::int64_t n, const std::string& pad, std::int64_t version) {
    return R"({"errors":[],"data":{"id":)" + std::to_string(pk) + R"(,"n":)" + std::to_string(n) + R"(,"pad":")" + pad +
           R"("},"action":"update","response_status":200,"version":)" + std::to_string(version) +
           R"(,"request_id":"s"})";
}

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

}  // namespace

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
        std::unique_ptr<test_support::PgTestDatabase> pg;
        auto server = config::BuildServer(
            config::ParseConfig(ConfigJson(CaseDatabase(o, dir, "fanout.db", pg), o.server_threads, "", o.server_json)),
            dir.path());
        const std::vector<pid_t> threads_before = OwnThreadIds();
        server->Start();
        // Server::Start starts the relay's thread, then the websocket workers: name them by creation order.
        std::vector<std::pair<pid_t, std::string>> labels;
        for (pid_t tid : OwnThreadIds()) {
            if (std::find(threads_before.begin(), threads_before.end(), tid) != threads_before.end()) continue;
            labels.emplace_back(tid, labels.empty() ? "relay" : "ws-io");
        }
        storage::Backend& db = server->database();
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
                if (db.RunsBatches()) {
                    // --batch: several rows' changes in one transaction, each in a savepoint of its own, as the batch
                    // writer runs the patches of that many sockets (RunBatch; both engines run batches).
                    std::vector<storage::BatchedWrite> writes(static_cast<std::size_t>(count));
                    for (std::int64_t c = first; c < first + count; ++c) {
                        writes[static_cast<std::size_t>(c - first)].run = [&db, c, rows] {
                            db.Patch("items", Value(1 + c % rows), {{"n", Value(c)}});
                        };
                    }
                    db.RunBatch(writes);
                    return;
                }
                auto tx = db.Begin();  // --batch on a store without batches: several changes in one transaction
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
    // Issue 13's aims: one row to many sockets >= 70 % (item 2); many rows, one socket each, >= 50 % (item 1: each
    // change is a durable write).
    const double aim = r.shape.per_row == 1 ? 50.0 : 70.0;
    const double written = static_cast<double>(r.syncline.written);
    const double expected = written * r.shape.per_row;  // frames if no version were coalesced away
    line << "syncline " << Thousands(r.syncline.deliveries_per_s) << " deliveries/s, bare websocketpp "
         << Thousands(r.bare.deliveries_per_s) << " deliveries/s -> " << Fixed(ratio, 1)
         << " % of the ceiling (aim >= " << Fixed(aim, 0) << " %: " << (ratio >= aim ? "met" : "MISSED") << ")"
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

std::string FanoutJson(const FanoutResult& r) {
    const double ratio = r.bare.deliveries_per_s > 0 ? r.syncline.deliveries_per_s / r.bare.deliveries_per_s : 0;
    std::ostringstream j;
    j << "{\"case\":" << JsonString(r.shape.name) << ",\"rows\":" << r.shape.rows
      << ",\"subscribers_per_row\":" << r.shape.per_row << ",\"sockets\":" << r.shape.sockets()
      << ",\"window\":" << r.window << ",\"batch\":" << r.batch << ",\"ratio\":" << Fixed(ratio, 4)
      << ",\"bare\":" << RunJson(r.bare) << ",\"syncline\":" << RunJson(r.syncline) << "}";
    return j.str();
}

}  // namespace syncline::fanout
