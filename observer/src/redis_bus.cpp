// The Redis bus's thread and front door (redis_bus_impl.hpp says how the class is cut across files): the Impl starts
// one thread running an Asio io_context, posts every entry point to it, and stops it on destruction; RedisBus checks
// its options and URL and forwards to the Impl.
#include "redis_bus_impl.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

#include <pthread.h>
#include <signal.h>

#include <cassert>
#include <exception>
#include <stdexcept>
#include <utility>

namespace syncline::observer {
namespace {

namespace asio = detail::asio;

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

}  // namespace

RedisBus::Impl::Impl(RedisBusOptions options, detail::RedisAddress address)
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

RedisBus::Impl::~Impl() {
    assert(detail::t_bus_of != this && "a RedisBus must not be destroyed by its own handler");
    asio::post(io_, [this] { Stop(); });
    thread_.join();
}

void RedisBus::Impl::Subscribe(std::string channel, std::function<void()> on_active) {
    asio::post(io_, [this, channel = std::move(channel), on_active = std::move(on_active)]() mutable {
        DoSubscribe(std::move(channel), std::move(on_active));
    });
}

void RedisBus::Impl::Unsubscribe(std::string channel) {
    asio::post(io_, [this, channel = std::move(channel)] { DoUnsubscribe(channel); });
}

void RedisBus::Impl::SetHandler(Handler handler) {
    asio::post(io_, [this, handler = std::move(handler)]() mutable { handler_ = std::move(handler); });
}

void RedisBus::Impl::SetReconnectHandler(std::function<void()> handler) {
    asio::post(io_, [this, handler = std::move(handler)]() mutable {
        reconnect_handler_ = std::move(handler);
        if (subscribe_.state == LinkState::kReady) CallReconnectHandler();
    });
}

void RedisBus::Impl::SetPublishAckHandler(std::function<void(std::int64_t)> handler) {
    asio::post(io_, [this, handler = std::move(handler)]() mutable { ack_handler_ = std::move(handler); });
}

bool RedisBus::Impl::WaitConnected(detail::milliseconds timeout) {
    assert(detail::t_bus_of != this && "WaitConnected must not be called from a RedisBus handler");
    std::unique_lock<std::mutex> lock(state_mutex_);
    return state_changed_.wait_for(lock, timeout, [this] { return publish_up_ && subscribe_up_; });
}

RedisBus::Stats RedisBus::Impl::stats() const {
    Stats stats;
    stats.published = published_.load(std::memory_order_relaxed);
    stats.acked = acked_.load(std::memory_order_relaxed);
    stats.received = received_.load(std::memory_order_relaxed);
    stats.reconnects = reconnects_.load(std::memory_order_relaxed);
    stats.dropped_publishes = dropped_.load(std::memory_order_relaxed);
    stats.resent_publishes = resent_.load(std::memory_order_relaxed);
    return stats;
}

void RedisBus::Impl::Run() {
    detail::t_bus_of = this;
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

void RedisBus::Impl::Stop() {
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

RedisBus::RedisBus(RedisBusOptions options) {
    ValidateOptions(options);
    detail::RedisAddress address = detail::ParseRedisUrl(options.url);
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

bool RedisBus::crosses_processes() const { return true; }

}  // namespace syncline::observer
