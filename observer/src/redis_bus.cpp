// The Redis bus: hiredis 0.14's async API on an Asio io_context run by one thread of the bus's own.
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
// hiredis rules this file relies on (0.14.1):
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

#include <syncline/core/redact.hpp>

#include "hiredis_asio.hpp"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <charconv>
#include <condition_variable>
#include <deque>
#include <exception>
#include <iterator>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace syncline::observer {
namespace {

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
thread_local const void* t_bus_of = nullptr;

struct RedisAddress {
    std::string host;
    int port = 6379;
    long db = 0;
    std::string username;
    std::string password;
    bool has_password = false;

    std::string Describe() const {
        std::string host_text = host.find(':') != std::string::npos ? "[" + host + "]" : host;
        return host_text + ":" + std::to_string(port) + "/" + std::to_string(db);
    }
};

// The message never holds the password: the URL is redacted, and `why` only quotes text after the userinfo.
[[noreturn]] void BadUrl(const std::string& url, const std::string& why) {
    throw std::invalid_argument("RedisBus: bad Redis URL \"" + RedactUrl(url) + "\": " + why +
                                " (expected redis://[[user]:password@]host[:port][/db])");
}

bool ParseNumber(std::string_view text, long max, long& out) {
    if (text.empty()) return false;
    long value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || value < 0 || value > max) return false;
    out = value;
    return true;
}

RedisAddress ParseRedisUrl(const std::string& url) {
    constexpr std::string_view kScheme = "redis://";
    std::string_view rest(url);
    if (rest.substr(0, kScheme.size()) != kScheme) BadUrl(url, "the scheme must be redis://");
    rest.remove_prefix(kScheme.size());

    RedisAddress address;
    // The userinfo ends at the last '@' of the URL, as RedactUrl reads it: a password may hold '/', '?', '#' or '@',
    // and no part of it may end up quoted in an error message as a port or a database.
    if (auto at = rest.rfind('@'); at != std::string_view::npos) {
        std::string_view userinfo = rest.substr(0, at);
        rest.remove_prefix(at + 1);
        auto colon = userinfo.find(':');
        if (colon == std::string_view::npos) BadUrl(url, "credentials must be written user:password or :password");
        address.username = std::string(userinfo.substr(0, colon));
        address.password = std::string(userinfo.substr(colon + 1));
        address.has_password = true;
    }
    if (rest.find_first_of("?#") != std::string_view::npos) {
        BadUrl(url, "query strings and fragments are not supported");
    }
    std::string_view authority = rest.substr(0, rest.find('/'));
    std::string_view path = rest.substr(authority.size());

    std::string_view port_text;
    if (!authority.empty() && authority.front() == '[') {
        auto close = authority.find(']');
        if (close == std::string_view::npos) BadUrl(url, "unterminated [ in the host");
        address.host = std::string(authority.substr(1, close - 1));
        std::string_view after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') BadUrl(url, "unexpected text after ]");
            port_text = after.substr(1);
            if (port_text.empty()) BadUrl(url, "empty port");
        }
    } else {
        auto colon = authority.find(':');
        address.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) {
            port_text = authority.substr(colon + 1);
            if (port_text.empty()) BadUrl(url, "empty port");
        }
    }
    if (address.host.empty()) BadUrl(url, "missing host");
    if (!port_text.empty()) {
        long port = 0;
        if (!ParseNumber(port_text, 65535, port) || port == 0) {
            BadUrl(url, "port \"" + std::string(port_text) + "\" is not a number from 1 to 65535");
        }
        address.port = static_cast<int>(port);
    }
    if (path.size() > 1) {  // "" and "/" both mean database 0
        std::string_view db_text = path.substr(1);
        if (!ParseNumber(db_text, 2147483647L, address.db)) {
            BadUrl(url, "database \"" + std::string(db_text) + "\" is not a non-negative number");
        }
    }
    return address;
}

void ValidateOptions(const RedisBusOptions& options) {
    auto fail = [](const std::string& why) { throw std::invalid_argument("RedisBus: " + why); };
    if (options.ping_interval.count() <= 0) fail("ping_interval must be positive");
    if (options.ping_timeout.count() <= 0) fail("ping_timeout must be positive");
    if (options.backoff_min.count() <= 0) fail("backoff_min must be positive");
    if (options.backoff_max < options.backoff_min) fail("backoff_max must not be less than backoff_min");
    if (options.max_pending_publishes == 0) fail("max_pending_publishes must be positive");
    if (options.max_in_flight_publishes == 0) fail("max_in_flight_publishes must be positive");
}

