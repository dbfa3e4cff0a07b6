#pragma once
/// \file
/// Outages for the integration tests. Servers of one test's own, to stop and start again on the same port: a
/// PostgreSQL 15 (scripts/pg-own-server.sh) and a redis-server (the suite-wide ones scripts/test.sh starts are shared
/// by every test and never restarted). And PatchLoad, writes that keep coming through a socket while they go down.
/// Threads: one test thread drives each object; PatchLoad's counters may be read from any thread.

#include <syncline/test_support/child_process.hpp>
#include <syncline/test_support/pg_sandbox.hpp>
#include <syncline/test_support/sandbox.hpp>
#include <syncline/test_support/server_fixture.hpp>
#include <syncline/test_support/ws_client.hpp>

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../storage/test_db.hpp"

namespace syncline::test_support {

/// A PostgreSQL of the test's own, in a folder of /tmp (the server's user must reach it: a test's TempDir is
/// private). Superuser `syncline`, the test password of scripts/pg-test-server.sh.
class OwnPostgres {
public:
    OwnPostgres()
        : dir_("/tmp/syncline-pgown-" + std::to_string(getpid()) + "-" + std::to_string(++count_)), port_(FreePort()) {}
    ~OwnPostgres() {
        process_.reset();
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    OwnPostgres(const OwnPostgres&) = delete;
    OwnPostgres& operator=(const OwnPostgres&) = delete;
    /// Whether the tools to run one are there (scripts/test.sh exports SYNCLINE_TEST_PG_BIN).
    static bool Available() { return PgAdminUrl() && std::getenv("SYNCLINE_TEST_PG_BIN") != nullptr; }
    /// Starts it (initialising the folder the first time) and waits, bounded, until it answers.
    bool Start() {
        process_ = std::make_unique<ChildProcess>(
            std::vector<std::string>{"/bin/bash", std::string(SYNCLINE_SOURCE_DIR) + "/scripts/pg-own-server.sh", dir_,
                                     std::to_string(port_)},
            dir_ + ".log");
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (std::chrono::steady_clock::now() < deadline) {
            try {
                PgTestDatabase::QueryScalar(url(), "SELECT 1");
                return true;
            } catch (const std::exception&) {
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
        }
        return false;
    }
    /// A fast shutdown (SIGINT): sessions are ended, the server exits.
    void Stop() {
        process_->Signal(SIGINT);
        process_->Wait(std::chrono::seconds(20));
    }
    std::string url() const {
        return "postgresql://syncline:syncline-test-only@127.0.0.1:" + std::to_string(port_) + "/postgres";
    }

private:
    static inline int count_ = 0;
    std::string dir_;
    std::uint16_t port_;
    std::unique_ptr<ChildProcess> process_;
};

/// A redis-server of the test's own on a fixed port, restartable on the same port.
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
    /// SIGSTOP: Redis keeps its sockets open and answers nothing (a stalled server, not a dead one).
    void Pause() { process_->Signal(SIGSTOP); }
    /// SIGCONT.
    void Resume() { process_->Signal(SIGCONT); }
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

/// A reply's response_status, 0 when there is none (no reply, or not a JSON object with one).
inline int ResponseStatus(const std::optional<std::string>& reply) {
    if (!reply) return 0;
    rapidjson::Document d;
    d.Parse(reply->c_str());
    return d.IsObject() && d.HasMember("response_status") && d["response_status"].IsInt()
               ? d["response_status"].GetInt()
               : 0;
}

/// Patches row 1's title through `client` (w1, w2, ...) on a thread of its own, every 5 ms, until destroyed or
/// Stop(), counting the replies: 200, 503 "The database is unavailable. Try again.", and anything else (the first such
/// reply is kept for the failure message).
class PatchLoad {
public:
    explicit PatchLoad(WsClient& client)
        : thread_([this, &client] {
              for (int i = 1; running_.load(); ++i) {
                  auto reply = client.Request(R"({"action": "patch", "request_id": 2, "pk": 1, "data": {"title": "w)" +
                                              std::to_string(i) + R"("}})");
                  const int status = ResponseStatus(reply);
                  if (status == 200) {
                      ++ok;
                  } else if (status == 503 &&
                             reply->find("The database is unavailable. Try again.") != std::string::npos) {
                      ++unavailable;
                  } else if (other.fetch_add(1) == 0) {
                      first_other_ = reply.value_or("no reply");
                  }
                  std::this_thread::sleep_for(std::chrono::milliseconds(5));  // a steady load, not a synchronisation
              }
          }) {}
    ~PatchLoad() { Stop(); }
    PatchLoad(const PatchLoad&) = delete;
    PatchLoad& operator=(const PatchLoad&) = delete;
    void Stop() {
        running_ = false;
        if (thread_.joinable()) thread_.join();
    }
    /// Waits (up to 30 s) until `counter` reaches `target`; whether it did.
    static bool WaitFor(const std::atomic<int>& counter, int target) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (counter.load() < target && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        return counter.load() >= target;
    }
    /// The first reply that was neither 200 nor the 503 (after Stop()).
    const std::string& first_other() const { return first_other_; }

    std::atomic<int> ok{0};
    std::atomic<int> unavailable{0};
    std::atomic<int> other{0};

private:
    std::atomic<bool> running_{true};
    std::string first_other_;
    std::thread thread_;  // last: starts once everything above is built
};

}  // namespace syncline::test_support
