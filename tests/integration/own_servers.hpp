#pragma once
/// \file
/// Servers of one test's own, to stop and start again on the same port: a PostgreSQL 15 (scripts/pg-own-server.sh)
/// and a redis-server. The suite-wide ones scripts/test.sh starts are shared by every test and never restarted.
/// Threads: one test thread drives each object.

#include <syncline/test_support/child_process.hpp>
#include <syncline/test_support/pg_sandbox.hpp>
#include <syncline/test_support/sandbox.hpp>
#include <syncline/test_support/server_fixture.hpp>

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

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

}  // namespace syncline::test_support