std::string RandomToken(std::mt19937_64& rng) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string token = "__syncline_watchdog:";
    for (int i = 0; i < 16; ++i) token += kHex[rng() % 16];
    return token;
}

bool IsError(const redisReply* reply) { return reply->type == REDIS_REPLY_ERROR; }

std::string_view Text(const redisReply* reply) {
    if (reply->str == nullptr) return {};
    return std::string_view(reply->str, reply->len);
}

// Element `i` of an array reply as a string, or empty if it is missing or not a string.
std::string_view Element(const redisReply* reply, std::size_t i) {
    if (reply->type != REDIS_REPLY_ARRAY || i >= reply->elements) return {};
    const redisReply* element = reply->element[i];
    if (element->type != REDIS_REPLY_STRING && element->type != REDIS_REPLY_STATUS) return {};
    return Text(element);
}

// Sends one command built from `args` on `ac`; false when hiredis refuses (context disconnecting).
bool SendCommand(redisAsyncContext* ac, redisCallbackFn* callback, void* privdata,
                 const std::vector<std::string_view>& args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    argv.reserve(args.size());
    lengths.reserve(args.size());
    for (std::string_view arg : args) {
        argv.push_back(arg.data());
        lengths.push_back(arg.size());
    }
    return redisAsyncCommandArgv(ac, callback, privdata, static_cast<int>(argv.size()), argv.data(),
                                 lengths.data()) == REDIS_OK;
}

struct PendingPublish {
    std::string channel;
    std::string payload;
    std::int64_t seq = 0;
    bool has_seq = false;
};

}  // namespace

class RedisBus::Impl {
public:
    Impl(RedisBusOptions options, RedisAddress address)
        : options_(std::move(options)),
          address_(std::move(address)),
          work_(io_.get_executor()),
          rng_(std::random_device{}()),
          publish_(this, "publish", io_),
          subscribe_(this, "subscribe", io_) {
        watchdog_token_ = RandomToken(rng_);
        asio::post(io_, [this] {
            Connect(publish_);
            Connect(subscribe_);
        });
        thread_ = std::thread([this] { Run(); });
    }

    ~Impl() {
        assert(t_bus_of != this && "a RedisBus must not be destroyed by its own handler");
        asio::post(io_, [this] { Stop(); });
        thread_.join();
    }

    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;

    void Publish(std::string channel, std::string payload, std::int64_t seq, bool has_seq) {
        published_.fetch_add(1, std::memory_order_relaxed);
        bool post = false;
        {
            std::lock_guard<std::mutex> lock(inbox_mutex_);
            inbox_.push_back(PendingPublish{std::move(channel), std::move(payload), seq, has_seq});
            post = !drain_posted_;
            drain_posted_ = true;
        }
        if (post) asio::post(io_, [this] { DrainInbox(); });
    }

    void Subscribe(std::string channel, std::function<void()> on_active) {
        asio::post(io_, [this, channel = std::move(channel), on_active = std::move(on_active)]() mutable {
            DoSubscribe(std::move(channel), std::move(on_active));
        });
    }

    void Unsubscribe(std::string channel) {
        asio::post(io_, [this, channel = std::move(channel)] { DoUnsubscribe(channel); });
    }

    void SetHandler(Handler handler) {
        asio::post(io_, [this, handler = std::move(handler)]() mutable { handler_ = std::move(handler); });
    }

    void SetReconnectHandler(std::function<void()> handler) {
        asio::post(io_, [this, handler = std::move(handler)]() mutable {
            reconnect_handler_ = std::move(handler);
            if (subscribe_.state == LinkState::kReady) CallReconnectHandler();
        });
    }

    void SetPublishAckHandler(std::function<void(std::int64_t)> handler) {
        asio::post(io_, [this, handler = std::move(handler)]() mutable { ack_handler_ = std::move(handler); });
    }

    bool connected() const { return connected_.load(std::memory_order_acquire); }

