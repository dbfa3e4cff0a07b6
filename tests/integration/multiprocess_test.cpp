// Several `syncline serve` processes sharing one database (an SQLite file or PostgreSQL) and one Redis
// (docs/protocol.md §6 "every committed change is pushed, whoever made it", on whichever process the client is
// connected to), a Redis outage, and the death of the process holding the relay lease.

#include <syncline/storage/database.hpp>
#include <syncline/test_support/engines.hpp>
#include <syncline/test_support/serve_process.hpp>
#include <syncline/test_support/server_fixture.hpp>
#include <syncline/test_support/ws_client.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <map>
#include <thread>

#include "../storage/test_db.hpp"
#include "own_servers.hpp"

namespace syncline {
namespace {

using test_support::OwnPostgres;
using test_support::OwnRedis;
using test_support::WsClient;

// The same schema as syncline_test_writer's (tests/storage/test_db.hpp), so every process agrees on the tables.
constexpr const char* kModels = R"("models": {
  "posts": {"fields": {
    "id": {"type": "integer", "primary_key": true}, "title": {"type": "text", "max_length": 100},
    "body": {"type": "text", "blank": true, "default": ""},
    "author": {"type": "text", "max_length": 50, "blank": true, "default": ""},
    "likes": {"type": "integer", "null": true}, "public": {"type": "boolean", "default": false}}},
  "tags": {"fields": {"slug": {"type": "text", "primary_key": true}, "label": {"type": "text", "unique": true}}}})";

std::string RedisUrlFromEnv() {
    const char* url = std::getenv("SYNCLINE_TEST_REDIS_URL");
    return url ? url : "";
}

struct Push {
    std::string request_id;
    std::string action;
    std::int64_t version = -1;
    std::string title;
};

std::optional<Push> NextPush(WsClient& ws, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    auto text = ws.Receive(timeout);
    if (!text) return std::nullopt;
    rapidjson::Document d;
    d.Parse(text->c_str());
    Push p;
    if (d["request_id"].IsString()) p.request_id = d["request_id"].GetString();
    if (d["action"].IsString()) p.action = d["action"].GetString();
    if (d.HasMember("version")) p.version = d["version"].GetInt64();
    if (d["data"].IsObject() && d["data"].HasMember("title")) p.title = d["data"]["title"].GetString();
    return p;
}

// Processes serving one database: `database` is "shared.db" in `dir` (SQLite) or a postgresql:// URL.
class Cluster {
public:
    Cluster(const testing::TempDir& dir, const std::string& database, const std::string& redis_url, int processes)
        : dir_(dir) {
        config_ =
            test_support::WriteConfig(dir, R"({"database": ")" + database + R"(", "workers": 2, "bus": {"redis": ")" +
                                               redis_url + R"("}, )" + kModels + R"(, "routes": {"/ws/posts/": {
                "model": "posts", "mixins": ["list", "create", "patch", "observe_instance"]}}})");
        for (int i = 0; i < processes; ++i) Spawn();
    }
    void Spawn() {
        servers.push_back(std::make_unique<test_support::ServeProcess>(
            config_, dir_.File("server-" + std::to_string(servers.size() + 1) + ".log")));
        ports.push_back(servers.back()->port());
        if (!servers.back()->WaitHealthy()) ADD_FAILURE() << "server did not start: " << servers.back()->Output();
    }
    std::unique_ptr<WsClient> Connect(std::size_t server) {
        return test_support::ConnectOrFail(ports.at(server), "/ws/posts/");
    }
    std::vector<std::uint16_t> ports;
    std::vector<std::unique_ptr<test_support::ServeProcess>> servers;

private:
    const testing::TempDir& dir_;
    std::string config_;
};

// Every test runs on both engines: processes sharing an SQLite file, or a PostgreSQL database.
class MultiProcessTest : public ::testing::TestWithParam<test_support::Engine> {
protected:
    void SetUp() override {
        db_ = std::make_unique<test_support::EngineDatabase>(GetParam(), dir_, "shared.db");
        if (!db_->available()) GTEST_SKIP() << test_support::kPgSkipReason;
    }
    testing::TempDir dir_;
    std::unique_ptr<test_support::EngineDatabase> db_;
};

