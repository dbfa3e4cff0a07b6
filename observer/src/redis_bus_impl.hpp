#pragma once
// The inside of the Redis bus: hiredis 0.14's async API on an Asio io_context run by one thread of the bus's own.
// Private to the observer module. The class is defined across four files, one per job:
//  - redis_bus.cpp: the bus's thread (start, event loop, stop), the entry points that post to it, and RedisBus;
//  - redis_link.cpp: each connection's life cycle (connect, set-up, ready, lost, retry with backoff) and watchdog;
//  - redis_subscriptions.cpp: the channel set, SUBSCRIBE/UNSUBSCRIBE and their confirmations, message delivery;
//  - redis_publish.cpp: the publish pipeline (inbox, bounded queue, commands in flight, acknowledgements).
//
// Threading: the bus thread owns everything below (the hiredis contexts, the publish queues, the channel set, the
// handlers, the timers). Public entry points called on other threads never touch that state: Publish appends to a
// small mutex-guarded inbox and posts one drain for any number of publishes; the other calls post a closure. The only
// state shared with other threads is the inbox, the connection flags behind state_mutex_ (for WaitConnected) and the
// atomic counters. No lock is held while a handler runs, so handlers may call back into the bus.
//
// Each connection (a Link) goes through: idle (retry timer armed) -> connecting (context created, set-up commands
// pipelined, waiting for the set-up's last answer) -> ready -> (lost) idle ... A link is lost when hiredis reports a
// disconnect or a failed connect, or when our watchdog gives up on it (hiredis 0.14 has no timeouts). Whatever the
// cause, LinkLost runs once per context, puts unanswered publishes back at the head of the queue and arms the retry
// timer.
//
// hiredis rules the bus relies on (0.14.1):
//  - on disconnect (and on redisAsyncFree) every pending callback, subscriptions included, runs with a NULL reply;
//    every callback here ignores NULL replies, and LinkLost does the bookkeeping;
//  - onDisconnect runs only for a context that had connected, onConnect(REDIS_ERR) for one that never did, and neither
//    for a context we free ourselves (we detach it from its link first, so a late callback sees a foreign context);
//  - redisAsyncFree must not run inside that context's own callback: error paths post the close instead;
//  - on a subscribed connection an ordinary command's error reply makes hiredis drop the connection, and a PING
//    reply ["pong", arg] is routed like a pattern message named `arg`. The subscribe connection's watchdog therefore
//    PSUBSCRIBEs a private pattern equal to a random token and sends `PING token` without a reply callback
//    (redisAppendCommandArgv): the pong reaches the token's pattern callback and nothing piles up in hiredis's lists.
#include <syncline/observer/redis_bus.hpp>

#include "redis_url.hpp"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace syncline::observer {
namespace detail {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Channels per SUBSCRIBE command when (re)subscribing many channels at once.
constexpr std::size_t kSubscribeBatch = 512;
// Handler exceptions and refused publishes are logged the first time and then once per this many.
constexpr std::uint64_t kLogEvery = 1000;
// While a connection cannot be established, one log line per this many failed attempts (or when the reason changes).
constexpr int kLogFailedAttemptsEvery = 30;

// The bus whose thread the current thread is, if any (for the thread assertions, and to refuse waiting on oneself).
inline thread_local const void* t_bus_of = nullptr;

inline bool IsError(const redisReply* reply) { return reply->type == REDIS_REPLY_ERROR; }

inline std::string_view Text(const redisReply* reply) {
    if (reply->str == nullptr) return {};
    return std::string_view(reply->str, reply->len);
}

// Element `i` of an array reply as a string, or empty if it is missing or not a string.
inline std::string_view Element(const redisReply* reply, std::size_t i) {
    if (reply->type != REDIS_REPLY_ARRAY || i >= reply->elements) return {};
    const redisReply* element = reply->element[i];
    if (element->type != REDIS_REPLY_STRING && element->type != REDIS_REPLY_STATUS) return {};
    return Text(element);
}

// Sends one command built from `args` on `ac`; false when hiredis refuses (context disconnecting).
bool SendCommand(redisAsyncContext* ac, redisCallbackFn* callback, void* privdata,
                 const std::vector<std::string_view>& args);

struct PendingPublish {
    std::string channel;
    std::string payload;
    std::int64_t seq = 0;
    bool has_seq = false;
};

}  // namespace detail

class RedisBus::Impl {
public:
    Impl(RedisBusOptions options, detail::RedisAddress address);
    ~Impl();

    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;

    // Entry points, callable from any thread (RedisBus forwards to them).
    void Publish(std::string channel, std::string payload, std::int64_t seq, bool has_seq);
    void Subscribe(std::string channel, std::function<void()> on_active);
    void Unsubscribe(std::string channel);
    void SetHandler(Handler handler);
    void SetReconnectHandler(std::function<void()> handler);
    void SetPublishAckHandler(std::function<void(std::int64_t)> handler);
    bool connected() const { return connected_.load(std::memory_order_acquire); }
    bool WaitConnected(detail::milliseconds timeout);
    Stats stats() const;

private:
    using Clock = detail::Clock;
    using PendingPublish = detail::PendingPublish;

    enum class LinkState { kIdle, kConnecting, kReady };

    // One Redis connection and its life cycle. Bus thread only.
    struct Link {
        Link(Impl* owner_in, const char* name_in, detail::asio::io_context& io)
            : owner(owner_in), name(name_in), retry_timer(io), watchdog_timer(io) {}

