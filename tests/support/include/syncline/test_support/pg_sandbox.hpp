#pragma once
/// \file
/// A PostgreSQL database of its own for each test. scripts/test.sh starts a throw-away PostgreSQL 15
/// (scripts/pg-test-server.sh) and exports SYNCLINE_TEST_PG_URL, an admin URL; a test makes a PgTestDatabase from it,
/// which creates a fresh, uniquely named database and drops it again, so tests running in parallel never see each
/// other's tables. Exec and QueryScalar run SQL on any URL, as `psql` would, for set-up and checks.
///
/// Library syncline_test_pg (links libpq privately; this header names no libpq type).
/// Threads: every function opens its own connection and closes it before returning; all may be called from any
/// thread, concurrently.

#include <optional>
#include <string>

namespace syncline::test_support {

/// Why a PostgreSQL test skips when PgAdminUrl() is nullopt (for GTEST_SKIP() << kPgSkipReason).
inline constexpr const char* kPgSkipReason =
    "SYNCLINE_TEST_PG_URL is not set (scripts/test.sh starts a PostgreSQL 15 and sets it)";

/// The admin URL in SYNCLINE_TEST_PG_URL (`postgresql://user:password@127.0.0.1:port/postgres`); nullopt when it is
/// unset or empty.
std::optional<std::string> PgAdminUrl();

/// `url` with its database (the path) replaced by `database`, keeping scheme, credentials, host, port and query.
/// `database` is put in as is (no percent-encoding): plain names such as PgTestDatabase's. Throws
/// std::invalid_argument if `url` has no "scheme://".
std::string PgUrlWithDatabase(const std::string& url, const std::string& database);

/// A fresh, empty database on the server of an admin URL, dropped at destruction.
class PgTestDatabase {
public:
    /// Creates `syncline_t_<pid>_<counter>_<random>` (the name never comes from outside) through `admin_url`, a URL
    /// whose user may CREATE DATABASE and whose database is not the template (e.g. PgAdminUrl()). Throws
    /// std::runtime_error with PostgreSQL's message if it cannot.
    explicit PgTestDatabase(std::string admin_url);
    /// Drops the database, also when clients are still connected to it (DROP DATABASE ... WITH (FORCE): their
    /// sessions are terminated). Errors are swallowed: a destructor must not throw, and the server is thrown away
    /// after the run anyway.
    ~PgTestDatabase();
    PgTestDatabase(const PgTestDatabase&) = delete;
    PgTestDatabase& operator=(const PgTestDatabase&) = delete;

    /// A URL of this database: the admin URL's credentials, host and port.
    const std::string& url() const { return url_; }
    /// The database's name.
    const std::string& name() const { return name_; }
    /// The admin URL it was created through.
    const std::string& admin_url() const { return admin_url_; }

    /// Runs `sql` (one or more statements, no parameters) on `url` in a fresh connection. Throws std::runtime_error
    /// with PostgreSQL's message (its severity, text and SQLSTATE) if connecting or any statement fails.
    static void Exec(const std::string& url, const std::string& sql);
    /// Runs the query `sql` on `url` and returns the first column of its first row as text, as `psql -tA` prints
    /// it (NULL is ""). Throws std::runtime_error with PostgreSQL's message on failure, or if it returns no row.
    static std::string QueryScalar(const std::string& url, const std::string& sql);

private:
    std::string admin_url_;
    std::string name_;
    std::string url_;
};

}  // namespace syncline::test_support
