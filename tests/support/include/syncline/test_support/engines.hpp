#pragma once
/// \file
/// Running one test on both storage engines: a test suite parameterised by Engine gets, per test, an SQLite file in
/// its temporary directory or a fresh PostgreSQL database (pg_sandbox.hpp), and the `database` text that selects it
/// (storage::OpenBackend, ServerOptions::database, a config's "database"). A PostgreSQL case skips when
/// SYNCLINE_TEST_PG_URL is unset. Usage:
///
///     class FooTest : public ::testing::TestWithParam<Engine> { ... EngineDatabase db_{GetParam(), dir_}; ... };
///     INSTANTIATE_TEST_SUITE_P(Engines, FooTest, AllEngines(), EngineParamName);
///
/// Library syncline_test_pg. Threads: as pg_sandbox.hpp.

#include <syncline/test_support/pg_sandbox.hpp>
#include <syncline/test_support/sandbox.hpp>

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace syncline::test_support {

enum class Engine { kSqlite, kPostgres };

/// Both engines, for INSTANTIATE_TEST_SUITE_P.
inline auto AllEngines() { return ::testing::Values(Engine::kSqlite, Engine::kPostgres); }

/// "Sqlite" or "Postgres": test names read FooTest.Bar/Sqlite.
inline std::string EngineParamName(const ::testing::TestParamInfo<Engine>& info) {
    return info.param == Engine::kSqlite ? "Sqlite" : "Postgres";
}

/// Runs SQL through the `sqlite3` shell on the file at `path`, as a user in another terminal would (with a busy
/// timeout, as a user's shell would set). Throws std::runtime_error when it fails.
void SqliteShellExec(const std::string& path, const std::string& sql);

/// The database of one test on one engine. Create it in SetUp and GTEST_SKIP() when !available().
class EngineDatabase {
public:
    /// kSqlite: the file `file` inside `dir`. kPostgres: a fresh database (none when SYNCLINE_TEST_PG_URL is unset).
    EngineDatabase(Engine engine, const TempDir& dir, const std::string& file = "blog.db");
    Engine engine() const { return engine_; }
    /// False for kPostgres without a server to use: skip the test (with kPgSkipReason).
    bool available() const { return !database_.empty(); }
    /// The text that selects this database: a file path, or a postgresql:// URL.
    const std::string& database() const { return database_; }
    /// Runs SQL as another client would: the `sqlite3` shell on the file, or a plain libpq connection. Throws
    /// std::runtime_error when it fails.
    void ExecOutside(const std::string& sql) const;
    /// The PostgreSQL database (kPostgres only, else null).
    const PgTestDatabase* pg() const { return pg_.get(); }

private:
    Engine engine_;
    std::string database_;
    std::unique_ptr<PgTestDatabase> pg_;
};

}  // namespace syncline::test_support
