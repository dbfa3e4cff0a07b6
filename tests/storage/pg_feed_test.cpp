// The PostgreSQL change feed against a real server (SYNCLINE_TEST_PG_URL): changes committed in the reverse order of
// their seqs are each read once and in order, a rolled-back write sends nothing, writes from any client are captured,
// and the feed wakes up after losing its connection (and with it any notification sent meanwhile).
#include <syncline/storage/backend.hpp>
#include <syncline/test_support/pg_sandbox.hpp>

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "test_db.hpp"

namespace syncline::testing {
namespace {

using test_support::PgAdminUrl;
using test_support::PgTestDatabase;

// A plain libpq client, as a Django app or a psql session is to syncline.
class PlainClient {
public:
    explicit PlainClient(const std::string& url) : conn_(PQconnectdb(url.c_str())) {
        if (PQstatus(conn_) != CONNECTION_OK) throw std::runtime_error(PQerrorMessage(conn_));
    }
    ~PlainClient() { PQfinish(conn_); }
    void Exec(const std::string& sql) {
        PGresult* r = PQexec(conn_, sql.c_str());
        const ExecStatusType status = PQresultStatus(r);
        std::string message = PQresultErrorMessage(r);
        PQclear(r);
        if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) throw std::runtime_error(sql + ": " + message);
    }
    // The first value of the first row of a query.
    std::int64_t Int(const std::string& sql) {
        PGresult* r = PQexec(conn_, sql.c_str());
        const bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0;
        std::string message = PQresultErrorMessage(r);
        std::int64_t value = ok ? std::stoll(PQgetvalue(r, 0, 0)) : 0;
        PQclear(r);
        if (!ok) throw std::runtime_error(sql + ": " + message);
        return value;
    }

private:
    PGconn* conn_;
};

class PgFeedTest : public ::testing::Test {
protected:
    void SetUp() override {
        auto admin = PgAdminUrl();
        if (!admin) GTEST_SKIP() << test_support::kPgSkipReason;
        pg_ = std::make_unique<PgTestDatabase>(*admin);
        storage::BackendOptions options;
        options.database = pg_->url();
        db_ = storage::OpenBackend(options, {PostsSchema(), TagsSchema()});
        feed_ = db_->OpenChangeSource();
    }
    // Reads until the feed has handed out every committed change (a transaction running anywhere on the server may
    // hold the feed back for a while: another test's, say), or 30 s pass.
    void CatchUp() {
        const std::vector<std::int64_t> committed = Committed();
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (seen_.size() < committed.size() && std::chrono::steady_clock::now() < deadline) {
            feed_->WaitForChanges(cursor_, std::chrono::milliseconds(100));
            Drain();
        }
    }
    // Reads everything the feed hands out now, checking that each seq comes once and in order.
    void Drain() {
        for (;;) {
            auto events = feed_->ReadAfter(cursor_, 64);
            if (events.empty()) return;
            for (const auto& e : events) {
                EXPECT_GT(e.seq, cursor_) << "out of order or twice";
                cursor_ = e.seq;
                seen_.push_back(e.seq);
            }
        }
    }
    // Every seq in the changes table, in order.
    std::vector<std::int64_t> Committed() {
        std::string text = PgTestDatabase::QueryScalar(
            pg_->url(), "SELECT coalesce(string_agg(seq::text, ',' ORDER BY seq), '') FROM _syncline_changes");
        std::vector<std::int64_t> out;
        std::size_t start = 0;
        while (start < text.size()) {
            std::size_t comma = text.find(',', start);
            if (comma == std::string::npos) comma = text.size();
            out.push_back(std::stoll(text.substr(start, comma - start)));
            start = comma + 1;
        }
        return out;
    }

