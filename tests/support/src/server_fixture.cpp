// The in-process server fixture of the integration tests (server_fixture.hpp).
#include <syncline/test_support/server_fixture.hpp>

#include <syncline/config/config.hpp>

#include <thread>

namespace syncline::test_support {

transport::ServerOptions TestServerOptions(const TempDir& dir, const std::string& database, unsigned workers) {
    transport::ServerOptions options;
    options.port = 0;
    options.workers = workers;
    options.database = dir.File(database);
    return options;
}

bool WaitRelayed(const transport::Server& server, std::int64_t seq, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    // The relay publishes from its own thread and offers nothing to wait on: poll, yielding, until the deadline.
    while (server.relayed_seq() < seq && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    return server.relayed_seq() >= seq;
}

std::unique_ptr<WsClient> ConnectOrFail(std::uint16_t port, const std::string& path, const Headers& headers) {
    ConnectResult result = WsClient::Connect("127.0.0.1", port, path, headers);
    EXPECT_TRUE(result) << path << ": " << result.error << " (HTTP " << result.http_status << ")";
    return std::move(result.client);
}

bool ServerTest::UseEngine(Engine engine) {
    engine_db_ = std::make_unique<EngineDatabase>(engine, dir_);
    return engine_db_->available();
}

void ServerTest::ExecOutside(const std::string& sql) const {
    if (engine_db_ && engine_db_->pg()) {
        engine_db_->ExecOutside(sql);
        return;
    }
    SqliteShellExec(server_->database().Identity(), sql);  // an SQLite server's Identity is its file's path
}

void ServerTest::BuildFromConfig(const std::string& config_json) {
    config::Config config = config::ParseConfig(config_json);
    if (engine_db_ && engine_db_->pg()) config.server.database = engine_db_->database();
    server_ = config::BuildServer(config, dir_.File(""));
}

void ServerTest::StartFromConfig(const std::string& config_json) {
    BuildFromConfig(config_json);
    server_->Start();
}

ConnectResult ServerTest::Try(const std::string& path, const Headers& headers) const {
    return WsClient::Connect("127.0.0.1", server_->port(), path, headers);
}

std::unique_ptr<WsClient> ServerTest::Connect(const std::string& path, const Headers& headers) const {
    return ConnectOrFail(server_->port(), path, headers);
}

bool ServerTest::WaitRelayed(std::int64_t seq, std::chrono::milliseconds timeout) const {
    return test_support::WaitRelayed(*server_, seq, timeout);
}

}  // namespace syncline::test_support