    bool WaitConnected(milliseconds timeout) {
        assert(t_bus_of != this && "WaitConnected must not be called from a RedisBus handler");
        std::unique_lock<std::mutex> lock(state_mutex_);
        return state_changed_.wait_for(lock, timeout, [this] { return publish_up_ && subscribe_up_; });
    }

    Stats stats() const {
        Stats stats;
        stats.published = published_.load(std::memory_order_relaxed);
        stats.acked = acked_.load(std::memory_order_relaxed);
        stats.received = received_.load(std::memory_order_relaxed);
        stats.reconnects = reconnects_.load(std::memory_order_relaxed);
        stats.dropped_publishes = dropped_.load(std::memory_order_relaxed);
        stats.resent_publishes = resent_.load(std::memory_order_relaxed);
        return stats;
    }

private:
    enum class LinkState { kIdle, kConnecting, kReady };

    // One Redis connection and its life cycle. Bus thread only.
    struct Link {
        Link(Impl* owner_in, const char* name_in, asio::io_context& io)
            : owner(owner_in), name(name_in), retry_timer(io), watchdog_timer(io) {}

        Impl* owner;
        const char* name;
        redisAsyncContext* ac = nullptr;
        std::uint64_t generation = 0;  // bumped per context, so posted closes and timers can tell they are stale
        LinkState state = LinkState::kIdle;
        asio::steady_timer retry_timer;
        asio::steady_timer watchdog_timer;
        Clock::time_point connect_started;
        Clock::time_point last_progress;  // last reply of any kind on this context
        bool probe_outstanding = false;
        bool lost = false;        // was up, then lost; cleared when up again
        Clock::time_point lost_at;
        int failed_attempts = 0;  // since the link was last up
        std::string last_failure;
    };

    bool OnBusThread() const { return t_bus_of == this; }

