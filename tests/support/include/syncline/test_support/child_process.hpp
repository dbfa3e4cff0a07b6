#pragma once
/// \file
/// Starting and stopping other processes from integration tests (server binaries, writers), and reading their memory.
/// Header-only (POSIX and GoogleTest).

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace syncline::test_support {

/// A child process whose stdout and stderr go to a log file. Killed (SIGKILL) if still running at destruction.
class ChildProcess {
public:
    ChildProcess(const std::vector<std::string>& argv, const std::string& log_path) : log_path_(log_path) {
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        posix_spawn_file_actions_adddup2(&actions, 1, 2);
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        int rc = posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        if (rc != 0) throw std::runtime_error("posix_spawn " + argv[0] + " failed: " + std::to_string(rc));
    }
    ~ChildProcess() {
        if (pid_ > 0 && !exit_status_) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
        // A sanitizer report in a server process fails the test that ran it, as one in the test process does.
        const std::string output = Output();
        for (const char* report : {"WARNING: ThreadSanitizer", "ERROR: AddressSanitizer", "runtime error:"}) {
            const std::size_t at = output.find(report);
            if (at != std::string::npos) {
                ADD_FAILURE() << "sanitizer report in the child process's output (" << log_path_
                              << "):\n" << output.substr(at, 4000);
                break;
            }
        }
    }
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    pid_t pid() const { return pid_; }
    void Signal(int sig) const { kill(pid_, sig); }
    /// Waits for the process to exit; its exit code (128 + signal when killed), or nullopt after `timeout`.
    std::optional<int> Wait(std::chrono::milliseconds timeout) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (!exit_status_) {
            int status = 0;
            pid_t r = waitpid(pid_, &status, WNOHANG);
            if (r == pid_) {
                exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                break;
            }
            if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
            std::this_thread::sleep_for(std::chrono::milliseconds(5));  // polling a child's exit; no event to wait on
        }
        return exit_status_;
    }
    /// Everything the process printed so far.
    std::string Output() const {
        std::ifstream file(log_path_);
        std::stringstream text;
        text << file.rdbuf();
        return text.str();
    }

private:
    pid_t pid_ = -1;
    std::string log_path_;
    std::optional<int> exit_status_;
};

/// The resident memory of process `pid` in KiB (VmRSS in /proc/<pid>/status), or -1 if it cannot be read.
inline long RssKiB(pid_t pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    }
    return -1;
}

}  // namespace syncline::test_support