    std::unique_ptr<PgTestDatabase> pg_;
    std::unique_ptr<storage::Backend> db_;
    std::unique_ptr<ChangeSource> feed_;
    std::int64_t cursor_ = 0;
    std::vector<std::int64_t> seen_;
};

// The hazard: A takes seq n, B takes n+1, B commits, the feed reads, then A commits. A reader of "seq > cursor" would
// read n+1, move its cursor past n and never see A's change. Here the feed holds n+1 back until A has finished.
TEST_F(PgFeedTest, ChangesCommittedInTheReverseOrderOfTheirSeqsAreEachReadOnceInOrder) {
    PlainClient a(pg_->url());
    PlainClient b(pg_->url());
    constexpr int kRounds = 150;
    std::size_t committed = 0;
    for (int i = 0; i < kRounds; ++i) {
        a.Exec("BEGIN");
        const std::int64_t seq_a =
            a.Int("INSERT INTO posts (title) VALUES ('a" + std::to_string(i) + "') RETURNING _syncline_version");
        b.Exec("BEGIN");
        const std::int64_t seq_b =
            b.Int("INSERT INTO posts (title) VALUES ('b" + std::to_string(i) + "') RETURNING _syncline_version");
        ASSERT_LT(seq_a, seq_b);
        b.Exec("COMMIT");
        Drain();  // A is still open: B's change, after A's seq, may not be read yet
        EXPECT_TRUE(seen_.empty() || seen_.back() < seq_a)
            << "round " << i << ": read seq " << seen_.back() << " while seq " << seq_a << " was uncommitted";
        a.Exec(i % 4 == 3 ? "ROLLBACK" : "COMMIT");
        committed += i % 4 == 3 ? 1 : 2;
        if (i % 10 == 9) CatchUp();
    }
    CatchUp();
    EXPECT_EQ(seen_, Committed());
    EXPECT_EQ(seen_.size(), committed);
}

// The same under real concurrency: four writers commit at random moments while the feed reads; every committed change
// is read exactly once, in seq order, and no rolled-back one is.
TEST_F(PgFeedTest, ConcurrentWritersNeverMakeTheFeedSkipOrRepeatAChange) {
    std::atomic<bool> stop{false};
    std::vector<std::thread> writers;
    for (int w = 0; w < 4; ++w) {
        writers.emplace_back([&, w] {
            PlainClient c(pg_->url());
            std::mt19937 rng(static_cast<unsigned>(w));
            for (int i = 0; i < 120 && !stop.load(); ++i) {
                c.Exec("BEGIN");
                c.Exec("INSERT INTO posts (title) VALUES ('w" + std::to_string(w) + "')");
                if (rng() % 2) std::this_thread::sleep_for(std::chrono::microseconds(rng() % 2000));
                c.Exec("UPDATE posts SET likes = " + std::to_string(i) + " WHERE id = (SELECT max(id) FROM posts)");
                c.Exec(rng() % 5 == 0 ? "ROLLBACK" : "COMMIT");
            }
        });
    }
    // Read while they write, then once more after they are done.
    std::thread reader([&] {
        while (!stop.load()) {
            Drain();
            feed_->WaitForChanges(cursor_, std::chrono::milliseconds(20));
        }
    });
    for (auto& t : writers) t.join();
    stop.store(true);
    reader.join();
    CatchUp();
    std::vector<std::int64_t> committed = Committed();
    EXPECT_EQ(seen_, committed);
    EXPECT_GT(committed.size(), 100u);
    EXPECT_TRUE(std::is_sorted(seen_.begin(), seen_.end()));
    EXPECT_EQ(std::set<std::int64_t>(seen_.begin(), seen_.end()).size(), seen_.size());
}

// A transaction left open in another database of the same server (an analytics job, say) does not hold this
// database's changes back; one open in this database does, until it ends.
TEST_F(PgFeedTest, OnlyThisDatabasesRunningTransactionsHoldChangesBack) {
    PgTestDatabase other(pg_->admin_url());
    PgTestDatabase::Exec(other.url(), "CREATE TABLE t (x int)");
    PlainClient elsewhere(other.url());
    elsewhere.Exec("BEGIN; INSERT INTO t VALUES (1)");
    PlainClient here(pg_->url());
    here.Exec("INSERT INTO posts (title) VALUES ('one')");
    EXPECT_TRUE(feed_->WaitForChanges(0, std::chrono::seconds(10)));
    EXPECT_EQ(feed_->ReadAfter(0, 10).size(), 1u);
    PlainClient idle(pg_->url());
    idle.Exec("BEGIN; INSERT INTO tags (slug, label) VALUES ('t', 'T')");  // holds a seq, and its transaction id
    here.Exec("INSERT INTO posts (title) VALUES ('two')");
    EXPECT_FALSE(feed_->WaitForChanges(1, std::chrono::milliseconds(300)));
    idle.Exec("COMMIT");
    elsewhere.Exec("COMMIT");
    ASSERT_TRUE(feed_->WaitForChanges(1, std::chrono::seconds(10)));
    EXPECT_EQ(feed_->ReadAfter(1, 10).size(), 2u);
}

TEST_F(PgFeedTest, ARolledBackWriteSendsNothingAndAnyClientsWriteIsCaptured) {
    PlainClient psql(pg_->url());
    psql.Exec("BEGIN; INSERT INTO posts (title) VALUES ('never'); ROLLBACK");
    psql.Exec("INSERT INTO posts (title, likes) VALUES ('from psql', 3)");
    ASSERT_TRUE(feed_->WaitForChanges(0, std::chrono::seconds(10)));
    auto events = feed_->ReadAfter(0, 10);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].table, "posts");
    EXPECT_EQ(events[0].op, ChangeOp::kInsert);
    ASSERT_TRUE(events[0].row.has_value());
    EXPECT_EQ(events[0].row->at(1).AsText(), "from psql");
    EXPECT_EQ(db_->RowVersion("posts", events[0].pk), events[0].seq);
    // An update and a delete carry the row as it was.
    psql.Exec("UPDATE posts SET title = 'edited' WHERE id = " + std::to_string(events[0].pk.AsInteger()));
    psql.Exec("DELETE FROM posts");
    ASSERT_TRUE(feed_->WaitForChanges(events[0].seq, std::chrono::seconds(10)));
    auto more = feed_->ReadAfter(events[0].seq, 10);
    ASSERT_EQ(more.size(), 2u);
    EXPECT_EQ(more[0].op, ChangeOp::kUpdate);
    ASSERT_TRUE(more[0].old_json.has_value());
    EXPECT_NE(more[0].old_json->find("from psql"), std::string::npos);
    EXPECT_EQ(more[1].op, ChangeOp::kDelete);
    EXPECT_NE(more[1].old_json->find("edited"), std::string::npos);
    EXPECT_EQ(db_->RowVersion("posts", events[0].pk), more[1].seq);
}

