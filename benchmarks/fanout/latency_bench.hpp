#pragma once
// syncline_fanout, the latency benchmark: the time from a write's commit to the receipt of its push by a subscribed
// socket, with the server in this process, in `syncline serve` children sharing the file through Redis, and with the
// writes made by another process. Method in latency_bench.cpp and README.md.

#include <cstddef>
#include <string>

#include "bench_common.hpp"
#include "fleet_process.hpp"
#include "shared_state.hpp"

namespace syncline::fanout {

/// One latency case's figures.
struct LatencyResult {
    std::string name;
    std::string error;
    std::string setup;  // where the clients and the relay were
    int rows = 0;
    int subscribers = 1;  // per row
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
    // Several subscribers per row: the latency of each version's last receipt (its slowest subscriber; versions no one
    // received are left out), the pushes received per second, and how many subscribers ended at the final state.
    double last_p50 = 0, last_p99 = 0, last_max = 0;  // ms
    double deliveries_per_s = 0;
    std::size_t received_versions = 0;
    std::uint32_t final_subscribers = 0;
    std::string server_stats;
};

/// Runs the latency case `name` (latency-inprocess, latency-redis or latency-external) with the clients of `fleet`.
LatencyResult RunLatency(const std::string& name, FleetControl& fleet, SharedState& shared, const Options& o);
/// The result line printed to stdout; `target_ms` is the p99 aim.
std::string LatencyLine(const LatencyResult& r, double target_ms);
/// The result as a JSON object (--json).
std::string LatencyJson(const LatencyResult& r);

}  // namespace syncline::fanout
