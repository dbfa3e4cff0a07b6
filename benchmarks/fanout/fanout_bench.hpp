#pragma once
// syncline_fanout, the fan-out benchmark: deliveries per second of one change pushed to many sockets, syncline against
// a bare websocketpp broadcast (the ceiling) measured in the same run with the same clients. Method in
// fanout_bench.cpp and README.md.

#include <cstdint>
#include <string>

#include "bench_common.hpp"
#include "fleet_process.hpp"
#include "shared_state.hpp"

namespace syncline::fanout {

/// A fan-out case: `rows` rows with `per_row` subscribed sockets each.
struct FanoutShape {
    std::string name;
    int rows = 1;
    int per_row = 1;
    int sockets() const { return rows * per_row; }
};

/// One side (bare or syncline) of a fan-out case.
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

/// Both sides of a fan-out case.
struct FanoutResult {
    FanoutShape shape;
    std::int64_t window = 0;
    std::int64_t batch = 1;
    FanoutRun bare, syncline;
};

/// Runs one case against the bare server, then against an in-process transport::Server, with the clients of `fleet`.
FanoutResult RunFanout(const FanoutShape& shape, FleetControl& fleet, SharedState& shared, const Options& o);
/// The result line printed to stdout.
std::string FanoutLine(const FanoutResult& r);
/// The result as a JSON object (--json).
std::string FanoutJson(const FanoutResult& r);

}  // namespace syncline::fanout
