// `syncline serve` as a child process (serve_process.hpp).
#include <syncline/test_support/serve_process.hpp>

#include <syncline/test_support/ws_client.hpp>

#include <fstream>
#include <utility>

namespace syncline::test_support {

std::string WriteConfig(const TempDir& dir, const std::string& json, const std::string& name) {
    const std::string path = dir.File(name);
    std::ofstream(path) << json;
    return path;
}

bool WaitHealthy(std::uint16_t port, ChildProcess& process, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (HttpGet("127.0.0.1", port, "/healthz", std::chrono::milliseconds(200)).status == 200) return true;
        if (process.Wait(std::chrono::milliseconds(20))) return false;  // it exited
    }
    return false;
}

namespace {

std::vector<std::string> ServeArgv(std::vector<std::string> wrapper, const std::string& config_path,
                                   std::uint16_t port) {
    std::vector<std::string> argv = std::move(wrapper);
    for (std::string arg : {BinDir() + "/syncline", std::string("serve"), std::string("--config"), config_path,
                            std::string("--port"), std::to_string(port)}) {
        argv.push_back(std::move(arg));
    }
    return argv;
}

}  // namespace

ServeProcess::ServeProcess(const std::string& config_path, const std::string& log_path,
                           std::vector<std::string> wrapper, std::uint16_t port)
    : ChildProcess(ServeArgv(std::move(wrapper), config_path, port), log_path), port_(port) {}

bool ServeProcess::WaitHealthy(std::chrono::milliseconds timeout) {
    return test_support::WaitHealthy(port_, *this, timeout);
}

}  // namespace syncline::test_support
