// Storage hot paths: single-row update transactions with and without change capture (synchronous NORMAL and
// FULL), batched updates (100 rows per transaction), the change feed's read rate, `in` filters (three SQL forms of a
// list on one raw SQLite connection: inline placeholders, json_each of a JSON array, syncline_values of a bound
// pointer; and Database::List with `id__in` lists as the consumers call it), and three SQL forms of a text lookup.
// Run: build/bin/syncline_bench_storage (see benchmarks/README.md for the recorded figures).

#include <syncline/core/model/query.hpp>
#include <syncline/storage/change_feed.hpp>
#include <syncline/storage/database.hpp>
#include <syncline/test_support/pg_sandbox.hpp>

#include <benchmark/benchmark.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <stdexcept>

// Private to storage: the benchmark registers the same table-valued function on its raw connection.
#include "extensions.hpp"

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

// The same single-row update on PostgreSQL, captured or not, each its own transaction (an UPDATE ... RETURNING in
// autocommit). Needs SYNCLINE_BENCH_PG_URL, an admin URL (every run creates a fresh database from it).
void BM_PgUpdateOneRowPerTransaction(benchmark::State& state) {
    const char* admin = std::getenv("SYNCLINE_BENCH_PG_URL");
    if (admin == nullptr || *admin == '\0') {
        state.SkipWithError("SYNCLINE_BENCH_PG_URL is not set");
        return;
    }
    const bool capture = state.range(0) != 0;
    syncline::test_support::PgTestDatabase pg(admin);
    syncline::storage::BackendOptions options;
    options.database = pg.url();
    options.capture_changes = capture;
    auto db = syncline::storage::OpenBackend(options, {Schema::FromJson("items", R"({"fields": {
        "name": {"type": "text", "max_length": 100}, "n": {"type": "integer"},
        "score": {"type": "real", "default": 0}}})")});
    {
        auto tx = db->Begin();
        for (int i = 0; i < kRows; ++i) tx->Insert("items", {{"name", "item " + std::to_string(i)}, {"n", 0}});
        tx->Commit();
    }
    std::int64_t i = 0;
    for (auto _ : state) {
        auto row = db->Patch("items", Value(1 + i % kRows), {{"n", i}});
        benchmark::DoNotOptimize(row);
        ++i;
    }
    state.SetItemsProcessed(state.iterations());
    state.SetLabel(capture ? "postgresql, capture" : "postgresql, no capture");
}
BENCHMARK(BM_PgUpdateOneRowPerTransaction)
    ->ArgName("capture")
    ->Arg(0)
    ->Arg(1)
    ->UseRealTime()
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

// `in` lists of `size` ids spread over a 100,000-row table, matching every row they name.
constexpr int kInRows = 100000;

std::vector<std::int64_t> SpreadIds(std::int64_t size) {
    std::mt19937_64 random(42);
    std::vector<std::int64_t> ids;
    for (std::int64_t i = 0; i < size; ++i) ids.push_back(1 + static_cast<std::int64_t>(random() % kInRows));
    return ids;
}

class InListDb {
public:
    InListDb() {
        char tmpl[] = "/tmp/syncline-bench-XXXXXX";
        dir_ = mkdtemp(tmpl);
        DatabaseOptions options;
        options.path = dir_ + "/in.db";
        options.capture_changes = false;
        db_ = Database::Open(options, {Schema::FromJson("items", R"({"fields": {
            "name": {"type": "text", "max_length": 100}, "n": {"type": "integer"}}})")});
        auto tx = db_->Begin();
        for (int i = 0; i < kInRows; ++i) tx->Insert("items", {{"name", "item " + std::to_string(i)}, {"n", i}});
        tx->Commit();
    }
    ~InListDb() {
        db_.reset();
        std::filesystem::remove_all(dir_);
    }
    Database& db() { return *db_; }
    std::string path() const { return dir_ + "/in.db"; }

private:
    std::string dir_;
    std::unique_ptr<Database> db_;
};

InListDb& SharedInListDb() {
    static InListDb db;
    return db;
}

