#pragma once
/// \file
/// The set-up the in-process integration tests share: a syncline::transport::Server in a temporary directory, built from a JSON
/// config or from C++, clients connected to it, and waits (with a deadline, never a sleep) until its relay has
/// published the changes a test made before subscribing.
///
/// Threads: the fixture is used from the test's thread, as GoogleTest runs it. WaitRelayed only reads
/// Server::relayed_seq and may be called from any thread (a custom action on the server's executor does).

#include <syncline/test_support/engines.hpp>
#include <syncline/test_support/sandbox.hpp>
#include <syncline/test_support/ws_client.hpp>
#include <syncline/transport/server.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace syncline::test_support {

/// How long the fixture's waits wait (generous: a loaded 2-core machine, sanitizers).
inline constexpr std::chrono::seconds kServerWait{10};

/// transport::ServerOptions for a test server: listening on a free loopback port (0), `workers` network threads, the database
/// `database` inside `dir`. Everything else keeps its default.
transport::ServerOptions TestServerOptions(const TempDir& dir, const std::string& database, unsigned workers);

/// Waits until `server`'s relay has published every change up to `seq` (Server::relayed_seq), so that a later
/// subscription is not pushed them. Returns false if it has not after `timeout`.
bool WaitRelayed(const transport::Server& server, std::int64_t seq, std::chrono::milliseconds timeout = kServerWait);

/// Opens ws://127.0.0.1:`port``path`; on failure adds a non-fatal test failure naming the path, the error and the
/// HTTP status, and returns null.
std::unique_ptr<WsClient> ConnectOrFail(std::uint16_t port, const std::string& path, const Headers& headers = {});

/// A GoogleTest fixture holding one in-process server. Start it with StartFromConfig, or BuildFromConfig + Route +
/// server_->Start(), or assign server_ a server built from C++ and Start it. The server is destroyed (stopped) after
/// the derived fixture's members, then the directory is removed.
class ServerTest : public ::testing::Test {
protected:
    /// Serves from a database of `engine` (call it first in SetUp): a config's "database" is then replaced by a fresh
    /// PostgreSQL database for kPostgres (kept as the config names it for kSqlite). False when the engine cannot run
    /// here (PostgreSQL without SYNCLINE_TEST_PG_URL): skip the test then, with kPgSkipReason.
    bool UseEngine(Engine engine);
    /// Runs SQL on the running server's database as another client would: the sqlite3 shell on its file, or a plain
    /// PostgreSQL connection. Throws std::runtime_error when it fails.
    void ExecOutside(const std::string& sql) const;
    /// Builds server_ from a JSON config (relative database paths resolve inside dir_) without starting it, for tests
    /// that add C++ routes first. Throws on a bad config, as config::BuildServer does.
    void BuildFromConfig(const std::string& config_json);
    /// BuildFromConfig, then Start.
    void StartFromConfig(const std::string& config_json);

    /// Opens a websocket on server_ at `path` (with its query string); the result says why it did not open.
    ConnectResult Try(const std::string& path, const Headers& headers = {}) const;
    /// Opens a websocket on server_ at `path`; a non-fatal failure and null if it does not open. "/ws/posts/" is the
    /// route most of the tests' configs serve.
    std::unique_ptr<WsClient> Connect(const std::string& path = "/ws/posts/", const Headers& headers = {}) const;
    /// WaitRelayed on server_.
    bool WaitRelayed(std::int64_t seq, std::chrono::milliseconds timeout = kServerWait) const;

    TempDir dir_;
    std::unique_ptr<EngineDatabase> engine_db_;  // outlives server_
    std::unique_ptr<transport::Server> server_;
};

}  // namespace syncline::test_support
