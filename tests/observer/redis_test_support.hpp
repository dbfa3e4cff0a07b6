#pragma once
// Helpers for the Redis bus tests: a redis-server child on a loopback port (started, killed, stopped, restarted on the
// same port), a blocking hiredis client for checking the server's view, and a thread-safe recorder tests wait on.

#include <hiredis/hiredis.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace syncline::observer::testing {

using namespace std::chrono_literals;

/// The path of `redis-server` on PATH, or nullopt.
inline std::optional<std::string> FindRedisServer() {
    const char* path = std::getenv("PATH");
    if (path == nullptr) return std::nullopt;
    std::string paths(path);
    std::size_t start = 0;
    while (start <= paths.size()) {
        std::size_t end = paths.find(':', start);
        if (end == std::string::npos) end = paths.size();
        std::string candidate = paths.substr(start, end - start) + "/redis-server";
        if (access(candidate.c_str(), X_OK) == 0) return candidate;
        start = end + 1;
    }
    return std::nullopt;
}

/// A loopback port that was free a moment ago.
inline std::uint16_t FreePort() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    close(fd);
    return ntohs(addr.sin_port);
}

/// A redis-server child process on 127.0.0.1, without persistence. Start waits for its "Ready to accept connections"
/// line (read from a pipe, with a deadline), so no test sleeps while the server starts. Killed at destruction.
class RedisServer {
public:
    explicit RedisServer(std::string binary) : binary_(std::move(binary)) {}
    ~RedisServer() { Kill(); }
    RedisServer(const RedisServer&) = delete;
    RedisServer& operator=(const RedisServer&) = delete;

    /// Starts on a free port (trying a few in case another process takes one first). Throws if it cannot.
    void StartOnFreePort(const std::vector<std::string>& extra_args = {}) {
        for (int attempt = 0; attempt < 10; ++attempt) {
            if (Start(FreePort(), extra_args)) return;
        }
        throw std::runtime_error("redis-server did not start; last output:\n" + output_);
    }

    /// Starts on `port`; false if the server exited or was not ready within 10 s. After Kill, the same port again.
    bool Start(std::uint16_t port, const std::vector<std::string>& extra_args = {}) {
        Kill();
        port_ = port;
        int fds[2];
        if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
        std::vector<std::string> argv{binary_,   "--port", std::to_string(port), "--bind",     "127.0.0.1",
                                      "--save",  "",       "--appendonly",       "no",         "--daemonize",
                                      "no",      "--dir",  "/tmp",               "--loglevel", "notice"};
        argv.insert(argv.end(), extra_args.begin(), extra_args.end());
        std::vector<char*> args;
        for (auto& arg : argv) args.push_back(arg.data());
        args.push_back(nullptr);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
        int rc = posix_spawn(&pid_, binary_.c_str(), &actions, nullptr, args.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        close(fds[1]);
        if (rc != 0) {
            close(fds[0]);
            pid_ = -1;
            throw std::runtime_error("posix_spawn redis-server failed: " + std::to_string(rc));
        }
        output_.clear();
        bool ready = ReadUntilReady(fds[0], std::chrono::steady_clock::now() + 10s);
        // Keep draining the pipe so the server never blocks on a full one.
        int read_fd = fds[0];
        drain_ = std::thread([read_fd] {
            char buffer[4096];
            while (read(read_fd, buffer, sizeof buffer) > 0) {
            }
            close(read_fd);
        });
        if (!ready) Kill();
        return ready;
    }

    /// SIGKILL and reap (no-op when not running).
    void Kill() {
        if (pid_ > 0) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
            pid_ = -1;
        }
        if (drain_.joinable()) drain_.join();
    }
    /// SIGSTOP: the server keeps its sockets but answers nothing.
    void Pause() const { kill(pid_, SIGSTOP); }
    /// SIGCONT.
    void Resume() const { kill(pid_, SIGCONT); }

