// Publish -> receive through two RedisBus instances (a publisher and a subscriber, four connections) on one machine.
//
//   syncline_bench_redis_bus [--url redis://127.0.0.1:6379/0] [--messages 200000] [--rate 20000]
//
// For 1, 64 and 10,000 channels (the subscriber subscribes to all of them; messages go round-robin over them), with
// 200-byte payloads that carry their send time:
//  - burst: the publisher calls Publish `messages` times as fast as it can; reported: how long those calls took (the
//    caller's cost), and messages/s from the first Publish to the last delivery. Latency in a burst is queueing, so
//    it is reported but means little.
//  - paced: `rate` messages/s for about 2 s (open loop); publish -> handler latency p50/p99/max.
//  - one at a time: the next message is published when the previous one arrived; round-trip latency p50/p99.
// Redis, both buses and this program share the machine's cores: read the figures as ratios.
#include <syncline/observer/redis_bus.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using syncline::observer::RedisBus;
using syncline::observer::RedisBusOptions;

constexpr std::size_t kPayloadBytes = 200;

std::int64_t NowNs() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

std::string Payload(std::int64_t sent_ns) {
    std::string payload(kPayloadBytes, 'x');
    std::memcpy(payload.data(), &sent_ns, sizeof sent_ns);
    return payload;
}

// What the subscriber's handler records. Written on the bus thread, read after `done` fired.
struct Receiver {
    explicit Receiver(std::size_t capacity) { latencies_ns.reserve(capacity); }

    void Expect(std::size_t count) {
        std::lock_guard<std::mutex> lock(mutex);
        expected = count;
        received = 0;
        latencies_ns.clear();
        last_ns = 0;
    }

    void OnMessage(std::string_view payload) {
        std::int64_t now = NowNs();
        std::int64_t sent = 0;
        if (payload.size() >= sizeof sent) std::memcpy(&sent, payload.data(), sizeof sent);
        bool finished = false;
        {
            std::lock_guard<std::mutex> lock(mutex);
            latencies_ns.push_back(now - sent);
            last_ns = now;
            finished = ++received == expected;
        }
        if (finished || one_at_a_time) changed.notify_all();
    }

    bool WaitAll(std::chrono::seconds timeout) {
        std::unique_lock<std::mutex> lock(mutex);
        return changed.wait_for(lock, timeout, [this] { return received >= expected; });
    }

    bool WaitCount(std::size_t count, std::chrono::seconds timeout) {
        std::unique_lock<std::mutex> lock(mutex);
        return changed.wait_for(lock, timeout, [&] { return received >= count; });
    }

    std::mutex mutex;
    std::condition_variable changed;
    std::size_t expected = 0;
    std::size_t received = 0;
    std::vector<std::int64_t> latencies_ns;
    std::int64_t last_ns = 0;
    std::atomic<bool> one_at_a_time{false};
};

struct Percentiles {
    double p50_us = 0, p99_us = 0, max_us = 0;
};

Percentiles Summarise(std::vector<std::int64_t> ns) {
    Percentiles p;
    if (ns.empty()) return p;
    std::sort(ns.begin(), ns.end());
    auto at = [&](double q) { return static_cast<double>(ns[static_cast<std::size_t>(q * static_cast<double>(ns.size() - 1))]) / 1000.0; };
    p.p50_us = at(0.50);
    p.p99_us = at(0.99);
    p.max_us = static_cast<double>(ns.back()) / 1000.0;
    return p;
}

