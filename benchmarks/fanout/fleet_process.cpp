#include "fleet_process.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace syncline::fanout {
namespace {

class LocalFleet final : public FleetControl {
public:
    explicit LocalFleet(SharedState& shared) : fleet_(shared) {}
    std::string Open(const FleetSpec& spec) override { return fleet_.Open(spec); }
    void Close() override { fleet_.Close(); }
    const char* where() const override { return "in-process"; }
    pid_t pid() const override { return getpid(); }

private:
    Fleet fleet_;
};

bool WriteAll(int fd, const std::string& text) {
    std::size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        done += static_cast<std::size_t>(n);
    }
    return true;
}

// One line (without the newline); false on EOF, error or timeout (timeout_ms < 0: none).
bool ReadLine(int fd, std::string& line, int timeout_ms) {
    line.clear();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
        if (timeout_ms >= 0) {
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now())
                    .count();
            if (left <= 0) return false;
            pollfd p{fd, POLLIN, 0};
            const int r = poll(&p, 1, static_cast<int>(left));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) return false;
        }
        char c = 0;
        const ssize_t n = read(fd, &c, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        if (c == '\n') return true;
        line.push_back(c);
    }
}

// The child: "open <port> <sockets> <rows> <threads> <timeout_s> <path>" -> "ok" | "err <text>"; "close" -> "ok".
[[noreturn]] void ChildLoop(int fd, SharedState& shared) {
    {
        Fleet fleet(shared);
        std::string line;
        while (ReadLine(fd, line, -1)) {
            std::istringstream in(line);
            std::string command;
            in >> command;
            if (command == "open") {
                FleetSpec spec;
                in >> spec.port >> spec.sockets >> spec.rows >> spec.threads >> spec.timeout_s >> spec.path;
                std::string error = fleet.Open(spec);
                for (char& c : error) {
                    if (c == '\n') c = ' ';
                }
                if (!WriteAll(fd, error.empty() ? "ok\n" : "err " + error + "\n")) break;
            } else if (command == "close") {
                fleet.Close();
                if (!WriteAll(fd, "ok\n")) break;
            } else {
                break;
            }
        }
        fleet.Close();
    }
    std::fflush(stderr);
    _exit(0);
}

class RemoteFleet final : public FleetControl {
public:
    RemoteFleet(pid_t pid, int fd) : pid_(pid), fd_(fd) {}
    ~RemoteFleet() override {
        close(fd_);  // the child sees EOF, closes its sockets and exits
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        for (;;) {
            if (waitpid(pid_, nullptr, WNOHANG) == pid_) return;
            if (std::chrono::steady_clock::now() > deadline) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling a child's exit
        }
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
    }
    std::string Open(const FleetSpec& spec) override {
        std::ostringstream command;
        command << "open " << spec.port << ' ' << spec.sockets << ' ' << spec.rows << ' ' << spec.threads << ' '
                << spec.timeout_s << ' ' << spec.path << '\n';
        if (!WriteAll(fd_, command.str())) return "the fleet process is gone";
        std::string reply;
        if (!ReadLine(fd_, reply, (spec.timeout_s + 60) * 1000)) return "no answer from the fleet process";
        if (reply == "ok") return "";
        return reply.size() > 4 ? reply.substr(4) : reply;
    }
    void Close() override {
        if (!WriteAll(fd_, "close\n")) return;
        std::string reply;
        (void)ReadLine(fd_, reply, 60000);
    }
    const char* where() const override { return "child process"; }
    pid_t pid() const override { return pid_; }

private:
    pid_t pid_;
    int fd_;
};

}  // namespace

std::unique_ptr<FleetControl> MakeLocalFleet(SharedState& shared) { return std::make_unique<LocalFleet>(shared); }

std::unique_ptr<FleetControl> ForkFleetProcess(SharedState& shared) {
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) throw std::runtime_error("socketpair failed");
    std::fflush(stdout);
    std::fflush(stderr);
    const pid_t pid = fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
        close(fds[0]);
        ChildLoop(fds[1], shared);
    }
    close(fds[1]);
    return std::make_unique<RemoteFleet>(pid, fds[0]);
}

}  // namespace syncline::fanout
