#pragma once
// syncline_fanout: what both benchmarks share. The command-line options, the model and route every case serves (one
// table "items", mixins ["patch","observe_instance"]) as syncline config text, and the formatting of the results.

#include <syncline/observer/observer.hpp>
#include <syncline/test_support/pg_sandbox.hpp>
#include <syncline/test_support/sandbox.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "shared_state.hpp"

namespace syncline::fanout {

inline constexpr const char* kFields = R"({"fields": {
  "id": {"type": "integer", "primary_key": true},
  "n": {"type": "integer", "default": 0},
  "pad": {"type": "text", "blank": true, "default": ""}}})";
inline constexpr const char* kPath = "/ws/items/";

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
    int latency_subscribers = 1;  // latency: subscribers per row
    std::string redis_url;
    std::string fanout_clients = "child";
    std::string syncline_bin;
    std::string json_path;
    std::string csv_prefix;
    /// A PostgreSQL admin URL: every case then runs on a fresh database created from it (else an SQLite file).
    std::string pg_admin_url;
    /// More members of every syncline server's config, e.g. `"coalesce_after_ms": 5` (JSON text without braces).
    std::string server_json;
};

using test_support::TempDir;

/// The database a case runs on: `file` in `dir` (SQLite), or with --pg a fresh PostgreSQL database that `holder` keeps
/// (and drops at the end of the case).
std::string CaseDatabase(const Options& o, const TempDir& dir, const std::string& file,
                         std::unique_ptr<test_support::PgTestDatabase>& holder);

/// `n` times 'x' (the row's text field; sets the frame size).
std::string Pad(int n);
/// The config text of a server on `database` with `workers` threads, the items model on kPath, and the Redis bus when
/// `redis` is set (else the in-process bus), and `extra` (more members, JSON text without braces) when set.
std::string ConfigJson(const std::string& database, unsigned workers, const std::string& redis,
                       const std::string& extra);
/// 1234567.8 as "1,234,568".
std::string Thousands(double value);
/// `value` with `decimals` decimals.
std::string Fixed(double value, int decimals);
/// `text` as a JSON string literal.
std::string JsonString(const std::string& text);
/// A duration in seconds.
inline double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
/// The observer's counters on one line.
std::string ObserverSummary(observer::Observer& obs);

}  // namespace syncline::fanout
