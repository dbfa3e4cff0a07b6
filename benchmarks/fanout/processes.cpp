#include "processes.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace syncline::fanout {

ChildProcess::ChildProcess(const std::vector<std::string>& argv, std::string log_path)
    : log_path_(std::move(log_path)) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const int rc = posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
}

ChildProcess::~ChildProcess() { Stop(); }

std::optional<int> ChildProcess::Exited() {
    if (status_ || pid_ <= 0) return status_;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
        status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    return status_;
}

void ChildProcess::Stop(std::chrono::milliseconds grace) {
    if (pid_ <= 0 || Exited()) return;
    kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + grace;
    while (!Exited()) {
        if (std::chrono::steady_clock::now() > deadline) {
            kill(pid_, SIGKILL);
            int status = 0;
            waitpid(pid_, &status, 0);
            status_ = 128 + SIGKILL;
            return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));  // polling a child's exit: no event to wait on
    }
}

std::string ChildProcess::Output() const {
    std::ifstream file(log_path_);
    std::stringstream text;
    text << file.rdbuf();
    return text.str();
}


namespace {

// Connects to host:port, sends `request` and reads until `done(reply)` or EOF or the timeout. The reply read.
std::string Exchange(const std::string& host, std::uint16_t port, const std::string& request,
                     std::chrono::milliseconds timeout, bool (*done)(const std::string&)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return "";
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    if (inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host.c_str(), &addr.sin_addr) != 1) {
        close(fd);
        return "";
    }
    std::string reply;
    auto wait = [&](short events) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
        if (left <= 0) return false;
        pollfd p{fd, events, 0};
        return poll(&p, 1, static_cast<int>(left)) > 0 && (p.revents & (events | POLLHUP | POLLERR)) != 0;
    };
    int rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    if (rc != 0 && errno == EINPROGRESS) {
        if (wait(POLLOUT)) {
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
            rc = err == 0 ? 0 : -1;
        }
    }
    if (rc == 0 && send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size())) {
        char buf[4096];
        while (!done(reply) && wait(POLLIN)) {
            const ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n <= 0) break;
            reply.append(buf, static_cast<std::size_t>(n));
        }
    }
    close(fd);
    return reply;
}

}  // namespace

int HttpGetStatus(std::uint16_t port, const std::string& path, std::chrono::milliseconds timeout) {
    const std::string reply =
        Exchange("127.0.0.1", port, "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                 timeout, [](const std::string& r) { return r.find("\r\n") != std::string::npos; });
    // "HTTP/1.1 200 OK"
    if (reply.size() < 12 || reply.compare(0, 5, "HTTP/") != 0) return 0;
    return std::atoi(reply.c_str() + 9);
}

bool RedisPing(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout) {
    const std::string reply = Exchange(host, port, "PING\r\n", timeout,
                                       [](const std::string& r) { return r.find("\r\n") != std::string::npos; });
    return reply.rfind("+PONG", 0) == 0;
}

std::vector<ThreadCpu> SampleThreads(const std::vector<pid_t>& pids) {
    std::vector<ThreadCpu> out;
    for (pid_t pid : pids) {
        std::error_code ec;
        const std::filesystem::path task = "/proc/" + std::to_string(pid) + "/task";
        for (const auto& entry : std::filesystem::directory_iterator(task, ec)) {
            ThreadCpu t;
            t.pid = pid;
            t.tid = std::atoi(entry.path().filename().c_str());
            std::ifstream comm(entry.path() / "comm");
            std::getline(comm, t.name);
            std::ifstream stat(entry.path() / "schedstat");
            unsigned long long run = 0, wait = 0;
            if (!(stat >> run >> wait)) continue;
            t.run_s = static_cast<double>(run) / 1e9;
            t.wait_s = static_cast<double>(wait) / 1e9;
            out.push_back(t);
        }
    }
    return out;
}

std::vector<pid_t> OwnThreadIds() {
    std::vector<pid_t> tids;
    for (const ThreadCpu& t : SampleThreads({getpid()})) tids.push_back(t.tid);
    std::sort(tids.begin(), tids.end());
    return tids;
}

std::string CpuDelta(const std::vector<ThreadCpu>& before, const std::vector<ThreadCpu>& after, double seconds,
                     const std::vector<std::pair<pid_t, std::string>>& labels, double* total_cores) {
    struct Row {
        std::string name;
        double run = 0, wait = 0;
    };
    std::vector<Row> rows;
    double sum = 0;
    for (const ThreadCpu& a : after) {
        double run0 = 0, wait0 = 0;
        for (const ThreadCpu& b : before) {
            if (b.tid == a.tid && b.pid == a.pid) {
                run0 = b.run_s;
                wait0 = b.wait_s;
            }
        }
        Row r{a.name, (a.run_s - run0) / seconds, (a.wait_s - wait0) / seconds};
        for (const auto& [tid, label] : labels) {
            if (tid == a.tid) r.name = label;
        }
        sum += r.run;
        if (r.run >= 0.01) rows.push_back(r);
    }
    std::sort(rows.begin(), rows.end(), [](const Row& x, const Row& y) { return x.run > y.run; });
    std::string text;
    char buf[128];
    for (const Row& r : rows) {
        std::snprintf(buf, sizeof buf, "%s%s %.2f+%.2f", text.empty() ? "" : ", ", r.name.c_str(), r.run, r.wait);
        text += buf;
    }
    std::snprintf(buf, sizeof buf, " (total %.2f cores busy)", sum);
    if (total_cores) *total_cores = sum;
    return text + buf;
}

MachineCpu SampleMachine() {
    std::ifstream stat("/proc/stat");
    std::string cpu;
    unsigned long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
    stat >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
    const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
    MachineCpu m;
    m.busy_s = static_cast<double>(user + nice + system + irq + softirq) / tick;
    m.steal_s = static_cast<double>(steal) / tick;
    return m;
}

std::optional<std::pair<std::string, std::uint16_t>> ParseRedisUrl(const std::string& url) {
    const std::string scheme = "redis://";
    if (url.rfind(scheme, 0) != 0) return std::nullopt;
    std::string rest = url.substr(scheme.size());
    rest = rest.substr(0, rest.find('/'));
    if (const auto at = rest.rfind('@'); at != std::string::npos) rest = rest.substr(at + 1);
    const auto colon = rest.rfind(':');
    if (colon == std::string::npos) return std::make_pair(rest, std::uint16_t{6379});
    const int port = std::atoi(rest.c_str() + colon + 1);
    if (port <= 0 || port > 65535) return std::nullopt;
    return std::make_pair(rest.substr(0, colon), static_cast<std::uint16_t>(port));
}

}  // namespace syncline::fanout
