// Issue 14: the `syncline` binary's command line, run as a child process. `--version`; `check --config` (validates as
// serve does, opens and connects nothing, exit 0 or 2); `--log-level` and SPDLOG_LEVEL (the flag wins); JSON log
// lines (`--log-format json`, config key log_format); secrets from the environment ({"env": "NAME"}); no password in
// any log line. Also the binary's log formatter itself (apps/syncline/log_setup.hpp): redaction and JSON escaping.

#include <syncline/test_support/serve_process.hpp>
#include <syncline/test_support/ws_client.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <sqlite3.h>
#include <spdlog/details/log_msg.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../observer/redis_test_support.hpp"
#include "../storage/test_db.hpp"
#include "log_setup.hpp"

namespace syncline {
namespace {

using test_support::ChildProcess;
using test_support::ServeProcess;
using test_support::WsClient;
using ::testing::HasSubstr;
using ::testing::Not;

// The line every server logs at info when it listens.
constexpr const char* kListening = "websocket server listening on";

constexpr const char* kModelsAndRoutes = R"("models": {"posts": {"fields": {
      "id": {"type": "integer", "primary_key": true}, "title": {"type": "text"}}}},
    "routes": {"/ws/posts/": {"model": "posts", "mixins": ["list", "create"]}})";

// A config of one model and one route; `top` adds top-level keys (each ending with a comma).
std::string WriteCliConfig(const testing::TempDir& dir, const std::string& top, const std::string& name = "c.json") {
    return test_support::WriteConfig(dir, "{" + top + kModelsAndRoutes + "}", name);
}

std::string Binary() { return testing::BinDir() + "/syncline"; }

// Runs the binary to completion (bounded); its exit code and its whole output (stdout and stderr).
struct RunResult {
    int code = -1;
    std::string output;
};
RunResult RunBinary(const testing::TempDir& dir, std::vector<std::string> argv) {
    ChildProcess process(argv, dir.File("run.log"));
    RunResult run;
    auto code = process.Wait(std::chrono::seconds(20));
    EXPECT_TRUE(code) << "did not exit: " << process.Output();
    run.code = code ? *code : -1;
    run.output = process.Output();
    return run;
}