        Impl* owner;
        const char* name;
        redisAsyncContext* ac = nullptr;
        std::uint64_t generation = 0;  // bumped per context, so posted closes and timers can tell they are stale
        LinkState state = LinkState::kIdle;
        detail::asio::steady_timer retry_timer;
        detail::asio::steady_timer watchdog_timer;
        Clock::time_point connect_started;
        Clock::time_point last_progress;  // last reply of any kind on this context
        bool probe_outstanding = false;
        bool lost = false;  // was up, then lost; cleared when up again
        Clock::time_point lost_at;
        int failed_attempts = 0;  // since the link was last up
        std::string last_failure;
    };

    bool OnBusThread() const { return detail::t_bus_of == this; }

    // ---- the bus thread (redis_bus.cpp) ----
    void Run();
    void Stop();

    // ---- connection life cycle (redis_link.cpp) ----
    void Connect(Link& link);
    void ConnectFailed(Link& link, const std::string& reason);
    void Detach(Link& link);
    void Close(Link& link, const std::string& reason);
    void PostClose(Link& link, std::string reason);
    void LinkLost(Link& link, const std::string& reason);
    void NoteFailedAttempt(Link& link, const std::string& reason);
    std::string Scrub(const std::string& reason) const;
    void ScheduleRetry(Link& link);
    void BecomeReady(Link& link);
    void UpdateConnectedFlags();

    // ---- watchdog (redis_link.cpp) ----
    void ArmWatchdog(Link& link);
    void OnWatchdog(Link& link);
    void SendSubscribeProbe(redisAsyncContext* ac);

    // ---- hiredis callbacks (static trampolines; the link travels in ac->data or privdata) ----
    static Link* LinkOf(const redisAsyncContext* ac) { return static_cast<Link*>(ac->data); }
    static void OnConnect(const redisAsyncContext* ac, int status);
    static void OnDisconnect(const redisAsyncContext* ac, int status);
    static Link* LiveLink(redisAsyncContext* ac, void* reply, void* privdata);
    static void OnSetupReply(redisAsyncContext* ac, void* r, void* privdata);
    static void OnPublishPing(redisAsyncContext* ac, void* r, void* privdata);
    static void OnWatchdogReply(redisAsyncContext* ac, void* r, void* privdata);
    static void OnSubscribeReply(redisAsyncContext* ac, void* r, void* privdata);  // redis_subscriptions.cpp
    static void OnPublishReply(redisAsyncContext* ac, void* r, void* privdata);    // redis_publish.cpp

    // ---- subscribing and delivering (redis_subscriptions.cpp) ----
    void DoSubscribe(std::string channel, std::function<void()> on_active);
    void OnSubscribeConfirmed(std::string_view channel);
    void CarryOverUnconfirmed();
    void CallUserCallback(const std::function<void()>& callback, const char* what);
    void DoUnsubscribe(const std::string& channel);
    void SendSubscribe(redisAsyncContext* ac, const std::vector<std::string_view>& channels);
    void Deliver(std::string_view channel, std::string_view payload);
    void LogHandlerFailure(const char* what);
    void CallReconnectHandler();

    // ---- publishing (redis_publish.cpp) ----
    void DrainInbox();
    void EnforceBound();
    void Flush();
    void OnPublishAnswered(const redisReply* reply);
    void RequeueInFlight();

    const RedisBusOptions options_;
    const detail::RedisAddress address_;
    detail::asio::io_context io_;
    detail::asio::executor_work_guard<detail::asio::io_context::executor_type> work_;
    std::thread thread_;

    // Bus thread only.
    std::mt19937_64 rng_;
    std::string watchdog_token_;
    Link publish_;
    Link subscribe_;
    bool stopping_ = false;
    std::set<std::string, std::less<>> channels_;  // what the caller wants subscribed
    // Per channel, one entry per SUBSCRIBE sent on the current subscribe connection and not confirmed yet (oldest
    // first), holding the on_active callbacks that wait for that confirmation.
    std::map<std::string, std::deque<std::vector<std::function<void()>>>, std::less<>> unconfirmed_;
    // on_active callbacks for channels subscribed while there was no subscribe connection.
    std::map<std::string, std::vector<std::function<void()>>, std::less<>> waiting_for_connection_;
    std::deque<PendingPublish> queued_;     // not sent yet, oldest first
    std::deque<PendingPublish> in_flight_;  // sent on the current publish connection, not answered yet, oldest first
    Handler handler_;
    std::function<void()> reconnect_handler_;
    std::function<void(std::int64_t)> ack_handler_;
    bool drop_logged_ = false;
    std::uint64_t handler_failures_ = 0;
    std::uint64_t refused_ = 0;

    // Shared with other threads.
    std::mutex inbox_mutex_;
    std::vector<PendingPublish> inbox_;
    bool drain_posted_ = false;

    std::mutex state_mutex_;
    std::condition_variable state_changed_;
    bool publish_up_ = false;
    bool subscribe_up_ = false;
    std::atomic<bool> connected_{false};

    std::atomic<std::uint64_t> published_{0};
    std::atomic<std::uint64_t> acked_{0};
    std::atomic<std::uint64_t> received_{0};
    std::atomic<std::uint64_t> reconnects_{0};
    std::atomic<std::uint64_t> dropped_{0};
    std::atomic<std::uint64_t> resent_{0};
};

}  // namespace syncline::observer