    std::uint16_t port() const { return port_; }
    std::string Url(int db = 0) const { return "redis://127.0.0.1:" + std::to_string(port_) + "/" + std::to_string(db); }

private:
    bool ReadUntilReady(int fd, std::chrono::steady_clock::time_point deadline) {
        char buffer[4096];
        while (output_.find("Ready to accept connections") == std::string::npos) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) return false;
            pollfd pfd{fd, POLLIN, 0};
            if (poll(&pfd, 1, static_cast<int>(left.count())) <= 0) continue;
            ssize_t n = read(fd, buffer, sizeof buffer);
            if (n <= 0) return false;  // the server exited (e.g. the port was taken)
            output_.append(buffer, static_cast<std::size_t>(n));
        }
        return true;
    }

    std::string binary_;
    pid_t pid_ = -1;
    std::uint16_t port_ = 0;
    std::string output_;
    std::thread drain_;
};

/// One blocking command on a fresh connection; the reply as text (arrays joined with '\n'), or "ERR ..." on failure.
inline std::string RedisCommand(std::uint16_t port, const std::vector<std::string>& args) {
    redisContext* c = redisConnect("127.0.0.1", port);
    if (c == nullptr || c->err != 0) {
        std::string error = c != nullptr ? c->errstr : "no context";
        if (c != nullptr) redisFree(c);
        return "ERR connect: " + error;
    }
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    for (const auto& arg : args) {
        argv.push_back(arg.c_str());
        lengths.push_back(arg.size());
    }
    auto* reply = static_cast<redisReply*>(
        redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lengths.data()));
    std::string text;
    if (reply == nullptr) {
        text = std::string("ERR ") + c->errstr;
    } else if (reply->type == REDIS_REPLY_ARRAY) {
        for (std::size_t i = 0; i < reply->elements; ++i) {
            if (reply->element[i]->str != nullptr) text += std::string(reply->element[i]->str, reply->element[i]->len);
            if (reply->element[i]->type == REDIS_REPLY_INTEGER) text += std::to_string(reply->element[i]->integer);
            text += '\n';
        }
    } else if (reply->type == REDIS_REPLY_INTEGER) {
        text = std::to_string(reply->integer);
    } else if (reply->str != nullptr) {
        text = std::string(reply->str, reply->len);
    }
    if (reply != nullptr) freeReplyObject(reply);
    redisFree(c);
    return text;
}

/// What the bus's handlers saw. Thread-safe; tests wait on it with a deadline.
class Recorder {
public:
    struct Message {
        std::string channel;
        std::string payload;
    };

    void OnMessage(std::string_view channel, std::string_view payload) {
        Update([&](Recorder& r) { r.messages.push_back({std::string(channel), std::string(payload)}); });
    }
    void OnReconnect() {
        Update([](Recorder& r) { ++r.reconnects; });
    }
    void OnAck(std::int64_t seq) {
        Update([&](Recorder& r) { r.acks.push_back(seq); });
    }

    void Update(const std::function<void(Recorder&)>& change) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            change(*this);
        }
        changed_.notify_all();
    }

    bool WaitFor(const std::function<bool(const Recorder&)>& condition, std::chrono::milliseconds timeout = 20s) {
        std::unique_lock<std::mutex> lock(mutex_);
        return changed_.wait_for(lock, timeout, [&] { return condition(*this); });
    }

    template <typename T>
    T Read(const std::function<T(const Recorder&)>& read) const {
        std::lock_guard<std::mutex> lock(mutex_);
        return read(*this);
    }

    std::vector<Message> messages;
    std::vector<std::int64_t> acks;
    int reconnects = 0;

private:
    mutable std::mutex mutex_;
    std::condition_variable changed_;
};

/// Polls `condition` until it holds or `timeout` passes, for state that has no event to wait on (a connection flag,
/// a counter). Returns the last value of `condition`.
inline bool Eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 20s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > deadline) return condition();
        std::this_thread::sleep_for(2ms);  // polling a condition with a deadline, not waiting for time to pass
    }
    return true;
}

}  // namespace syncline::observer::testing
