// The PostgreSQL connection's prepared statements (storage/src/postgres/pg_connection.hpp): each statement text is
// prepared once per connection and executed by name; the cache is bounded; and a statement the session lost (a pooler,
// DEALLOCATE) or whose plan no longer fits its table still runs, unprepared.
#include <syncline/test_support/pg_sandbox.hpp>

#include <gtest/gtest.h>

#include <string>

#include "postgres/pg_connection.hpp"

namespace syncline::storage::pg {
namespace {

class PgConnectionTest : public ::testing::Test {
protected:
    void SetUp() override {
        auto admin = test_support::PgAdminUrl();
        if (!admin) GTEST_SKIP() << test_support::kPgSkipReason;
        db_ = std::make_unique<test_support::PgTestDatabase>(*admin);
        test_support::PgTestDatabase::Exec(db_->url(), "CREATE TABLE t (id integer PRIMARY KEY, a text);"
                                                       "INSERT INTO t VALUES (1, 'one'), (2, 'two')");
        conn_ = std::make_unique<Connection>(db_->url());
    }
    std::unique_ptr<test_support::PgTestDatabase> db_;
    std::unique_ptr<Connection> conn_;
};

TEST_F(PgConnectionTest, AStatementIsPreparedOnceAndReused) {
    for (int i = 1; i <= 2; ++i) {
        EXPECT_EQ(std::string(conn_->Query("SELECT a FROM t WHERE id = $1", {std::to_string(i)}).Text(0, 0)),
                  i == 1 ? "one" : "two");
    }
    EXPECT_EQ(conn_->prepared(), 1u);
    EXPECT_EQ(conn_->Query("SELECT count(*) FROM pg_prepared_statements").Int(0, 0), 2);  // and this one
}

TEST_F(PgConnectionTest, TheCacheIsBounded) {
    for (std::size_t i = 0; i < Connection::kStatementCacheSize + 40; ++i) {
        EXPECT_EQ(conn_->Query("SELECT " + std::to_string(i) + " + $1::int", {"1"}).Int(0, 0),
                  static_cast<std::int64_t>(i) + 1);
    }
    EXPECT_EQ(conn_->prepared(), Connection::kStatementCacheSize);
    EXPECT_EQ(conn_->Query("SELECT count(*) FROM pg_prepared_statements").Int(0, 0),
              static_cast<std::int64_t>(Connection::kStatementCacheSize));
}

TEST_F(PgConnectionTest, AStatementTheSessionLostRunsUnprepared) {
    const std::string sql = "SELECT a FROM t WHERE id = $1";
    EXPECT_EQ(std::string(conn_->Query(sql, {"1"}).Text(0, 0)), "one");
    conn_->Exec("DEALLOCATE ALL");  // as a pooler's DISCARD ALL, or another session behind it
    EXPECT_EQ(std::string(conn_->Query(sql, {"2"}).Text(0, 0)), "two");
    EXPECT_EQ(std::string(conn_->Query(sql, {"1"}).Text(0, 0)), "one");  // prepared again
}

TEST_F(PgConnectionTest, AStatementWhosePlanNoLongerFitsItsTableRunsUnprepared) {
    const std::string sql = "SELECT * FROM t WHERE id = $1";
    EXPECT_EQ(conn_->Query(sql, {"1"}).columns(), 2);
    test_support::PgTestDatabase::Exec(db_->url(), "ALTER TABLE t ADD COLUMN b integer DEFAULT 7");
    Result r = conn_->Query(sql, {"1"});
    EXPECT_EQ(r.columns(), 3);
    EXPECT_EQ(r.Int(0, 2), 7);
}

}  // namespace
}  // namespace syncline::storage::pg