// One SQL form of `id IN <list>` on a raw connection, the statement prepared once (a cache hit, as in the server),
// except form 3, which prepares the placeholder statement on every call (a cache miss: a length not seen before).
// Each iteration binds the list (building the JSON text for json_each), steps through every row and resets.
void BM_InListSqlForm(benchmark::State& state) {
    const int form = static_cast<int>(state.range(0));
    const std::int64_t size = state.range(1);
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(SharedInListDb().path().c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
        throw std::runtime_error("open");
    }
    syncline::storage::RegisterExtensions(db);
    std::vector<std::int64_t> ids = SpreadIds(size);
    std::vector<Value> values(ids.begin(), ids.end());
    std::string placeholders;
    for (std::int64_t i = 0; i < size; ++i) placeholders += i ? ",?" : "?";
    const std::string select = "SELECT id, name, n FROM items WHERE id IN ";
    std::string sql = form == 1   ? select + "(SELECT +value FROM json_each(?1))"
                      : form == 2 ? select + "(SELECT +value FROM syncline_values(?1))"
                                  : select + "(" + placeholders + ")";
    auto prepare = [&] {
        sqlite3_stmt* st = nullptr;
        if (sqlite3_prepare_v3(db, sql.c_str(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &st,
                               nullptr) != SQLITE_OK) {
            throw std::runtime_error(sqlite3_errmsg(db));
        }
        return st;
    };
    sqlite3_stmt* st = form == 3 ? nullptr : prepare();
    std::int64_t rows = 0;
    for (auto _ : state) {
        if (form == 3) st = prepare();
        if (form == 1) {
            std::string json = "[";
            for (std::size_t i = 0; i < ids.size(); ++i) (json += i ? "," : "") += std::to_string(ids[i]);
            json += "]";
            sqlite3_bind_text64(st, 1, json.data(), json.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
        } else if (form == 2) {
            sqlite3_bind_pointer(st, 1, &values, syncline::storage::kValuesTable, nullptr);
        } else {
            for (std::int64_t i = 0; i < size; ++i) sqlite3_bind_int64(st, static_cast<int>(i + 1), ids[i]);
        }
        while (sqlite3_step(st) == SQLITE_ROW) {
            benchmark::DoNotOptimize(sqlite3_column_int64(st, 0));
            ++rows;
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (form == 3) sqlite3_finalize(st);
    }
    if (form != 3) sqlite3_finalize(st);
    sqlite3_close_v2(db);
    state.SetItemsProcessed(state.iterations());
    static const char* kNames[] = {"placeholders (cached statement)", "json_each", "syncline_values",
                                   "placeholders (prepared per call)"};
    state.SetLabel(std::string(kNames[form]) + ", queries/s");
    benchmark::DoNotOptimize(rows);
}
BENCHMARK(BM_InListSqlForm)
    ->ArgNames({"form", "values"})
    ->ArgsProduct({{0, 1, 2, 3}, {1, 4, 16, 64, 256, 4096}})
    ->Args({0, 100000})
    ->Args({1, 100000})
    ->Args({2, 100000})
    ->Unit(benchmark::kMicrosecond);

// A text lookup (icontains "M 99", matching 1,111 of the 100,000 rows) through a whole table on a raw connection, in
// three SQL forms: LIKE with escaped wildcards (the form before issue 9: wrong past a NUL), instr(lower()) on blobs
// (byte-exact, but its numbers' text is SQLite's), and syncline_lookup (byte-exact, the in-memory matcher's code).
void BM_TextLookupSqlForm(benchmark::State& state) {
    const int form = static_cast<int>(state.range(0));
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(SharedInListDb().path().c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
        throw std::runtime_error("open");
    }
    syncline::storage::RegisterExtensions(db);
    const std::string select = "SELECT id, name, n FROM items WHERE ";
    std::string sql = form == 0   ? select + "name LIKE ?1 ESCAPE '\\'"
                      : form == 1 ? select + "instr(CAST(lower(name) AS BLOB), CAST(?1 AS BLOB)) > 0"
                                  : select + "syncline_lookup(" +
                                        std::to_string(static_cast<int>(syncline::FilterOp::kIContains)) + ", " +
                                        std::to_string(static_cast<int>(syncline::FieldType::kText)) + ", name, ?1)";
    std::string needle = form == 0 ? "%M 99%" : form == 1 ? "m 99" : "M 99";
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v3(db, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &st, nullptr) != SQLITE_OK) {
        throw std::runtime_error(sqlite3_errmsg(db));
    }
    std::int64_t rows = 0;
    for (auto _ : state) {
        sqlite3_bind_text(st, 1, needle.data(), static_cast<int>(needle.size()), SQLITE_STATIC);
        while (sqlite3_step(st) == SQLITE_ROW) ++rows;
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    sqlite3_close_v2(db);
    state.SetItemsProcessed(state.iterations() * kInRows);
    static const char* kNames[] = {"LIKE (before)", "instr(lower()) on blobs", "syncline_lookup"};
    state.SetLabel(std::string(kNames[form]) + ", rows scanned/s");
    if (rows != static_cast<std::int64_t>(state.iterations()) * 1111) state.SkipWithError("unexpected match count");
}
BENCHMARK(BM_TextLookupSqlForm)->ArgName("form")->DenseRange(0, 2)->Unit(benchmark::kMillisecond);

// Database::List with an `id__in` list of `values` ids, as a `list` request with that filter runs it (a reader
// connection of this thread, the statement cache, rows decoded into Values). range(1) is inline_in_values: 0 binds
// every list as one parameter, 1000000 writes every list inline (one statement per power of two), -1 the default.
void BM_ListIdIn(benchmark::State& state) {
    const std::int64_t size = state.range(0);
    char tmpl[] = "/tmp/syncline-bench-XXXXXX";
    std::string dir = mkdtemp(tmpl);
    std::filesystem::copy_file(SharedInListDb().path(), dir + "/in.db");
    DatabaseOptions options;
    options.path = dir + "/in.db";
    options.capture_changes = false;
    if (state.range(1) >= 0) options.inline_in_values = static_cast<std::size_t>(state.range(1));
    auto db = Database::Open(options, {Schema::FromJson("items", R"({"fields": {
            "name": {"type": "text", "max_length": 100}, "n": {"type": "integer"}}})")});
    std::vector<std::int64_t> ids = SpreadIds(size);
    syncline::Query query;
    query.filters = {{"id", syncline::FilterOp::kIn, {}, std::vector<Value>(ids.begin(), ids.end())}};
    for (auto _ : state) {
        auto rows = db->List("items", query);
        benchmark::DoNotOptimize(rows);
    }
    db.reset();
    std::filesystem::remove_all(dir);
    state.SetItemsProcessed(state.iterations());
    state.SetLabel(state.range(1) < 0    ? "default, queries/s"
                   : state.range(1) == 0 ? "always one parameter, queries/s"
                                         : "always inline, queries/s");
}
BENCHMARK(BM_ListIdIn)
    ->ArgNames({"values", "inline"})
    ->ArgsProduct({{1, 4, 16, 32, 64, 256}, {0, 1000000, -1}})
    ->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
