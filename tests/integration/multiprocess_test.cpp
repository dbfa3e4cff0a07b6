// Several `syncline serve` processes sharing one database file and one Redis (PROTOCOL.md §6 "every committed change
// is pushed, whoever made it", on whichever process the client is connected to), a Redis outage, and the death of
// the process holding the relay lease.

#include <syncline/storage/database.hpp>
#include <syncline/test_support/engines.hpp>
#include <syncline/test_support/serve_process.hpp>
#include <syncline/test_support/server_fixture.hpp>
#include <syncline/test_support/ws_client.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <cstdlib>
#include <fstream>
#include <map>

#include "../storage/test_db.hpp"

namespace syncline {
namespace {

using test_support::ChildProcess;
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
    // 3. a third process using the C++ API
    ASSERT_EQ(testing::Run(testing::BinDir() + "/syncline_test_writer '" + db_->database() + "' patch 1 'by process'"),
              0);
    expect_everyone_gets("by process", "C++ API process");
    // Exactly once: after a last write, the next frame on every socket is that write's push, nothing in between.
    ASSERT_TRUE(writer->Request(R"({"action": "patch", "pk": 1, "data": {"title": "last"}})"));
    expect_everyone_gets("last", "action");
}

// Starts a redis-server of the test's own on a fixed port (restartable on the same port).
class OwnRedis {
public:
    OwnRedis(const testing::TempDir& dir, std::uint16_t port) : dir_(dir), port_(port) { Start(); }
    void Start() {
        process_ = std::make_unique<ChildProcess>(
            std::vector<std::string>{RedisServer(), "--port", std::to_string(port_), "--bind", "127.0.0.1", "--save",
                                     "", "--appendonly", "no"},
            dir_.File("redis-" + std::to_string(++starts_) + ".log"));
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (testing::Run("redis-cli -p " + std::to_string(port_) + " ping >/dev/null 2>&1") != 0) {
            if (std::chrono::steady_clock::now() > deadline) {
                ADD_FAILURE() << "redis did not start";
                return;
            }
        }
    }
    void Kill() {
        process_->Signal(SIGKILL);
        process_->Wait(std::chrono::seconds(10));
    }
    std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_) + "/0"; }
    static std::string RedisServer() {
        for (const char* candidate : {"/usr/bin/redis-server", "/usr/local/bin/redis-server"}) {
            if (std::ifstream(candidate).good()) return candidate;
        }
        return "";
    }

private:
    const testing::TempDir& dir_;
    std::uint16_t port_;
    int starts_ = 0;
    std::unique_ptr<ChildProcess> process_;
};

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

}  // namespace
INSTANTIATE_TEST_SUITE_P(Engines, MultiProcessTest, test_support::AllEngines(), test_support::EngineParamName);

}  // namespace syncline