TEST_P(MultiProcessTest, EveryWriterReachesEverySubscriberOnEveryProcessExactlyOnce) {
    std::string redis = RedisUrlFromEnv();
    if (redis.empty()) GTEST_SKIP() << "SYNCLINE_TEST_REDIS_URL is not set (scripts/test.sh sets it)";
    Cluster cluster(dir_, db_->database(), redis, 2);
    auto writer = cluster.Connect(0);
    auto created = writer->Request(R"({"action": "create", "request_id": 1, "data": {"title": "start"}})");
    ASSERT_TRUE(created);
    std::vector<std::unique_ptr<WsClient>> subscribers;
    for (std::size_t server : {0, 0, 1, 1}) {
        subscribers.push_back(cluster.Connect(server));
        auto reply = subscribers.back()->Request(R"({"action": "subscribe_instance", "pk": 1, "request_id": "s"})");
        ASSERT_TRUE(reply && reply->find("\"response_status\":201") != std::string::npos) << reply.value_or("none");
    }
    std::vector<std::int64_t> last(subscribers.size(), 0);
    auto expect_everyone_gets = [&](const std::string& title, const char* writer_kind) {
        for (std::size_t i = 0; i < subscribers.size(); ++i) {
            auto push = NextPush(*subscribers[i]);
            // The row's creation may still have been in flight when the socket subscribed: skip that state.
            while (push && push->title == "start") push = NextPush(*subscribers[i]);
            ASSERT_TRUE(push) << writer_kind << ": subscriber " << i << " got nothing";
            EXPECT_EQ(push->action, "update");
            EXPECT_EQ(push->request_id, "s");
            EXPECT_EQ(push->title, title) << writer_kind << ", subscriber " << i;
            EXPECT_GT(push->version, last[i]) << "versions must increase";
            last[i] = push->version;
        }
    };
    // 1. an action on process A
    ASSERT_TRUE(writer->Request(R"({"action": "patch", "pk": 1, "data": {"title": "by action"}})"));
    expect_everyone_gets("by action", "action");
    // 2. a plain client: the sqlite3 shell on the file, or a libpq connection as psql or a Django app is
    db_->ExecOutside("UPDATE posts SET title = 'by shell' WHERE id = 1;");
    expect_everyone_gets("by shell", "plain SQL client");
    // 2b. psql, PostgreSQL's own shell (the sqlite3 shell above is SQLite's)
    if (GetParam() == test_support::Engine::kPostgres) {
        const char* bin = std::getenv("SYNCLINE_TEST_PG_BIN");
        const std::string psql = bin ? std::string(bin) + "/psql" : "psql";
        ASSERT_EQ(testing::Run(psql + " -X -q -v ON_ERROR_STOP=1 '" + db_->database() +
                               "' -c \"UPDATE posts SET title = 'by psql' WHERE id = 1\""),
                  0);
        expect_everyone_gets("by psql", "psql");
    }
    // 3. a third process using the C++ API
    ASSERT_EQ(testing::Run(testing::BinDir() + "/syncline_test_writer '" + db_->database() + "' patch 1 'by process'"),
              0);
    expect_everyone_gets("by process", "C++ API process");
    // 4. a plain SQL client writing in a loop, one transaction per statement, as fast as it goes. A socket may get
    // fewer frames than writes (queued pushes of one row coalesce, latest wins), but never one twice, never one out
    // of order, and always the last.
    constexpr int kLoop = 40;
    for (int n = 0; n < kLoop; ++n) {
        db_->ExecOutside("UPDATE posts SET title = 'loop-" + std::to_string(n) + "' WHERE id = 1;");
    }
    for (std::size_t i = 0; i < subscribers.size(); ++i) {
        int previous = -1;
        int frames = 0;
        while (previous != kLoop - 1) {
            auto push = NextPush(*subscribers[i]);
            ASSERT_TRUE(push) << "subscriber " << i << " stopped after loop-" << previous;
            ASSERT_EQ(push->title.rfind("loop-", 0), 0u) << "subscriber " << i << ": " << push->title;
            const int n = std::stoi(push->title.substr(5));
            EXPECT_GT(n, previous) << "subscriber " << i << ": a write repeated or out of order";
            EXPECT_GT(push->version, last[i]) << "versions must increase";
            previous = n;
            last[i] = push->version;
            ++frames;
        }
        RecordProperty("loop_frames_subscriber_" + std::to_string(i), frames);
    }
    // Exactly once: after a last write, the next frame on every socket is that write's push, nothing in between.
    ASSERT_TRUE(writer->Request(R"({"action": "patch", "pk": 1, "data": {"title": "last"}})"));
    expect_everyone_gets("last", "action");
}

