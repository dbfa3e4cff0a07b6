// The Redis bus's connections (redis_bus_impl.hpp): each Link connects, pipelines its set-up (AUTH, CLIENT SETNAME,
// SELECT, then PING on the publish connection or the watchdog's PSUBSCRIBE and every wanted channel on the subscribe
// connection), becomes ready on the set-up's last answer, and on any loss retries with jittered exponential backoff.
// The watchdog probes each ready link every ping_interval and closes it when no reply comes within ping_timeout
// (hiredis 0.14 has no timeouts of its own).
#include "redis_bus_impl.hpp"

#include <syncline/core/support/redact.hpp>

#include "hiredis_asio.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <cassert>

namespace syncline::observer {

using detail::Clock;
using detail::milliseconds;
namespace asio = detail::asio;

bool detail::SendCommand(redisAsyncContext* ac, redisCallbackFn* callback, void* privdata,
                         const std::vector<std::string_view>& args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    argv.reserve(args.size());
    lengths.reserve(args.size());
    for (std::string_view arg : args) {
        argv.push_back(arg.data());
        lengths.push_back(arg.size());
    }
    return redisAsyncCommandArgv(ac, callback, privdata, static_cast<int>(argv.size()), argv.data(), lengths.data()) ==
           REDIS_OK;
}

void RedisBus::Impl::Connect(Link& link) {
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
        detail::SendCommand(ac, &Impl::OnSetupReply, &link, auth);
    }
    std::string client_name = std::string("syncline-") + link.name;
    detail::SendCommand(ac, &Impl::OnSetupReply, &link, {"CLIENT", "SETNAME", client_name});
    std::string db = std::to_string(address_.db);
    detail::SendCommand(ac, &Impl::OnSetupReply, &link, {"SELECT", db});
    if (&link == &publish_) {
        detail::SendCommand(ac, &Impl::OnPublishPing, &link, {"PING"});
    } else {
        detail::SendCommand(ac, &Impl::OnWatchdogReply, &link, {"PSUBSCRIBE", watchdog_token_});
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

void RedisBus::Impl::ConnectFailed(Link& link, const std::string& reason) {
    link.state = LinkState::kIdle;
    NoteFailedAttempt(link, reason);
    ScheduleRetry(link);
}

// The context is no longer this link's: hiredis callbacks for it (NULL replies, onDisconnect) are ignored from here.
void RedisBus::Impl::Detach(Link& link) {
    if (link.ac != nullptr) link.ac->data = nullptr;
    link.ac = nullptr;
    ++link.generation;
}

// Closes the link's context from outside hiredis's callbacks and starts over.
void RedisBus::Impl::Close(Link& link, const std::string& reason) {
    assert(OnBusThread());
    redisAsyncContext* ac = link.ac;
    if (ac == nullptr) return;
    Detach(link);
    redisAsyncFree(ac);
    LinkLost(link, reason);
}

// From inside a hiredis callback: close once the callback has returned, if the context is still the same.
void RedisBus::Impl::PostClose(Link& link, std::string reason) {
    asio::post(io_, [this, &link, generation = link.generation, reason = std::move(reason)] {
        if (link.generation == generation) Close(link, reason);
    });
}

void RedisBus::Impl::LinkLost(Link& link, const std::string& reason) {
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

void RedisBus::Impl::NoteFailedAttempt(Link& link, const std::string& reason) {
    ++link.failed_attempts;
    if (reason != link.last_failure || link.failed_attempts % detail::kLogFailedAttemptsEvery == 0) {
        spdlog::warn("redis bus: {} connection to {}: attempt {} failed: {}; retrying with backoff", link.name,
                     address_.Describe(), link.failed_attempts, Scrub(reason));
    }
    link.last_failure = reason;
}

// A failure reason comes from hiredis or from Redis's own error replies (e.g. to AUTH): whatever they say, the
// password never reaches the log.
std::string RedisBus::Impl::Scrub(const std::string& reason) const {
    std::string text = RedactCredentials(reason);
    if (address_.password.empty()) return text;
    for (auto pos = text.find(address_.password); pos != std::string::npos;
         pos = text.find(address_.password, pos + kRedacted.size())) {
        text.replace(pos, address_.password.size(), kRedacted);
    }
    return text;
}

void RedisBus::Impl::ScheduleRetry(Link& link) {
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

void RedisBus::Impl::BecomeReady(Link& link) {
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

void RedisBus::Impl::UpdateConnectedFlags() {
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

void RedisBus::Impl::ArmWatchdog(Link& link) {
    link.watchdog_timer.expires_after(options_.ping_interval);
    link.watchdog_timer.async_wait([this, &link, generation = link.generation](const boost::system::error_code& ec) {
        if (!ec && link.generation == generation) OnWatchdog(link);
    });
}

void RedisBus::Impl::OnWatchdog(Link& link) {
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
            detail::SendCommand(link.ac, &Impl::OnPublishPing, &link, {"PING"});
        } else {
            SendSubscribeProbe(link.ac);
        }
    }
    ArmWatchdog(link);
}

// `PING token` on the subscribed connection, with no reply callback (see redis_bus_impl.hpp).
void RedisBus::Impl::SendSubscribeProbe(redisAsyncContext* ac) {
    const char* argv[] = {"PING", watchdog_token_.c_str()};
    const std::size_t lengths[] = {4, watchdog_token_.size()};
    if (redisAppendCommandArgv(&ac->c, 2, argv, lengths) == REDIS_OK) detail::RequestWrite(ac);
}

void RedisBus::Impl::OnConnect(const redisAsyncContext* ac, int status) {
    Link* link = LinkOf(ac);
    if (link == nullptr || link->ac != ac || status == REDIS_OK) return;
    // The connect failed; hiredis frees the context when this returns (no onDisconnect follows).
    std::string reason = ac->errstr != nullptr ? ac->errstr : "connect failed";
    link->owner->Detach(*link);
    link->owner->LinkLost(*link, reason);
}

void RedisBus::Impl::OnDisconnect(const redisAsyncContext* ac, int status) {
    Link* link = LinkOf(ac);
    if (link == nullptr || link->ac != ac) return;
    std::string reason = status == REDIS_OK ? "closed" : (ac->errstr != nullptr ? ac->errstr : "error");
    link->owner->Detach(*link);
    link->owner->LinkLost(*link, reason);
}

// Resolves a reply callback to its link, or null when the reply is a NULL (context going away) or stale.
RedisBus::Impl::Link* RedisBus::Impl::LiveLink(redisAsyncContext* ac, void* reply, void* privdata) {
    auto* link = static_cast<Link*>(privdata);
    if (reply == nullptr || link == nullptr || link->ac != ac) return nullptr;
    link->last_progress = Clock::now();
    return link;
}

void RedisBus::Impl::OnSetupReply(redisAsyncContext* ac, void* r, void* privdata) {
    Link* link = LiveLink(ac, r, privdata);
    if (link == nullptr) return;
    auto* reply = static_cast<redisReply*>(r);
    if (detail::IsError(reply)) link->owner->PostClose(*link, "set-up refused: " + std::string(detail::Text(reply)));
}

void RedisBus::Impl::OnPublishPing(redisAsyncContext* ac, void* r, void* privdata) {
    Link* link = LiveLink(ac, r, privdata);
    if (link == nullptr) return;
    auto* reply = static_cast<redisReply*>(r);
    if (detail::IsError(reply)) {
        link->owner->PostClose(*link, "PING refused: " + std::string(detail::Text(reply)));
    } else if (link->state == LinkState::kConnecting) {
        link->owner->BecomeReady(*link);
    } else {
        link->probe_outstanding = false;
    }
}

void RedisBus::Impl::OnWatchdogReply(redisAsyncContext* ac, void* r, void* privdata) {
    Link* link = LiveLink(ac, r, privdata);
    if (link == nullptr) return;
    if (detail::Element(static_cast<redisReply*>(r), 0) != "pong") return;  // the psubscribe confirmation
    if (link->state == LinkState::kConnecting) {
        link->owner->BecomeReady(*link);
    } else {
        link->probe_outstanding = false;
    }
}

}  // namespace syncline::observer