    void Run() {
        t_bus_of = this;
        // hiredis writes with write(2): a peer that vanished would raise SIGPIPE, killing the process. Blocking it on
        // this thread (the only one doing hiredis I/O) turns it into EPIPE, which hiredis reports as a disconnect.
        sigset_t pipe;
        sigemptyset(&pipe);
        sigaddset(&pipe, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
        for (;;) {
            try {
                io_.run();
                return;
            } catch (const std::exception& e) {
                spdlog::error("redis bus: exception escaped the event loop: {}", e.what());
            } catch (...) {
                spdlog::error("redis bus: unknown exception escaped the event loop");
            }
        }
    }

    void Stop() {
        assert(OnBusThread());
        stopping_ = true;
        for (Link* link : {&publish_, &subscribe_}) {
            link->retry_timer.cancel();
            link->watchdog_timer.cancel();
            if (redisAsyncContext* ac = link->ac) {
                Detach(*link);
                redisAsyncFree(ac);  // runs pending callbacks with NULL replies, which are ignored
            }
            link->state = LinkState::kIdle;
        }
        in_flight_.clear();
        queued_.clear();
        unconfirmed_.clear();
        waiting_for_connection_.clear();
        UpdateConnectedFlags();
        work_.reset();  // run() returns once the aborted waits and cancelled timers have completed
    }

    // ---- connection life cycle ----

    void Connect(Link& link) {
        assert(OnBusThread());
        if (stopping_) return;
        ++link.generation;
        link.connect_started = Clock::now();
        redisAsyncContext* ac = redisAsyncConnect(address_.host.c_str(), address_.port);
        if (ac == nullptr) {
            ConnectFailed(link, "cannot allocate a hiredis context");
            return;
        }
        if (ac->err != 0) {
            std::string reason = ac->errstr;
            redisAsyncFree(ac);
            ConnectFailed(link, reason);
            return;
        }
        if (!detail::AttachAsio(ac, io_)) {
            redisAsyncFree(ac);
            ConnectFailed(link, "cannot register the socket with the event loop");
            return;
        }
        ac->data = &link;
        link.ac = ac;
        link.state = LinkState::kConnecting;
        link.probe_outstanding = false;
        redisAsyncSetDisconnectCallback(ac, &Impl::OnDisconnect);
        redisAsyncSetConnectCallback(ac, &Impl::OnConnect);  // after AttachAsio: it asks for a write event

        // The set-up is pipelined behind the connect; the link is up when the answer to its last command arrives,
        // which (replies being in order) means everything before it was done.
        if (address_.has_password) {
            std::vector<std::string_view> auth{"AUTH"};
            if (!address_.username.empty()) auth.emplace_back(address_.username);
            auth.emplace_back(address_.password);
            SendCommand(ac, &Impl::OnSetupReply, &link, auth);
        }
        std::string client_name = std::string("syncline-") + link.name;
        SendCommand(ac, &Impl::OnSetupReply, &link, {"CLIENT", "SETNAME", client_name});
        std::string db = std::to_string(address_.db);
        SendCommand(ac, &Impl::OnSetupReply, &link, {"SELECT", db});
        if (&link == &publish_) {
            SendCommand(ac, &Impl::OnPublishPing, &link, {"PING"});
        } else {
            SendCommand(ac, &Impl::OnWatchdogReply, &link, {"PSUBSCRIBE", watchdog_token_});
            SendSubscribe(ac, std::vector<std::string_view>(channels_.begin(), channels_.end()));
            for (const auto& channel : channels_) {
                auto waiting = waiting_for_connection_.find(channel);
                if (waiting == waiting_for_connection_.end()) {
                    unconfirmed_[channel].emplace_back();
                } else {
                    unconfirmed_[channel].push_back(std::move(waiting->second));
                }
            }
            waiting_for_connection_.clear();
            SendSubscribeProbe(ac);
        }
        ArmWatchdog(link);
    }

    void ConnectFailed(Link& link, const std::string& reason) {
        link.state = LinkState::kIdle;
        NoteFailedAttempt(link, reason);
        ScheduleRetry(link);
    }

    // The context is no longer this link's: hiredis callbacks for it (NULL replies, onDisconnect) are ignored from here.
    void Detach(Link& link) {
        if (link.ac != nullptr) link.ac->data = nullptr;
        link.ac = nullptr;
        ++link.generation;
    }

    // Closes the link's context from outside hiredis's callbacks and starts over.
    void Close(Link& link, const std::string& reason) {
        assert(OnBusThread());
        redisAsyncContext* ac = link.ac;
        if (ac == nullptr) return;
        Detach(link);
        redisAsyncFree(ac);
        LinkLost(link, reason);
    }

    // From inside a hiredis callback: close once the callback has returned, if the context is still the same.
    void PostClose(Link& link, std::string reason) {
        asio::post(io_, [this, &link, generation = link.generation, reason = std::move(reason)] {
            if (link.generation == generation) Close(link, reason);
        });
    }

    void LinkLost(Link& link, const std::string& reason) {
        assert(OnBusThread());
        link.watchdog_timer.cancel();
        bool was_ready = link.state == LinkState::kReady;
        link.state = LinkState::kIdle;
        link.probe_outstanding = false;
        if (&link == &publish_) {
            RequeueInFlight();
        } else {
            CarryOverUnconfirmed();
        }
        UpdateConnectedFlags();
        if (stopping_) return;
        if (was_ready) {
            spdlog::warn("redis bus: {} connection to {} lost: {}; reconnecting", link.name, address_.Describe(),
                         Scrub(reason));
            link.lost = true;
            link.lost_at = Clock::now();
            link.failed_attempts = 0;
        } else {
            NoteFailedAttempt(link, reason);
        }
        ScheduleRetry(link);
    }

    void NoteFailedAttempt(Link& link, const std::string& reason) {
        ++link.failed_attempts;
        if (reason != link.last_failure || link.failed_attempts % kLogFailedAttemptsEvery == 0) {
            spdlog::warn("redis bus: {} connection to {}: attempt {} failed: {}; retrying with backoff", link.name,
                         address_.Describe(), link.failed_attempts, Scrub(reason));
        }
        link.last_failure = reason;
    }

    // A failure reason comes from hiredis or from Redis's own error replies (e.g. to AUTH): whatever they say, the
    // password never reaches the log.
    std::string Scrub(const std::string& reason) const {
        std::string text = RedactCredentials(reason);
        if (address_.password.empty()) return text;
        for (auto pos = text.find(address_.password); pos != std::string::npos;
             pos = text.find(address_.password, pos + kRedacted.size())) {
            text.replace(pos, address_.password.size(), kRedacted);
        }
        return text;
    }

    void ScheduleRetry(Link& link) {
        if (stopping_) return;
        // backoff_min after a loss, then doubling per failed attempt, capped; jittered to [delay/2, delay].
        auto delay = options_.backoff_min;
        for (int i = 0; i < link.failed_attempts && delay < options_.backoff_max; ++i) delay *= 2;
        delay = std::min(delay, options_.backoff_max);
        std::uniform_int_distribution<long> jitter(delay.count() / 2, delay.count());
        link.retry_timer.expires_after(milliseconds(jitter(rng_)));
        link.retry_timer.async_wait([this, &link](const boost::system::error_code& ec) {
            if (!ec) Connect(link);
        });
    }

    void BecomeReady(Link& link) {
        assert(OnBusThread());
        link.state = LinkState::kReady;
        link.last_progress = Clock::now();
        link.probe_outstanding = false;
        if (link.lost) {
            auto outage = std::chrono::duration_cast<milliseconds>(Clock::now() - link.lost_at);
            spdlog::info("redis bus: {} connection to {} restored after {} attempt{} ({} ms down)", link.name,
                         address_.Describe(), link.failed_attempts + 1, link.failed_attempts == 0 ? "" : "s",
                         outage.count());
            reconnects_.fetch_add(1, std::memory_order_relaxed);
        } else if (link.failed_attempts > 0) {
            spdlog::info("redis bus: {} connection to {} up after {} attempts", link.name, address_.Describe(),
                         link.failed_attempts + 1);
        } else {
            spdlog::info("redis bus: {} connection to {} up", link.name, address_.Describe());
        }
        link.lost = false;
        link.failed_attempts = 0;
        link.last_failure.clear();
        UpdateConnectedFlags();
        if (&link == &publish_) {
            drop_logged_ = false;
            Flush();
        } else {
            CallReconnectHandler();
        }
    }

    void UpdateConnectedFlags() {
        bool publish_up = publish_.state == LinkState::kReady;
        bool subscribe_up = subscribe_.state == LinkState::kReady;
        {
            std::lock_guard<std::mutex> lock(state_mutex_);
            publish_up_ = publish_up;
            subscribe_up_ = subscribe_up;
            connected_.store(publish_up && subscribe_up, std::memory_order_release);
        }
        state_changed_.notify_all();
    }

    // ---- watchdog ----

    void ArmWatchdog(Link& link) {
        link.watchdog_timer.expires_after(options_.ping_interval);
        link.watchdog_timer.async_wait([this, &link, generation = link.generation](const boost::system::error_code& ec) {
            if (!ec && link.generation == generation) OnWatchdog(link);
        });
    }

    void OnWatchdog(Link& link) {
        if (link.ac == nullptr) return;
        auto now = Clock::now();
        if (link.state == LinkState::kConnecting) {
            if (now - link.connect_started > options_.ping_timeout) {
                Close(link, "not up within " + std::to_string(options_.ping_timeout.count()) + " ms");
                return;
            }
        } else if (link.probe_outstanding) {
            if (now - link.last_progress > options_.ping_timeout) {
                Close(link, "no reply to PING within " + std::to_string(options_.ping_timeout.count()) + " ms");
                return;
            }
        } else {
            link.probe_outstanding = true;
            link.last_progress = now;  // the timeout counts from this probe (any reply also counts as progress)
            if (&link == &publish_) {
                SendCommand(link.ac, &Impl::OnPublishPing, &link, {"PING"});
            } else {
                SendSubscribeProbe(link.ac);
            }
        }
        ArmWatchdog(link);
    }

    // `PING token` on the subscribed connection, with no reply callback (see the top of the file).
    void SendSubscribeProbe(redisAsyncContext* ac) {
        const char* argv[] = {"PING", watchdog_token_.c_str()};
        const std::size_t lengths[] = {4, watchdog_token_.size()};
        if (redisAppendCommandArgv(&ac->c, 2, argv, lengths) == REDIS_OK) detail::RequestWrite(ac);
    }

    // ---- hiredis callbacks (static trampolines; the link travels in ac->data or privdata) ----

    static Link* LinkOf(const redisAsyncContext* ac) { return static_cast<Link*>(ac->data); }

    static void OnConnect(const redisAsyncContext* ac, int status) {
        Link* link = LinkOf(ac);
        if (link == nullptr || link->ac != ac || status == REDIS_OK) return;
        // The connect failed; hiredis frees the context when this returns (no onDisconnect follows).
        std::string reason = ac->errstr != nullptr ? ac->errstr : "connect failed";
        link->owner->Detach(*link);
        link->owner->LinkLost(*link, reason);
    }

    static void OnDisconnect(const redisAsyncContext* ac, int status) {
        Link* link = LinkOf(ac);
        if (link == nullptr || link->ac != ac) return;
        std::string reason = status == REDIS_OK ? "closed" : (ac->errstr != nullptr ? ac->errstr : "error");
        link->owner->Detach(*link);
        link->owner->LinkLost(*link, reason);
    }

    // Resolves a reply callback to its link, or null when the reply is a NULL (context going away) or stale.
    static Link* LiveLink(redisAsyncContext* ac, void* reply, void* privdata) {
        auto* link = static_cast<Link*>(privdata);
        if (reply == nullptr || link == nullptr || link->ac != ac) return nullptr;
        link->last_progress = Clock::now();
        return link;
    }

    static void OnSetupReply(redisAsyncContext* ac, void* r, void* privdata) {
        Link* link = LiveLink(ac, r, privdata);
        if (link == nullptr) return;
        auto* reply = static_cast<redisReply*>(r);
        if (IsError(reply)) link->owner->PostClose(*link, "set-up refused: " + std::string(Text(reply)));
    }

    static void OnPublishPing(redisAsyncContext* ac, void* r, void* privdata) {
        Link* link = LiveLink(ac, r, privdata);
        if (link == nullptr) return;
        auto* reply = static_cast<redisReply*>(r);
        if (IsError(reply)) {
            link->owner->PostClose(*link, "PING refused: " + std::string(Text(reply)));
        } else if (link->state == LinkState::kConnecting) {
            link->owner->BecomeReady(*link);
        } else {
            link->probe_outstanding = false;
        }
    }

    static void OnWatchdogReply(redisAsyncContext* ac, void* r, void* privdata) {
        Link* link = LiveLink(ac, r, privdata);
        if (link == nullptr) return;
        if (Element(static_cast<redisReply*>(r), 0) != "pong") return;  // the psubscribe confirmation
        if (link->state == LinkState::kConnecting) {
            link->owner->BecomeReady(*link);
        } else {
            link->probe_outstanding = false;
        }
    }

    static void OnSubscribeReply(redisAsyncContext* ac, void* r, void* privdata) {
        Link* link = LiveLink(ac, r, privdata);
        if (link == nullptr) return;
        auto* reply = static_cast<redisReply*>(r);
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) return;
        std::string_view kind = Element(reply, 0);
        if (kind == "message") {
            link->owner->Deliver(Element(reply, 1), Text(reply->element[2]));
        } else if (kind == "subscribe") {
            link->owner->OnSubscribeConfirmed(Element(reply, 1));
        }
    }