std::vector<std::string> Lines(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

// Polls the child's log (a file, no event to wait on) until it contains `needle` or the deadline passes.
bool WaitForOutput(ChildProcess& process, const std::string& needle) {
    auto deadline = std::chrono::steady_clock::now() + test_support::kServeStartTimeout;
    while (process.Output().find(needle) == std::string::npos) {
        if (std::chrono::steady_clock::now() > deadline || process.Wait(std::chrono::milliseconds(0))) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling a file with a deadline
    }
    return true;
}

// Starts serve with these extra arguments (and `env`, NAME=value entries, through /usr/bin/env), waits until it
// listens and has printed each of `wait_for`, stops it with SIGTERM and returns everything it printed. Fails the test
// if it does not start or stop.
std::string ServeAndStop(const testing::TempDir& dir, const std::string& config, std::vector<std::string> args,
                         std::vector<std::string> env = {}, std::vector<std::string> wait_for = {}) {
    std::vector<std::string> argv = {"/usr/bin/env"};
    argv.insert(argv.end(), env.begin(), env.end());
    argv.insert(argv.end(), {Binary(), "serve", "--config", config, "--port"});
    const std::uint16_t port = test_support::FreePort();
    argv.push_back(std::to_string(port));
    argv.insert(argv.end(), args.begin(), args.end());
    ChildProcess server(argv, dir.File("serve.log"));
    EXPECT_TRUE(test_support::WaitHealthy(port, server)) << server.Output();
    for (const auto& needle : wait_for) EXPECT_TRUE(WaitForOutput(server, needle)) << needle << "\n" << server.Output();
    server.Signal(SIGTERM);
    EXPECT_EQ(server.Wait(std::chrono::seconds(15)), 0) << server.Output();
    return server.Output();
}

TEST(CliTest, VersionPrintsTheProjectVersionAndExitsZero) {
    testing::TempDir dir;
    RunResult run = RunBinary(dir, {Binary(), "--version"});
    EXPECT_EQ(run.code, 0);
    // The version of project(VERSION) in CMakeLists.txt, then the commit when the tree was a git checkout.
    EXPECT_TRUE(std::regex_match(
        run.output, std::regex("syncline " + std::string(SYNCLINE_PROJECT_VERSION) + "( \\(git [0-9a-f]{7,40}\\))?\n")))
        << run.output;
}

TEST(CliTest, CheckAcceptsAConfigWithoutOpeningTheDatabaseOrConnecting) {
    testing::TempDir dir;
    // Redis on a port nothing listens on, with a password: check neither connects nor prints the password.
    std::string config =
        WriteCliConfig(dir, R"("database": "blog.db", "bus": {"redis": "redis://default:pw-c41d@127.0.0.1:1/0"},)");
    RunResult run = RunBinary(dir, {Binary(), "check", "--config", config});
    EXPECT_EQ(run.code, 0) << run.output;
    EXPECT_EQ(run.output,
              "config OK: 1 route, 1 model; listen 127.0.0.1:8000; database SQLite blog.db (not opened); bus "
              "redis://default:***@127.0.0.1:1/0 (not connected)\n");
    EXPECT_FALSE(std::filesystem::exists(dir.File("blog.db")));  // nothing created, not even an empty file
    EXPECT_FALSE(std::filesystem::exists(dir.File("blog.db-wal")));

    // A PostgreSQL URL from the environment, its password hidden; nothing listens there either.
    std::string pg = WriteCliConfig(dir, R"("database": {"env": "SYNCLINE_CLI_DB"},)", "pg.json");
    run = RunBinary(dir, {"/usr/bin/env", "SYNCLINE_CLI_DB=postgresql://app:pg-pw-8d21@127.0.0.1:1/app", Binary(),
                          "check", "--config", pg});
    EXPECT_EQ(run.code, 0) << run.output;
    EXPECT_EQ(run.output,
              "config OK: 1 route, 1 model; listen 127.0.0.1:8000; database PostgreSQL "
              "postgresql://app:***@127.0.0.1:1/app (not opened); bus in-process (not connected)\n");
}

TEST(CliTest, CheckRefusesABadConfigWithServesLineAndExitCode) {
    testing::TempDir dir;
    std::string config = test_support::WriteConfig(
        dir, R"({"database": "blog.db", "models": {"posts": {"fields": {"title": {"type": "text"}}}},
                 "routes": {"/ws/posts/": {"model": "posts", "mixins": ["list", "lst"]}}})");
    RunResult check = RunBinary(dir, {Binary(), "check", "--config", config});
    RunResult serve = RunBinary(dir, {Binary(), "serve", "--config", config});
    EXPECT_EQ(check.code, 2);
    EXPECT_EQ(serve.code, 2);
    EXPECT_EQ(check.output,
              "syncline: config error: routes./ws/posts/.mixins[1]: unknown mixin \"lst\"; valid mixins: list, "
              "retrieve, create, update, patch, delete, observe_instance, observe_list\n");
    EXPECT_EQ(check.output, serve.output);

    // A missing file, and a secret whose variable is unset: the variable is named, exit 2, as serve does.
    RunResult missing = RunBinary(dir, {Binary(), "check", "--config", dir.File("nope.json")});
    EXPECT_EQ(missing.code, 2);
    EXPECT_EQ(missing.output, "syncline: cannot read config " + dir.File("nope.json") + "\n");
    std::string env_config = WriteCliConfig(
        dir, R"("database": "blog.db", "auth": {"jwt": {"secret": {"env": "SYNCLINE_CLI_UNSET"}}},)", "env.json");
    for (const char* command : {"check", "serve"}) {
        RunResult run =
            RunBinary(dir, {"/usr/bin/env", "-u", "SYNCLINE_CLI_UNSET", Binary(), command, "--config", env_config});
        EXPECT_EQ(run.code, 2) << command;
        EXPECT_EQ(run.output,
                  "syncline: config error: auth.jwt.secret: environment variable SYNCLINE_CLI_UNSET is not set\n")
            << command;
    }
    EXPECT_FALSE(std::filesystem::exists(dir.File("blog.db")));
}

TEST(CliTest, ServeReadsATokenFromTheEnvironment) {
    testing::TempDir dir;
    std::string config = WriteCliConfig(dir, R"("database": "env.db", "workers": 2,
        "auth": {"tokens": {"alice": {"token": {"env": "SYNCLINE_CLI_TOKEN"}, "user": "alice"}},
                 "anonymous": "refuse", "invalid_token": "refuse"},)");
    ServeProcess server(config, dir.File("server.log"), {"/usr/bin/env", "SYNCLINE_CLI_TOKEN=tok-env-61f0"});
    ASSERT_TRUE(server.WaitHealthy()) << server.Output();
    // The variable's value is the token; the entry's key is only its name.
    auto alice = WsClient::Connect("127.0.0.1", server.port(), "/ws/posts/?token=tok-env-61f0");
    ASSERT_TRUE(alice) << server.Output();
    rapidjson::Document created;
    created.Parse(
        alice->Request(R"({"action": "create", "request_id": 1, "data": {"title": "t"}})").value_or("{}").c_str());
    EXPECT_EQ(created["response_status"].GetInt(), 201);
    auto by_name = WsClient::Connect("127.0.0.1", server.port(), "/ws/posts/?token=alice");
    EXPECT_FALSE(by_name);
    EXPECT_EQ(by_name.http_status, 401) << by_name.error;
    alice.client.reset();
    server.Signal(SIGTERM);
    EXPECT_EQ(server.Wait(std::chrono::seconds(15)), 0) << server.Output();
    EXPECT_THAT(server.Output(), Not(HasSubstr("tok-env-61f0")));
}

// Whether process `pid` has `path` open (one of /proc/<pid>/fd links to it).
bool HasFileOpen(pid_t pid, const std::string& path) {
    std::error_code ec;
    const auto wanted = std::filesystem::weakly_canonical(path, ec);
    for (const auto& fd : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
        std::error_code link_ec;
        if (std::filesystem::read_symlink(fd.path(), link_ec) == wanted) return true;
    }
    return false;
}

// A SIGTERM that arrives while the server is still starting (here: waiting for another process's write lock on the
// database) is not lost and does not kill it half-started: once it runs, it stops as gracefully as ever, exit 0.
TEST(CliTest, SigtermWhileStartingStopsTheServerGracefullyOnceItRuns) {
    testing::TempDir dir;
    const std::string db = dir.File("locked.db");
    sqlite3* holder = nullptr;
    ASSERT_EQ(sqlite3_open(db.c_str(), &holder), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(holder, "PRAGMA journal_mode=WAL; CREATE TABLE other (x); BEGIN IMMEDIATE;", nullptr,
                           nullptr, nullptr),
              SQLITE_OK);
    std::string config = WriteCliConfig(dir, R"("database": "locked.db", "workers": 2,)");
    ChildProcess server({Binary(), "serve", "--config", config, "--port", std::to_string(test_support::FreePort())},
                        dir.File("serve.log"));
    const auto deadline = std::chrono::steady_clock::now() + test_support::kServeStartTimeout;
    while (!HasFileOpen(server.pid(), db) && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));  // polling /proc; no event to wait on
    }
    ASSERT_TRUE(HasFileOpen(server.pid(), db)) << server.Output();
    server.Signal(SIGTERM);
    // Still starting, still alive: the signal waits for the server to run (the default action would have killed it).
    EXPECT_FALSE(server.Wait(std::chrono::milliseconds(300))) << server.Output();
    EXPECT_THAT(server.Output(), Not(HasSubstr(kListening)));
    ASSERT_EQ(sqlite3_exec(holder, "COMMIT;", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(holder);
    EXPECT_EQ(server.Wait(std::chrono::seconds(15)), 0) << server.Output();
    const std::string output = server.Output();
    EXPECT_THAT(output, HasSubstr(kListening));
    EXPECT_THAT(output, HasSubstr("websocket server received SIGTERM"));
    EXPECT_THAT(output, HasSubstr("websocket server stopped"));
}

TEST(CliTest, LogLevelFromTheFlagOrSpdlogLevelTheFlagWins) {
    testing::TempDir dir;
    std::string config = WriteCliConfig(dir, R"("database": "levels.db", "workers": 2,)");
    // Default: info.
    EXPECT_THAT(ServeAndStop(dir, config, {}), HasSubstr(kListening));
    // The flag alone, the environment alone: warnings and errors only.
    std::string flag = ServeAndStop(dir, config, {"--log-level", "warn"});
    EXPECT_THAT(flag, Not(HasSubstr(kListening)));
    EXPECT_THAT(flag, Not(HasSubstr("[info]")));
    std::string env = ServeAndStop(dir, config, {}, {"SPDLOG_LEVEL=warn"});
    EXPECT_THAT(env, Not(HasSubstr(kListening)));
    EXPECT_THAT(env, Not(HasSubstr("[info]")));
    // Both: the flag wins, either way round.
    EXPECT_THAT(ServeAndStop(dir, config, {"--log-level", "info"}, {"SPDLOG_LEVEL=error"}), HasSubstr(kListening));
    EXPECT_THAT(ServeAndStop(dir, config, {"--log-level", "error"}, {"SPDLOG_LEVEL=debug"}),
                Not(HasSubstr(kListening)));
    // debug includes info.
    EXPECT_THAT(ServeAndStop(dir, config, {"--log-level", "debug"}), HasSubstr(kListening));
    // An unknown level is a command-line error, before anything starts.
    RunResult bad = RunBinary(dir, {Binary(), "serve", "--config", config, "--log-level", "verbose"});
    EXPECT_NE(bad.code, 0);
    EXPECT_THAT(bad.output, HasSubstr("--log-level"));
}

// Every line a JSON object with exactly time, level and message; returns the messages.
std::vector<std::string> JsonMessages(const std::string& output) {
    std::vector<std::string> messages;
    for (const std::string& line : Lines(output)) {
        rapidjson::Document d;
        d.Parse(line.c_str(), line.size());
        EXPECT_FALSE(d.HasParseError()) << "not JSON: " << line;
        if (d.HasParseError() || !d.IsObject()) continue;
        EXPECT_EQ(d.MemberCount(), 3u) << line;
        EXPECT_TRUE(d.HasMember("time") && d["time"].IsString() &&
                    std::regex_match(d["time"].GetString(),
                                     std::regex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z")))
            << line;
        EXPECT_TRUE(d.HasMember("level") && d["level"].IsString() &&
                    std::regex_match(d["level"].GetString(), std::regex("debug|info|warn|error|critical")))
            << line;
        EXPECT_TRUE(d.HasMember("message") && d["message"].IsString()) << line;
        if (d.HasMember("message") && d["message"].IsString()) messages.push_back(d["message"].GetString());
    }
    return messages;
}

bool AnyContains(const std::vector<std::string>& messages, const std::string& needle) {
    for (const auto& m : messages) {
        if (m.find(needle) != std::string::npos) return true;
    }
    return false;
}

TEST(CliTest, JsonLogLinesFromTheFlagOrTheConfig) {
    testing::TempDir dir;
    // A database file name with a quote and a backslash: the "database: ... open" line must stay one JSON string.
    const std::string db_name = "q\"uote\\back.db";
    std::string config = WriteCliConfig(dir, R"("database": "q\"uote\\back.db", "workers": 2,)");
    std::string output = ServeAndStop(dir, config, {"--log-format", "json"});
    std::vector<std::string> messages = JsonMessages(output);
    EXPECT_EQ(messages.size(), Lines(output).size());
    EXPECT_TRUE(AnyContains(messages, kListening)) << output;
    EXPECT_TRUE(AnyContains(messages, db_name)) << output;
    EXPECT_TRUE(AnyContains(messages, "websocket server stopped")) << output;

    // The config key, and the flag overriding it.
    std::string json_config =
        WriteCliConfig(dir, R"("database": "j.db", "workers": 2, "log_format": "json",)", "j.json");
    output = ServeAndStop(dir, json_config, {});
    EXPECT_TRUE(AnyContains(JsonMessages(output), kListening)) << output;
    output = ServeAndStop(dir, json_config, {"--log-format", "text"});
    EXPECT_THAT(output, HasSubstr("[info] websocket server listening on"));
    EXPECT_NE(output.front(), '{');
}

class CliRedisTest : public ::testing::Test {
protected:
    void SetUp() override {
        auto binary = observer::testing::FindRedisServer();
        if (!binary) GTEST_SKIP() << "redis-server is not installed (not on PATH)";
        redis_ = std::make_unique<observer::testing::RedisServer>(*binary);
        redis_->StartOnFreePort({"--requirepass", kPassword});
    }

    static constexpr const char* kPassword = "cli-redis-pw-2b7e90";
    testing::TempDir dir_;
    std::unique_ptr<observer::testing::RedisServer> redis_;
};

// The bus password from the environment, every log line at debug and in JSON: the password appears in none.
TEST_F(CliRedisTest, NoLogLineHoldsTheBusPassword) {
    const std::string address = "127.0.0.1:" + std::to_string(redis_->port()) + "/0";
    std::string config =
        WriteCliConfig(dir_, R"("database": "bus.db", "workers": 2, "bus": {"redis": {"env": "SYNCLINE_CLI_REDIS"}},)");
    std::string output =
        ServeAndStop(dir_, config, {"--log-level", "debug", "--log-format", "json"},
                     {std::string("SYNCLINE_CLI_REDIS=redis://default:") + kPassword + "@" + address},
                     {"subscribe connection to " + address + " up", "publish connection to " + address + " up"});
    std::vector<std::string> messages = JsonMessages(output);
    EXPECT_TRUE(AnyContains(messages, "bus: redis://default:***@" + address)) << output;
    EXPECT_TRUE(AnyContains(messages, "connection to " + address + " up")) << output;
    EXPECT_THAT(output, Not(HasSubstr(kPassword)));
    EXPECT_THAT(output, Not(HasSubstr("2b7e90")));
}

// The formatter of the binary, fed lines directly: whatever a module logs through spdlog, a URL's password never
// reaches the output, and a JSON line stays one valid JSON object whatever bytes the message holds.
std::string Format(app::LogFormat format, const std::string& message,
                   spdlog::level::level_enum level = spdlog::level::warn) {
    app::RedactingFormatter formatter(format);
    spdlog::details::log_msg msg("", level, spdlog::string_view_t(message.data(), message.size()));
    spdlog::memory_buf_t out;
    formatter.format(msg, out);
    return std::string(out.data(), out.size());
}

TEST(CliTest, TheLogFormatterRedactsEveryLineAndEscapesJson) {
    const std::string leak = "redis bus: exception: cannot reach redis://default:fmt-pw-11aa@10.0.0.1:6379/0 now";
    std::string text = Format(app::LogFormat::kText, leak);
    EXPECT_THAT(text,
                HasSubstr("[warning] redis bus: exception: cannot reach redis://default:***@10.0.0.1:6379/0 now\n"));
    EXPECT_THAT(text, Not(HasSubstr("fmt-pw-11aa")));
    std::string json = Format(app::LogFormat::kJson, leak, spdlog::level::err);
    EXPECT_THAT(json, Not(HasSubstr("fmt-pw-11aa")));
    ASSERT_EQ(json.back(), '\n');
    ASSERT_EQ(json.find('\n'), json.size() - 1);
    rapidjson::Document d;
    d.Parse(json.c_str(), json.size() - 1);
    ASSERT_FALSE(d.HasParseError()) << json;
    EXPECT_STREQ(d["level"].GetString(), "error");
    EXPECT_STREQ(d["message"].GetString(),
                 "redis bus: exception: cannot reach redis://default:***@10.0.0.1:6379/0 now");

    // Quotes, backslashes, newlines and control bytes are escaped; a line cannot be split or forged.
    const std::string nasty = "a \"quoted\" \\path\\ \n{\"level\":\"error\"}\t\x01 end";
    json = Format(app::LogFormat::kJson, nasty, spdlog::level::info);
    ASSERT_EQ(json.find('\n'), json.size() - 1) << json;
    d.Parse(json.c_str(), json.size() - 1);
    ASSERT_FALSE(d.HasParseError()) << json;
    EXPECT_EQ(std::string(d["message"].GetString(), d["message"].GetStringLength()), nasty);
    EXPECT_STREQ(d["level"].GetString(), "info");
    // Valid UTF-8 passes through; bytes that are not UTF-8 become '?' rather than an invalid JSON document.
    json = Format(app::LogFormat::kJson, "caf\xC3\xA9 \xFF\xFE end");
    d.Parse(json.c_str(), json.size() - 1);
    ASSERT_FALSE(d.HasParseError()) << json;
    EXPECT_STREQ(d["message"].GetString(), "caf?? ?? end");
    json = Format(app::LogFormat::kJson, "caf\xC3\xA9");
    d.Parse(json.c_str(), json.size() - 1);
    EXPECT_STREQ(d["message"].GetString(), "caf\xC3\xA9");
}

}  // namespace
}  // namespace syncline
