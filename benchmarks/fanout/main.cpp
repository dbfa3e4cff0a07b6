// syncline_fanout: fan-out throughput against a bare websocketpp broadcast (the ceiling), and commit-to-receipt latency
// of instance-subscription pushes, in-process, through Redis across processes, and for writes made by another process.
// This file holds the command line, the table of cases and the output; each benchmark has its own file:
// fanout_bench.cpp (the fanout-RxS cases) and latency_bench.cpp (the latency-* cases), with what they share in
// bench_common.cpp. The clients and the bare server are in fleet.cpp, child processes and CPU accounting in
// processes.cpp.
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench_common.hpp"
#include "fanout_bench.hpp"
#include "fleet_process.hpp"
#include "latency_bench.hpp"
#include "shared_state.hpp"

namespace syncline::fanout {
namespace {

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
    app.add_option("--latency-rows", o.latency_rows, "latency: rows")->capture_default_str();
    app.add_option("--latency-subscribers", o.latency_subscribers,
                   "latency: subscribers per row (several: the overload case, where the server cannot push every "
                   "version to everyone; the receipt times of the last subscriber are reported too)")
        ->check(CLI::Range(1, 100000))
        ->capture_default_str();
    app.add_option("--redis", o.redis_url,
                   "latency-redis: redis://host:port/db (default $SYNCLINE_TEST_REDIS_URL, else an own redis-server)");
    app.add_option("--fanout-clients", o.fanout_clients,
                   "where fan-out clients run: child (a forked process; 10,000 sockets need it) or inprocess")
        ->check(CLI::IsMember({"child", "inprocess"}))
        ->capture_default_str();
    app.add_option("--syncline", o.syncline_bin, "the syncline binary (default: next to this executable)");
    app.add_option("--json", o.json_path, "also write the results as a JSON array to this file");
    app.add_option("--pg", o.pg_admin_url,
                   "a PostgreSQL admin URL (postgresql://user:password@host:port/postgres): run every case on a fresh "
                   "database created from it instead of an SQLite file");
    app.add_option("--latency-csv", o.csv_prefix,
                   "latency cases: write every change's timestamps to <PREFIX><case>.csv (for looking at the tail)");
    app.add_option("--server-json", o.server_json,
                   "more members of every syncline server's config, JSON without braces, e.g. "
                   "'\"coalesce_after_ms\": 5'");
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
