// Storage hot paths: single-row update transactions with and without change capture (synchronous NORMAL and
// FULL), batched updates (100 rows per transaction), and the change feed's read rate.
// Run: build/bin/syncline_bench_storage (see benchmarks/README.md for the recorded figures).

#include <syncline/storage/change_feed.hpp>
#include <syncline/storage/database.hpp>

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>

namespace {

using syncline::Schema;
using syncline::Value;
using syncline::storage::ChangeFeed;
using syncline::storage::Database;
using syncline::storage::DatabaseOptions;
using syncline::storage::Synchronous;

constexpr int kRows = 1000;

// A fresh database file under /tmp with kRows rows in "items".
class BenchDb {
public:
    BenchDb(bool capture, Synchronous sync) {
        char tmpl[] = "/tmp/syncline-bench-XXXXXX";
        dir_ = mkdtemp(tmpl);
        DatabaseOptions options;
        options.path = dir_ + "/bench.db";
        options.synchronous = sync;
        options.capture_changes = capture;
        db_ = Database::Open(options, {Schema::FromJson("items", R"({"fields": {
            "name": {"type": "text", "max_length": 100}, "n": {"type": "integer"},
            "score": {"type": "real", "default": 0}}})")});
        auto tx = db_->Begin();
        for (int i = 0; i < kRows; ++i) tx->Insert("items", {{"name", "item " + std::to_string(i)}, {"n", 0}});
        tx->Commit();
    }
    ~BenchDb() {
        db_.reset();
        std::filesystem::remove_all(dir_);
    }
    Database& db() { return *db_; }

private:
    std::string dir_;
    std::unique_ptr<Database> db_;
};

void BM_UpdateOneRowPerTransaction(benchmark::State& state) {
    bool capture = state.range(0) != 0;
    Synchronous sync = state.range(1) ? Synchronous::kFull : Synchronous::kNormal;
    BenchDb bench(capture, sync);
    std::int64_t i = 0;
    for (auto _ : state) {
        auto row = bench.db().Patch("items", Value(1 + i % kRows), {{"n", i}});
        benchmark::DoNotOptimize(row);
        ++i;
    }
    state.SetItemsProcessed(state.iterations());
    state.SetLabel(std::string(capture ? "capture" : "no capture") + ", synchronous=" +
                   (sync == Synchronous::kFull ? "FULL" : "NORMAL"));
}
BENCHMARK(BM_UpdateOneRowPerTransaction)
    ->ArgNames({"capture", "full"})
    ->Args({0, 0})
    ->Args({1, 0})
    ->Args({0, 1})
    ->Args({1, 1})
    ->UseRealTime()  // rates from wall time: commits wait on I/O, not only on the CPU
    ->MinTime(2.0)
    ->Unit(benchmark::kMicrosecond);

void BM_Update100RowsPerTransaction(benchmark::State& state) {
    BenchDb bench(state.range(0) != 0, Synchronous::kNormal);
    std::int64_t i = 0;
    for (auto _ : state) {
        auto tx = bench.db().Begin();
        for (int k = 0; k < 100; ++k, ++i) tx->Patch("items", Value(1 + i % kRows), {{"n", i}});
        tx->Commit();
    }
    state.SetItemsProcessed(state.iterations() * 100);
    state.SetLabel(state.range(0) ? "capture, rows/s" : "no capture, rows/s");
}
BENCHMARK(BM_Update100RowsPerTransaction)
    ->ArgName("capture")
    ->Arg(0)
    ->Arg(1)
    ->UseRealTime()
    ->MinTime(2.0)
    ->Unit(benchmark::kMillisecond);

// Reads the whole feed after writing `changes` updates, in batches of range(1) changes, each with its row.
void BM_FeedRead(benchmark::State& state) {
    const std::int64_t changes = state.range(0);
    const auto batch = static_cast<std::size_t>(state.range(1));
    BenchDb bench(true, Synchronous::kNormal);
    {
        auto tx = bench.db().Begin();
        for (std::int64_t i = 0; i < changes; ++i) tx->Patch("items", Value(1 + i % kRows), {{"n", i}});
        tx->Commit();
    }
    ChangeFeed feed(bench.db());
    std::int64_t read = 0;
    for (auto _ : state) {
        std::int64_t cursor = 0;
        while (true) {
            auto events = feed.ReadAfter(cursor, batch);
            if (events.empty()) break;
            cursor = events.back().seq;
            read += static_cast<std::int64_t>(events.size());
            benchmark::DoNotOptimize(events);
        }
    }
    state.SetItemsProcessed(read);
    state.SetLabel("changes/s, each with its current row");
}
BENCHMARK(BM_FeedRead)->ArgNames({"changes", "batch"})->Args({200000, 1024})->Iterations(10)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