void Run(const std::string& url, std::size_t channels_count, std::size_t messages, int rate) {
    Receiver receiver(messages);
    RedisBusOptions options;
    options.url = url;
    options.max_pending_publishes = messages + 1;  // a burst must not be dropped
    RedisBus subscriber(options);
    RedisBus publisher(options);
    subscriber.SetHandler([&](std::string_view, std::string_view payload) { receiver.OnMessage(payload); });
    if (!subscriber.WaitConnected(10s) || !publisher.WaitConnected(10s)) {
        std::fprintf(stderr, "cannot connect to %s\n", url.c_str());
        std::exit(1);
    }
    std::vector<std::string> channels;
    for (std::size_t i = 0; i < channels_count; ++i) channels.push_back("bench:" + std::to_string(i));
    std::promise<void> subscribed;
    for (std::size_t i = 0; i + 1 < channels.size(); ++i) subscriber.Subscribe(channels[i]);
    subscriber.Subscribe(channels.back(), [&subscribed] { subscribed.set_value(); });
    if (subscribed.get_future().wait_for(60s) != std::future_status::ready) {
        std::fprintf(stderr, "subscriptions not confirmed\n");
        std::exit(1);
    }

    // Burst.
    receiver.Expect(messages);
    auto start = Clock::now();
    for (std::size_t i = 0; i < messages; ++i) publisher.Publish(channels[i % channels.size()], Payload(NowNs()));
    auto published = Clock::now();
    if (!receiver.WaitAll(120s)) {
        std::fprintf(stderr, "burst: only %zu of %zu arrived\n", receiver.received, messages);
        std::exit(1);
    }
    double publish_s = std::chrono::duration<double>(published - start).count();
    double total_s = static_cast<double>(receiver.last_ns - std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                                start.time_since_epoch()).count()) / 1e9;
    Percentiles burst = Summarise(receiver.latencies_ns);
    std::printf("%6zu channels  burst %zu: Publish calls %.0f ns each; %.0f msg/s end to end (%.2f s); "
                "latency p50 %.0f us, p99 %.0f us (queueing)\n",
                channels_count, messages, publish_s * 1e9 / static_cast<double>(messages),
                static_cast<double>(messages) / total_s, total_s, burst.p50_us, burst.p99_us);

    // Paced, open loop.
    const std::size_t paced = static_cast<std::size_t>(rate) * 2;
    receiver.Expect(paced);
    auto interval = std::chrono::nanoseconds(1'000'000'000 / rate);
    auto next = Clock::now();
    for (std::size_t i = 0; i < paced; ++i) {
        std::this_thread::sleep_until(next);  // pacing the load
        next += interval;
        publisher.Publish(channels[i % channels.size()], Payload(NowNs()));
    }
    if (!receiver.WaitAll(60s)) {
        std::fprintf(stderr, "paced: only %zu of %zu arrived\n", receiver.received, paced);
        std::exit(1);
    }
    Percentiles p = Summarise(receiver.latencies_ns);
    std::printf("%6zu channels  paced %d msg/s: latency p50 %.0f us, p99 %.0f us, max %.0f us\n", channels_count,
                rate, p.p50_us, p.p99_us, p.max_us);

    // One at a time.
    constexpr std::size_t kRoundTrips = 5000;
    receiver.Expect(kRoundTrips);
    receiver.one_at_a_time = true;
    for (std::size_t i = 0; i < kRoundTrips; ++i) {
        publisher.Publish(channels[i % channels.size()], Payload(NowNs()));
        if (!receiver.WaitCount(i + 1, 10s)) {
            std::fprintf(stderr, "one at a time: message %zu did not arrive\n", i);
            std::exit(1);
        }
    }
    receiver.one_at_a_time = false;
    Percentiles one = Summarise(receiver.latencies_ns);
    std::printf("%6zu channels  one at a time: latency p50 %.0f us, p99 %.0f us, max %.0f us\n", channels_count,
                one.p50_us, one.p99_us, one.max_us);
    auto stats = publisher.stats();
    if (stats.dropped_publishes != 0 || stats.reconnects != 0) {
        std::printf("  (publisher: %llu dropped, %llu reconnects)\n",
                    static_cast<unsigned long long>(stats.dropped_publishes),
                    static_cast<unsigned long long>(stats.reconnects));
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::string url = "redis://127.0.0.1:6379/0";
    if (const char* env = std::getenv("SYNCLINE_TEST_REDIS_URL"); env != nullptr && *env != '\0') url = env;
    std::size_t messages = 200000;
    int rate = 20000;
    std::vector<std::size_t> channel_counts = {1, 64, 10000};
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string flag = argv[i];
        if (flag == "--url") {
            url = argv[i + 1];
        } else if (flag == "--messages") {
            messages = std::stoul(argv[i + 1]);
        } else if (flag == "--rate") {
            rate = std::stoi(argv[i + 1]);
        } else if (flag == "--channels") {
            channel_counts = {std::stoul(argv[i + 1])};
        } else {
            std::fprintf(stderr, "usage: %s [--url URL] [--messages N] [--rate MSG_PER_S] [--channels N]\n", argv[0]);
            return 2;
        }
    }
    std::printf("redis bus: %s, %zu-byte payloads\n", url.c_str(), kPayloadBytes);
    for (std::size_t channels : channel_counts) Run(url, channels, messages, rate);
    return 0;
}