TEST_P(MultiProcessTest, RedisKilledAndRestartedWhileChangesKeepComing) {
    if (OwnRedis::RedisServer().empty()) GTEST_SKIP() << "redis-server is not installed";
    OwnRedis redis(dir_, test_support::FreePort());
    Cluster cluster(dir_, db_->database(), redis.url(), 2);
    auto setup = cluster.Connect(0);
    for (int i = 0; i < 5; ++i) {
        ASSERT_TRUE(setup->Request(R"({"action": "create", "data": {"title": "row"}})"));
    }
    std::vector<std::unique_ptr<WsClient>> subscribers;
    for (std::size_t server : {0, 1}) {
        subscribers.push_back(cluster.Connect(server));
        for (int pk = 1; pk <= 5; ++pk) {
            ASSERT_TRUE(subscribers.back()->Request(R"({"action": "subscribe_instance", "request_id": "r", "pk": )" +
                                                    std::to_string(pk) + "}"));
        }
    }
    // A writer in this process (a third process on the database) keeps changing every row while Redis dies and
    // returns.
    auto db = testing::OpenBlogBackend(db_->database());
    std::atomic<bool> writing{true};
    std::atomic<int> writes{0};
    std::thread writer([&] {
        while (writing.load()) {
            int n = writes++;
            db->Patch("posts", Value(1 + n % 5), {{"title", "w" + std::to_string(n)}});
            std::this_thread::sleep_for(std::chrono::milliseconds(2));  // a steady stream of changes, not a sync
        }
    });
    auto wait_writes = [&](int more) {
        int target = writes.load() + more;
        while (writes.load() < target) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    };
    wait_writes(50);
    redis.Kill();
    wait_writes(200);  // changes committed while Redis is gone
    redis.Start();
    wait_writes(50);
    writing = false;
    writer.join();
    // The final state of each row, then one last marked write per row after everything settled.
    std::map<std::string, std::string> final_title;
    for (int pk = 1; pk <= 5; ++pk) {
        std::string title = "final-" + std::to_string(pk);
        db->Patch("posts", Value(pk), {{"title", title}});
        final_title[std::to_string(pk)] = title;
    }
    for (std::size_t s = 0; s < subscribers.size(); ++s) {
        std::map<std::string, std::string> latest;
        std::map<std::string, std::int64_t> versions;
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (latest != final_title && std::chrono::steady_clock::now() < deadline) {
            auto text = subscribers[s]->Receive(std::chrono::seconds(1));
            if (!text) continue;
            rapidjson::Document d;
            d.Parse(text->c_str());
            if (!d.IsObject() || !d.HasMember("version")) continue;
            std::string pk = std::to_string(d["data"]["id"].GetInt());
            std::int64_t version = d["version"].GetInt64();
            EXPECT_GT(version, versions[pk]) << "row " << pk << " went back or repeated a version";
            versions[pk] = version;
            latest[pk] = d["data"]["title"].GetString();
        }
        EXPECT_EQ(latest, final_title) << "subscriber " << s << " did not converge";
    }
    for (auto& server : cluster.servers) EXPECT_FALSE(server->Wait(std::chrono::milliseconds(0))) << "a server died";
}