    static void OnPublishReply(redisAsyncContext* ac, void* r, void* privdata) {
        Link* link = LiveLink(ac, r, privdata);
        if (link == nullptr) return;
        link->owner->OnPublishAnswered(static_cast<redisReply*>(r));
    }

    // ---- subscribing and delivering ----

    // Confirmations are tracked per SUBSCRIBE sent (Redis answers each one, in order), so a callback waits for the
    // confirmation of the command that made its channel live, not for an older one that an UNSUBSCRIBE follows.
    void DoSubscribe(std::string channel, std::function<void()> on_active) {
        auto [it, inserted] = channels_.insert(std::move(channel));
        const std::string& name = *it;
        std::vector<std::function<void()>> callbacks;
        if (on_active) callbacks.push_back(std::move(on_active));
        if (subscribe_.ac == nullptr) {
            if (!callbacks.empty()) {
                auto& waiting = waiting_for_connection_[name];
                waiting.insert(waiting.end(), std::make_move_iterator(callbacks.begin()),
                               std::make_move_iterator(callbacks.end()));
            }
            return;
        }
        if (inserted) {
            SendSubscribe(subscribe_.ac, {name});
            unconfirmed_[name].push_back(std::move(callbacks));
            return;
        }
        auto pending = unconfirmed_.find(name);
        if (pending != unconfirmed_.end() && !pending->second.empty()) {
            auto& last = pending->second.back();
            last.insert(last.end(), std::make_move_iterator(callbacks.begin()), std::make_move_iterator(callbacks.end()));
        } else {
            for (auto& callback : callbacks) CallUserCallback(callback, "subscription callback");
        }
    }