// TRUNCATE fires no row trigger; its statement trigger records a delete of every row, with the row as it was, so
// subscribers see each row go and a resumed client learns of it (the tombstones keep the versions).
TEST_F(PgFeedTest, ATruncateIsCapturedAsADeleteOfEveryRow) {
    PlainClient psql(pg_->url());
    psql.Exec("INSERT INTO posts (title) VALUES ('a'), ('b'), ('c')");
    psql.Exec("TRUNCATE posts");
    CatchUp();
    ASSERT_EQ(seen_.size(), 6u);
    auto events = feed_->ReadAfter(seen_[2], 10);
    ASSERT_EQ(events.size(), 3u);
    std::set<std::string> titles;
    for (const auto& e : events) {
        EXPECT_EQ(e.table, "posts");
        EXPECT_EQ(e.op, ChangeOp::kDelete);
        EXPECT_FALSE(e.row.has_value());
        ASSERT_TRUE(e.old_json.has_value());
        titles.insert(*e.old_json);
        EXPECT_EQ(db_->RowVersion("posts", e.pk), e.seq);
        auto last = db_->LastChange("posts", e.pk);
        ASSERT_TRUE(last);
        EXPECT_TRUE(last->deleted);
    }
    EXPECT_EQ(titles.size(), 3u);
    EXPECT_EQ(db_->Count("posts", {}), 0);
    // A truncate that rolls back records nothing; one of an empty table records nothing either.
    psql.Exec("INSERT INTO posts (title) VALUES ('d')");
    psql.Exec("BEGIN; TRUNCATE posts; ROLLBACK");
    psql.Exec("DELETE FROM posts");
    psql.Exec("TRUNCATE posts");
    CatchUp();
    EXPECT_EQ(seen_.size(), 8u);  // the insert of 'd' and its delete
}

// Every connection to the database is killed (the feed's, taking any notification with it); the next change is still
// seen, and the store's own reads go on.
TEST_F(PgFeedTest, TheFeedSeesChangesAfterItsConnectionWasKilled) {
    EXPECT_FALSE(feed_->WaitForChanges(0, std::chrono::milliseconds(50)));
    PgTestDatabase::Exec(pg_->admin_url(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" +
                                               pg_->name() + "' AND pid <> pg_backend_pid()");
    PlainClient psql(pg_->url());
    psql.Exec("INSERT INTO posts (title) VALUES ('after the kill')");
    bool woke = false;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!woke && std::chrono::steady_clock::now() < deadline) {
        try {
            woke = feed_->WaitForChanges(0, std::chrono::seconds(2));
        } catch (const StoreError& e) {
            EXPECT_EQ(e.kind(), StoreErrc::kUnavailable) << e.what();  // the broken connection, once
        }
    }
    EXPECT_TRUE(woke);
    EXPECT_EQ(feed_->ReadAfter(0, 10).size(), 1u);
    EXPECT_EQ(db_->Count("posts", {}), 1);
}

}  // namespace
}  // namespace syncline::testing
