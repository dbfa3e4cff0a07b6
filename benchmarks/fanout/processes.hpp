#pragma once
// syncline_fanout: other processes the latency cases start (`syncline serve`, `redis-server`), and the loopback probes
// that tell when they are ready.

#include <sys/types.h>

#include <syncline/test_support/sandbox.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace syncline::fanout {

/// A child process whose stdout and stderr go to a log file. Terminated (SIGTERM, then SIGKILL after 5 s) when
/// destroyed.
class ChildProcess {
public:
    ChildProcess(const std::vector<std::string>& argv, std::string log_path);
    ~ChildProcess();
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    pid_t pid() const { return pid_; }
    /// Exit status if it has exited (128 + signal when killed), else nullopt. Does not wait.
    std::optional<int> Exited();
    /// SIGTERM, then SIGKILL if it has not exited after `grace`.
    void Stop(std::chrono::milliseconds grace = std::chrono::seconds(5));
    /// Everything the process printed so far.
    std::string Output() const;

private:
    pid_t pid_ = -1;
    std::string log_path_;
    std::optional<int> status_;
};

/// A loopback port that was free a moment ago.
using test_support::FreePort;

/// The HTTP status of GET `path` on 127.0.0.1:`port`, or 0 when nothing answered within `timeout`.
int HttpGetStatus(std::uint16_t port, const std::string& path, std::chrono::milliseconds timeout);

/// True when a Redis at 127.0.0.1:`port` answers PING with PONG within `timeout`.
bool RedisPing(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout);

/// CPU accounting of one thread, from /proc/<pid>/task/<tid>/schedstat: time on a CPU and time runnable but waiting
/// for one.
struct ThreadCpu {
    pid_t pid = 0;
    pid_t tid = 0;
    std::string name;  ///< comm
    double run_s = 0;
    double wait_s = 0;
};

/// Every thread of these processes.
std::vector<ThreadCpu> SampleThreads(const std::vector<pid_t>& pids);

/// The thread ids of this process, ascending.
std::vector<pid_t> OwnThreadIds();

/// Per thread, CPU used between two samples, as "name 0.85+0.10" (cores busy + cores' worth of time spent runnable
/// but waiting for a CPU), busiest first, threads under 1 % left out. `labels` renames threads by tid.
/// `total_cores` receives the sum over every thread.
std::string CpuDelta(const std::vector<ThreadCpu>& before, const std::vector<ThreadCpu>& after, double seconds,
                     const std::vector<std::pair<pid_t, std::string>>& labels, double* total_cores = nullptr);

/// Machine-wide CPU time from /proc/stat (all CPUs, seconds): busy (user, nice, system, irq, softirq) and steal.
struct MachineCpu {
    double busy_s = 0;
    double steal_s = 0;
};
MachineCpu SampleMachine();

/// Splits "redis://host:port[/db]" into host and port; nullopt if malformed.
std::optional<std::pair<std::string, std::uint16_t>> ParseRedisUrl(const std::string& url);

}  // namespace syncline::fanout