    void OnSubscribeConfirmed(std::string_view channel) {
        auto pending = unconfirmed_.find(channel);
        if (pending == unconfirmed_.end() || pending->second.empty()) return;
        std::vector<std::function<void()>> callbacks = std::move(pending->second.front());
        pending->second.pop_front();
        if (pending->second.empty()) unconfirmed_.erase(pending);
        for (auto& callback : callbacks) CallUserCallback(callback, "subscription callback");
    }

    // The subscribe connection is gone: callbacks waiting for a confirmation on it wait for the next connection.
    void CarryOverUnconfirmed() {
        for (auto& [channel, entries] : unconfirmed_) {
            if (channels_.find(channel) == channels_.end()) continue;
            auto& waiting = waiting_for_connection_[channel];
            for (auto& callbacks : entries) {
                waiting.insert(waiting.end(), std::make_move_iterator(callbacks.begin()),
                               std::make_move_iterator(callbacks.end()));
            }
        }
        unconfirmed_.clear();
    }

    void CallUserCallback(const std::function<void()>& callback, const char* what) {
        try {
            callback();
        } catch (const std::exception& e) {
            spdlog::error("redis bus: {} threw: {}", what, e.what());
        } catch (...) {
            spdlog::error("redis bus: {} threw an unknown exception", what);
        }
    }

