// The PostgreSQL test sandbox (tests/support pg_sandbox.hpp) against the server scripts/test.sh starts: each
// PgTestDatabase is a distinct, empty database reachable with the admin URL's credentials, the SQL helpers run SQL
// and report the server's errors, and the database is gone after destruction.
#include <syncline/test_support/pg_sandbox.hpp>

#include <gtest/gtest.h>

#include <optional>
#include <stdexcept>
#include <string>

namespace syncline::test_support {
namespace {

std::string CountDatabasesNamed(const std::string& admin_url, const std::string& name) {
    // The name is ours (letters, digits, underscores), so it can be quoted inline.
    return PgTestDatabase::QueryScalar(admin_url, "SELECT count(*) FROM pg_database WHERE datname = '" + name + "'");
}

TEST(PgUrlWithDatabase, ReplacesOnlyThePath) {
    EXPECT_EQ(PgUrlWithDatabase("postgresql://u:p@127.0.0.1:5433/postgres", "db1"),
              "postgresql://u:p@127.0.0.1:5433/db1");
    EXPECT_EQ(PgUrlWithDatabase("postgresql://u:p@127.0.0.1:5433/postgres?sslmode=disable", "db1"),
              "postgresql://u:p@127.0.0.1:5433/db1?sslmode=disable");
    EXPECT_EQ(PgUrlWithDatabase("postgresql://u:p@127.0.0.1:5433", "db1"), "postgresql://u:p@127.0.0.1:5433/db1");
    EXPECT_EQ(PgUrlWithDatabase("postgresql://127.0.0.1?sslmode=disable", "db1"),
              "postgresql://127.0.0.1/db1?sslmode=disable");
    EXPECT_THROW(PgUrlWithDatabase("host=127.0.0.1 dbname=postgres", "db1"), std::invalid_argument);
}

TEST(PgSandbox, DatabasesAreFreshDistinctAndDroppedAfterUse) {
    const std::optional<std::string> admin = PgAdminUrl();
    if (!admin) GTEST_SKIP() << kPgSkipReason;

    std::string first_name;
    std::string second_name;
    {
        PgTestDatabase first(*admin);
        PgTestDatabase second(*admin);
        first_name = first.name();
        second_name = second.name();
        EXPECT_NE(first.name(), second.name());
        EXPECT_NE(first.url(), second.url());
        EXPECT_EQ(first.admin_url(), *admin);
        EXPECT_EQ(first.name().rfind("syncline_t_", 0), 0U) << first.name();

        // Each URL reaches its own database with the admin URL's credentials (the password goes through
        // scram-sha-256 over TCP: the server scripts/pg-test-server.sh starts trusts only its unix socket).
        EXPECT_EQ(PgTestDatabase::QueryScalar(first.url(), "SELECT current_database()"), first.name());
        EXPECT_EQ(PgTestDatabase::QueryScalar(second.url(), "SELECT current_database()"), second.name());
        EXPECT_EQ(CountDatabasesNamed(*admin, first.name()), "1");

        // Empty: no table outside the system schemas.
        const std::string user_tables =
            "SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'";
        EXPECT_EQ(PgTestDatabase::QueryScalar(first.url(), user_tables), "0");
        EXPECT_EQ(PgTestDatabase::QueryScalar(second.url(), user_tables), "0");

        // Exec runs several statements; what one database gets, the other does not see.
        PgTestDatabase::Exec(first.url(),
                             "CREATE TABLE posts (id bigserial PRIMARY KEY, title text NOT NULL);"
                             "INSERT INTO posts (title) VALUES ('héllo'), ('world')");
        EXPECT_EQ(PgTestDatabase::QueryScalar(first.url(), "SELECT count(*) FROM posts"), "2");
        EXPECT_EQ(PgTestDatabase::QueryScalar(first.url(), "SELECT title FROM posts ORDER BY id"), "héllo");
        EXPECT_EQ(PgTestDatabase::QueryScalar(first.url(), "SELECT NULL"), "");
        EXPECT_EQ(PgTestDatabase::QueryScalar(second.url(), "SELECT to_regclass('posts') IS NULL"), "t");
        EXPECT_EQ(PgTestDatabase::QueryScalar(first.url(), "SHOW server_encoding"), "UTF8");

        // A bad statement throws with the server's message and SQLSTATE.
        try {
            PgTestDatabase::Exec(first.url(), "SELEC 1");
            ADD_FAILURE() << "Exec of bad SQL did not throw";
        } catch (const std::runtime_error& e) {
            const std::string what = e.what();
            EXPECT_NE(what.find("syntax error at or near \"SELEC\""), std::string::npos) << what;
            EXPECT_NE(what.find("42601"), std::string::npos) << what;
        }
        try {
            PgTestDatabase::QueryScalar(first.url(), "SELECT * FROM no_such_table");
            ADD_FAILURE() << "QueryScalar on a missing table did not throw";
        } catch (const std::runtime_error& e) {
            EXPECT_NE(std::string(e.what()).find("relation \"no_such_table\" does not exist"), std::string::npos)
                << e.what();
        }
        EXPECT_THROW(PgTestDatabase::QueryScalar(first.url(), "SELECT 1 WHERE false"), std::runtime_error);
    }
    // Dropped at destruction (the second while nothing holds it; FORCE would also end open sessions).
    EXPECT_EQ(CountDatabasesNamed(*admin, first_name), "0");
    EXPECT_EQ(CountDatabasesNamed(*admin, second_name), "0");
}

TEST(PgSandbox, ConnectionFailureThrowsWithoutThePassword) {
    const std::optional<std::string> admin = PgAdminUrl();
    if (!admin) GTEST_SKIP() << kPgSkipReason;
    const std::string wrong = PgUrlWithDatabase(*admin, "syncline_no_such_database");
    try {
        PgTestDatabase::Exec(wrong, "SELECT 1");
        ADD_FAILURE() << "connecting to a missing database did not throw";
    } catch (const std::runtime_error& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("database \"syncline_no_such_database\" does not exist"), std::string::npos) << what;
        const auto at = admin->find('@');
        const auto colon = admin->rfind(':', at);
        ASSERT_NE(at, std::string::npos);
        const std::string password = admin->substr(colon + 1, at - colon - 1);
        EXPECT_EQ(what.find(password), std::string::npos) << what;
    }
}

}  // namespace
}  // namespace syncline::test_support
