// The Redis bus's channels (redis_bus_impl.hpp): the set of channels the caller wants, SUBSCRIBE (batched when a new
// connection resubscribes them all) and UNSUBSCRIBE on the subscribe connection, the on_active callbacks that wait for
// a channel's confirmation (carried over to the next connection when one is lost), and delivery of messages to the
// handler.
#include "redis_bus_impl.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>
#include <iterator>

namespace syncline::observer {

using detail::Clock;
using detail::milliseconds;
namespace asio = detail::asio;

// Confirmations are tracked per SUBSCRIBE sent (Redis answers each one, in order), so a callback waits for the
// confirmation of the command that made its channel live, not for an older one that an UNSUBSCRIBE follows.
void RedisBus::Impl::DoSubscribe(std::string channel, std::function<void()> on_active) {
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

void RedisBus::Impl::OnSubscribeConfirmed(std::string_view channel) {
    auto pending = unconfirmed_.find(channel);
    if (pending == unconfirmed_.end() || pending->second.empty()) return;
    std::vector<std::function<void()>> callbacks = std::move(pending->second.front());
    pending->second.pop_front();
    if (pending->second.empty()) unconfirmed_.erase(pending);
    for (auto& callback : callbacks) CallUserCallback(callback, "subscription callback");
}

// The subscribe connection is gone: callbacks waiting for a confirmation on it wait for the next connection.
void RedisBus::Impl::CarryOverUnconfirmed() {
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

void RedisBus::Impl::CallUserCallback(const std::function<void()>& callback, const char* what) {
    try {
        callback();
    } catch (const std::exception& e) {
        spdlog::error("redis bus: {} threw: {}", what, e.what());
    } catch (...) {
        spdlog::error("redis bus: {} threw an unknown exception", what);
    }
}

void RedisBus::Impl::DoUnsubscribe(const std::string& channel) {
    auto it = channels_.find(channel);
    if (it == channels_.end()) return;
    channels_.erase(it);
    waiting_for_connection_.erase(channel);
    // Keep the entries (they count the confirmations still to come) but drop their callbacks.
    if (auto pending = unconfirmed_.find(channel); pending != unconfirmed_.end()) {
        for (auto& callbacks : pending->second) callbacks.clear();
    }
    // No reply callback: hiredis routes the confirmation to the channel's subscription callback.
    if (subscribe_.ac != nullptr) detail::SendCommand(subscribe_.ac, nullptr, nullptr, {"UNSUBSCRIBE", channel});
}

void RedisBus::Impl::SendSubscribe(redisAsyncContext* ac, const std::vector<std::string_view>& channels) {
    for (std::size_t start = 0; start < channels.size(); start += detail::kSubscribeBatch) {
        std::vector<std::string_view> args{"SUBSCRIBE"};
        auto end = std::min(channels.size(), start + detail::kSubscribeBatch);
        args.insert(args.end(), channels.begin() + static_cast<std::ptrdiff_t>(start),
                    channels.begin() + static_cast<std::ptrdiff_t>(end));
        detail::SendCommand(ac, &Impl::OnSubscribeReply, &subscribe_, args);
    }
}

void RedisBus::Impl::Deliver(std::string_view channel, std::string_view payload) {
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

void RedisBus::Impl::LogHandlerFailure(const char* what) {
    if (handler_failures_++ % detail::kLogEvery == 0) {
        spdlog::error("redis bus: message handler threw ({} so far): {}", handler_failures_, what);
    }
}

void RedisBus::Impl::CallReconnectHandler() {
    if (reconnect_handler_) CallUserCallback(reconnect_handler_, "reconnect handler");
}

void RedisBus::Impl::OnSubscribeReply(redisAsyncContext* ac, void* r, void* privdata) {
    Link* link = LiveLink(ac, r, privdata);
    if (link == nullptr) return;
    auto* reply = static_cast<redisReply*>(r);
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) return;
    std::string_view kind = detail::Element(reply, 0);
    if (kind == "message") {
        link->owner->Deliver(detail::Element(reply, 1), detail::Text(reply->element[2]));
    } else if (kind == "subscribe") {
        link->owner->OnSubscribeConfirmed(detail::Element(reply, 1));
    }
}

}  // namespace syncline::observer