TEST_P(MultiProcessTest, RelayLeaseMovesWhenItsHolderDies) {
    std::string redis = RedisUrlFromEnv();
    if (redis.empty()) GTEST_SKIP() << "SYNCLINE_TEST_REDIS_URL is not set (scripts/test.sh sets it)";
    Cluster cluster(dir_, db_->database(), redis, 2);
    auto setup = cluster.Connect(1);
    ASSERT_TRUE(setup->Request(R"({"action": "create", "data": {"title": "row"}})"));
    setup.reset();
    // Whoever holds the lease, kill process 0 and keep a subscriber on process 1.
    auto subscriber = cluster.Connect(1);
    ASSERT_TRUE(subscriber->Request(R"({"action": "subscribe_instance", "request_id": "r", "pk": 1})"));
    cluster.servers[0]->Signal(SIGKILL);
    cluster.servers[0]->Wait(std::chrono::seconds(10));
    auto db = testing::OpenBlogBackend(db_->database());
    db->Patch("posts", Value(1), {{"title", "after the death"}});
    auto push = NextPush(*subscriber, std::chrono::seconds(15));
    while (push && push->title == "row") push = NextPush(*subscriber, std::chrono::seconds(15));  // its creation
    ASSERT_TRUE(push) << cluster.servers[1]->Output();
    EXPECT_EQ(push->title, "after the death");
    // And exactly once: the next change is the next frame.
    db->Patch("posts", Value(1), {{"title", "next"}});
    auto next = NextPush(*subscriber, std::chrono::seconds(15));
    ASSERT_TRUE(next);
    EXPECT_EQ(next->title, "next");
    EXPECT_GT(next->version, push->version);
}

// Two nodes on one PostgreSQL and one Redis while PostgreSQL restarts under load (issue 12, items 5 and 6): requests on
// either node answer 503 during the outage, no socket closes, both nodes reconnect by themselves (the relay lease is
// taken again), and the subscribers on both end at the final state with versions that never go back.
TEST(MultiNodePostgresTest, BothNodesRideOutARestartOfPostgres) {
    if (!OwnPostgres::Available()) GTEST_SKIP() << test_support::kPgSkipReason;
    std::string redis = RedisUrlFromEnv();
    if (redis.empty()) GTEST_SKIP() << "SYNCLINE_TEST_REDIS_URL is not set (scripts/test.sh sets it)";
    testing::TempDir dir;
    OwnPostgres pg;
    ASSERT_TRUE(pg.Start());
    Cluster cluster(dir, pg.url(), redis, 2);
    auto status_of = test_support::ResponseStatus;
    auto writer = cluster.Connect(0);
    auto reader = cluster.Connect(1);
    ASSERT_EQ(status_of(writer->Request(R"({"action": "create", "request_id": 1, "data": {"title": "w0"}})")), 201);
    std::vector<std::unique_ptr<WsClient>> subscribers;
    for (std::size_t server : {0, 1}) {
        subscribers.push_back(cluster.Connect(server));
        ASSERT_EQ(
            status_of(subscribers.back()->Request(R"({"action": "subscribe_instance", "request_id": "s", "pk": 1})")),
            201);
    }
    test_support::PatchLoad load(*writer);
    auto wait_for = test_support::PatchLoad::WaitFor;
    ASSERT_TRUE(wait_for(load.ok, 20));
    pg.Stop();
    EXPECT_TRUE(wait_for(load.unavailable, 5)) << "no 503 on node A while the database was down";
    EXPECT_EQ(status_of(reader->Request(R"({"action": "list", "request_id": 3})")), 503) << "node B";
    ASSERT_TRUE(pg.Start());
    EXPECT_TRUE(wait_for(load.ok, load.ok.load() + 20)) << "writes did not recover";
    load.Stop();
    EXPECT_EQ(load.other.load(), 0) << "a reply that is neither 200 nor 503: " << load.first_other();
    EXPECT_EQ(status_of(reader->Request(R"({"action": "list", "request_id": 4})")), 200) << "node B did not recover";
    ASSERT_EQ(
        status_of(writer->Request(R"({"action": "patch", "request_id": 5, "pk": 1, "data": {"title": "final"}})")),
        200);
    for (std::size_t s = 0; s < subscribers.size(); ++s) {
        std::string title;
        std::int64_t version = 0;
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (title != "final" && std::chrono::steady_clock::now() < deadline) {
            auto push = NextPush(*subscribers[s], std::chrono::seconds(1));
            if (!push || push->version < 0) continue;
            EXPECT_GT(push->version, version) << "subscriber " << s << " went back or repeated a version";
            version = push->version;
            title = push->title;
        }
        EXPECT_EQ(title, "final") << "subscriber " << s << " did not converge";
        EXPECT_TRUE(subscribers[s]->is_open());
    }
    for (auto& server : cluster.servers) EXPECT_FALSE(server->Wait(std::chrono::milliseconds(0))) << "a server died";
}

}  // namespace
INSTANTIATE_TEST_SUITE_P(Engines, MultiProcessTest, test_support::AllEngines(), test_support::EngineParamName);

}  // namespace syncline