    void DoUnsubscribe(const std::string& channel) {
        auto it = channels_.find(channel);
        if (it == channels_.end()) return;
        channels_.erase(it);
        waiting_for_connection_.erase(channel);
        // Keep the entries (they count the confirmations still to come) but drop their callbacks.
        if (auto pending = unconfirmed_.find(channel); pending != unconfirmed_.end()) {
            for (auto& callbacks : pending->second) callbacks.clear();
        }
        // No reply callback: hiredis routes the confirmation to the channel's subscription callback.
        if (subscribe_.ac != nullptr) SendCommand(subscribe_.ac, nullptr, nullptr, {"UNSUBSCRIBE", channel});
    }

    void SendSubscribe(redisAsyncContext* ac, const std::vector<std::string_view>& channels) {
        for (std::size_t start = 0; start < channels.size(); start += kSubscribeBatch) {
            std::vector<std::string_view> args{"SUBSCRIBE"};
            auto end = std::min(channels.size(), start + kSubscribeBatch);
            args.insert(args.end(), channels.begin() + static_cast<std::ptrdiff_t>(start),
                        channels.begin() + static_cast<std::ptrdiff_t>(end));
            SendCommand(ac, &Impl::OnSubscribeReply, &subscribe_, args);
        }
    }

    void Deliver(std::string_view channel, std::string_view payload) {
        // Messages already on the wire when an UNSUBSCRIBE was sent still arrive; the channel set is the truth.
        if (!handler_ || channels_.find(channel) == channels_.end()) return;
        received_.fetch_add(1, std::memory_order_relaxed);
        try {
            handler_(channel, payload);
        } catch (const std::exception& e) {
            LogHandlerFailure(e.what());
        } catch (...) {
            LogHandlerFailure("unknown exception");
        }
    }

    void LogHandlerFailure(const char* what) {
        if (handler_failures_++ % kLogEvery == 0) {
            spdlog::error("redis bus: message handler threw ({} so far): {}", handler_failures_, what);
        }
    }

    void CallReconnectHandler() {
        if (reconnect_handler_) CallUserCallback(reconnect_handler_, "reconnect handler");
    }

    // ---- publishing ----

    void DrainInbox() {
        std::vector<PendingPublish> batch;
        {
            std::lock_guard<std::mutex> lock(inbox_mutex_);
            batch.swap(inbox_);
            drain_posted_ = false;
        }
        if (stopping_) return;
        for (auto& publish : batch) queued_.push_back(std::move(publish));
        EnforceBound();
        Flush();
    }

    void EnforceBound() {
        std::size_t dropped = 0;
        while (queued_.size() + in_flight_.size() > options_.max_pending_publishes && !queued_.empty()) {
            queued_.pop_front();
            ++dropped;
        }
        if (dropped == 0) return;
        dropped_.fetch_add(dropped, std::memory_order_relaxed);
        if (!drop_logged_) {
            drop_logged_ = true;
            spdlog::warn("redis bus: more than {} publishes pending for {} (publish connection {}); dropping the oldest",
                         options_.max_pending_publishes, address_.Describe(),
                         publish_.state == LinkState::kReady ? "up" : "down");
        }
    }

