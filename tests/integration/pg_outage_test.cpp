// PostgreSQL restarted under load (issue 12, item 5): while the database is down, requests answer 503 "The database
// is unavailable. Try again." and every socket stays open; the server reconnects by itself, and a subscriber ends at
// the final state. The database is a PostgreSQL of this test's own (scripts/pg-own-server.sh), stopped and started
// again on the same folder and port.
#include <syncline/test_support/child_process.hpp>
#include <syncline/test_support/pg_sandbox.hpp>
#include <syncline/test_support/server_fixture.hpp>
#include <syncline/test_support/ws_client.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <thread>

#include "own_servers.hpp"

namespace syncline {
namespace {

using test_support::OwnPostgres;
using test_support::PgTestDatabase;
using test_support::WsClient;

using test_support::PatchLoad;
using test_support::ResponseStatus;

class PgOutageTest : public test_support::ServerTest {
protected:
    // Polls GET /readyz (with a deadline) until it answers `status`; returns the last answer.
    test_support::HttpResponse WaitReadyz(int status) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
        test_support::HttpResponse response = test_support::HttpGet("127.0.0.1", server_->port(), "/readyz");
        while (response.status != status && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polls an HTTP endpoint
            response = test_support::HttpGet("127.0.0.1", server_->port(), "/readyz");
        }
        return response;
    }
};

TEST_F(PgOutageTest, RequestsAnswer503WhileTheDatabaseIsDownAndEverythingRecovers) {
    if (!OwnPostgres::Available()) GTEST_SKIP() << test_support::kPgSkipReason;
    OwnPostgres pg;
    ASSERT_TRUE(pg.Start());
    StartFromConfig(R"({"database": ")" + pg.url() + R"(", "listen": {"port": 0}, "workers": 2,
      "models": {"posts": {"fields": {"id": {"type": "integer", "primary_key": true},
                                      "title": {"type": "text", "max_length": 100}}}},
      "routes": {"/ws/posts/": {"model": "posts",
                                "mixins": ["list", "retrieve", "create", "patch", "observe_instance"]}}})");
    auto writer = Connect();
    auto reader = Connect();
    auto subscriber = Connect();
    ASSERT_EQ(ResponseStatus(writer->Request(R"({"action": "create", "request_id": 1, "data": {"title": "w0"}})")),
              201);
    ASSERT_EQ(ResponseStatus(subscriber->Request(R"({"action": "subscribe_instance", "request_id": "s", "pk": 1})")),
              201);

    // Writes keep coming, before, during and after the outage.
    PatchLoad load(*writer);
    ASSERT_TRUE(PatchLoad::WaitFor(load.ok, 20));
    pg.Stop();
    EXPECT_TRUE(PatchLoad::WaitFor(load.unavailable, 10)) << "no 503 while the database was down";
    // A read answers 503 too, and the sockets stay open.
    auto read = reader->Request(R"({"action": "retrieve", "request_id": 3, "pk": 1})");
    EXPECT_EQ(ResponseStatus(read), 503) << read.value_or("no reply");
    EXPECT_TRUE(writer->is_open());
    EXPECT_TRUE(subscriber->is_open());
    // Not ready, with the reason (the relay cannot read the database), while still alive.
    EXPECT_EQ(WaitReadyz(503).status, 503);
    EXPECT_THAT(WaitReadyz(503).body, ::testing::HasSubstr("database unavailable: "));
    EXPECT_EQ(test_support::HttpGet("127.0.0.1", server_->port(), "/healthz").status, 200);
    ASSERT_TRUE(pg.Start());
    EXPECT_TRUE(PatchLoad::WaitFor(load.ok, load.ok.load() + 20)) << "writes did not recover";
    EXPECT_EQ(WaitReadyz(200).status, 200) << "still not ready after the database came back";
    load.Stop();
    EXPECT_EQ(load.other.load(), 0) << "a reply that is neither 200 nor 503: " << load.first_other();
    // A last write after recovery; the subscriber ends at it, with versions that never go back.
    ASSERT_EQ(
        ResponseStatus(writer->Request(R"({"action": "patch", "request_id": 4, "pk": 1, "data": {"title": "final"}})")),
        200);
    std::string last_title;
    std::int64_t last_version = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (last_title != "final" && std::chrono::steady_clock::now() < deadline) {
        auto text = subscriber->Receive(std::chrono::seconds(1));
        if (!text) continue;
        rapidjson::Document d;
        d.Parse(text->c_str());
        if (!d.IsObject() || !d.HasMember("version")) continue;
        EXPECT_GT(d["version"].GetInt64(), last_version) << *text;
        last_version = d["version"].GetInt64();
        last_title = d["data"]["title"].GetString();
    }
    EXPECT_EQ(last_title, "final");
    EXPECT_TRUE(subscriber->is_open());
}

}  // namespace
}  // namespace syncline
