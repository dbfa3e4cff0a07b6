#pragma once
/// \file
/// `syncline serve` as a child process for integration tests: its config written into the test's directory, a free
/// loopback port, and a wait (with a deadline) until it answers GET /healthz. Used from the test's thread.

#include <syncline/test_support/child_process.hpp>
#include <syncline/test_support/sandbox.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace syncline::test_support {

/// How long a server process may take to start listening (generous: a loaded 2-core machine, sanitizers).
inline constexpr std::chrono::seconds kServeStartTimeout{20};

/// Writes `json` to `name` inside `dir` and returns the file's path.
std::string WriteConfig(const TempDir& dir, const std::string& json, const std::string& name = "config.json");

/// Waits until GET /healthz on 127.0.0.1:`port` answers 200 (the server listens). False when `process` exited first
/// or `timeout` passed.
bool WaitHealthy(std::uint16_t port, ChildProcess& process, std::chrono::milliseconds timeout = kServeStartTimeout);

/// `syncline serve --config <config_path> --port <port>` (the binary next to the test's), its stdout and stderr in
/// `log_path`. Killed if still running when destroyed (ChildProcess). Does not wait for it to listen: WaitHealthy.
class ServeProcess : public ChildProcess {
public:
    /// Starts the process. `wrapper` goes before the binary on the command line (e.g. {"/usr/bin/prlimit", ...,
    /// "--"}); `port` defaults to a loopback port that was free a moment ago. Throws if it cannot be spawned.
    ServeProcess(const std::string& config_path, const std::string& log_path, std::vector<std::string> wrapper = {},
                 std::uint16_t port = FreePort());

    /// The port it was told to listen on.
    std::uint16_t port() const { return port_; }
    /// Waits until it answers GET /healthz; false when it exited first or `timeout` passed.
    bool WaitHealthy(std::chrono::milliseconds timeout = kServeStartTimeout);

private:
    std::uint16_t port_;
};

}  // namespace syncline::test_support