    void Flush() {
        if (publish_.state != LinkState::kReady) return;
        while (!queued_.empty() && in_flight_.size() < options_.max_in_flight_publishes) {
            PendingPublish& next = queued_.front();
            const char* argv[] = {"PUBLISH", next.channel.data(), next.payload.data()};
            const std::size_t lengths[] = {7, next.channel.size(), next.payload.size()};
            if (redisAsyncCommandArgv(publish_.ac, &Impl::OnPublishReply, &publish_, 3, argv, lengths) != REDIS_OK) {
                return;  // the context is going away; LinkLost requeues and the next connection sends
            }
            in_flight_.push_back(std::move(next));
            queued_.pop_front();
        }
    }

    // Replies on one connection come in command order, so this answers the oldest publish in flight.
    void OnPublishAnswered(const redisReply* reply) {
        if (in_flight_.empty()) return;  // cannot happen: every PUBLISH sent is in flight until answered
        PendingPublish answered = std::move(in_flight_.front());
        in_flight_.pop_front();
        if (IsError(reply)) {
            // A refusal (e.g. an ACL without this channel) would be refused again: count it and move on.
            dropped_.fetch_add(1, std::memory_order_relaxed);
            if (refused_++ % kLogEvery == 0) {
                spdlog::error("redis bus: PUBLISH to \"{}\" refused ({} so far): {}", answered.channel, refused_,
                              Text(reply));
            }
        } else {
            acked_.fetch_add(1, std::memory_order_relaxed);
            if (answered.has_seq && ack_handler_) {
                try {
                    ack_handler_(answered.seq);
                } catch (const std::exception& e) {
                    spdlog::error("redis bus: publish-ack handler threw: {}", e.what());
                } catch (...) {
                    spdlog::error("redis bus: publish-ack handler threw an unknown exception");
                }
            }
        }
        Flush();
    }

    // Publishes sent on a lost connection may or may not have reached Redis: send them again, first.
    void RequeueInFlight() {
        resent_.fetch_add(in_flight_.size(), std::memory_order_relaxed);
        for (auto it = in_flight_.rbegin(); it != in_flight_.rend(); ++it) queued_.push_front(std::move(*it));
        in_flight_.clear();
        EnforceBound();
    }

    const RedisBusOptions options_;
    const RedisAddress address_;
    asio::io_context io_;
    asio::executor_work_guard<asio::io_context::executor_type> work_;
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

RedisBus::RedisBus(RedisBusOptions options) {
    ValidateOptions(options);
    RedisAddress address = ParseRedisUrl(options.url);
    impl_ = std::make_unique<Impl>(std::move(options), std::move(address));
}

RedisBus::~RedisBus() = default;

void RedisBus::Publish(std::string channel, std::string payload) {
    impl_->Publish(std::move(channel), std::move(payload), 0, false);
}

void RedisBus::Publish(std::string channel, std::string payload, std::int64_t seq) {
    impl_->Publish(std::move(channel), std::move(payload), seq, true);
}

void RedisBus::Subscribe(std::string channel) { impl_->Subscribe(std::move(channel), nullptr); }

void RedisBus::Subscribe(std::string channel, std::function<void()> on_active) {
    impl_->Subscribe(std::move(channel), std::move(on_active));
}

void RedisBus::Unsubscribe(std::string channel) { impl_->Unsubscribe(std::move(channel)); }

void RedisBus::SetHandler(Handler handler) { impl_->SetHandler(std::move(handler)); }

void RedisBus::SetReconnectHandler(std::function<void()> handler) { impl_->SetReconnectHandler(std::move(handler)); }

void RedisBus::SetPublishAckHandler(std::function<void(std::int64_t)> handler) {
    impl_->SetPublishAckHandler(std::move(handler));
}

bool RedisBus::connected() const { return impl_->connected(); }

bool RedisBus::WaitConnected(std::chrono::milliseconds timeout) { return impl_->WaitConnected(timeout); }

RedisBus::Stats RedisBus::stats() const { return impl_->stats(); }

}  // namespace syncline::observer
