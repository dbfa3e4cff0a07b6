// The Redis bus's publish pipeline (redis_bus_impl.hpp): Publish (any thread) appends to the inbox; the bus thread
// drains it into a bounded queue (oldest dropped past max_pending_publishes), sends up to max_in_flight_publishes
// PUBLISH commands on the publish connection, and acknowledges each one as its reply arrives (replies come in order).
// Publishes in flight on a lost connection go back to the head of the queue and are sent again.
#include "redis_bus_impl.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

#include <exception>

namespace syncline::observer {

using detail::Clock;
using detail::milliseconds;
namespace asio = detail::asio;

void RedisBus::Impl::Publish(std::string channel, std::string payload, std::int64_t seq, bool has_seq) {
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

void RedisBus::Impl::DrainInbox() {
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

void RedisBus::Impl::EnforceBound() {
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

void RedisBus::Impl::Flush() {
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
void RedisBus::Impl::OnPublishAnswered(const redisReply* reply) {
    if (in_flight_.empty()) return;  // cannot happen: every PUBLISH sent is in flight until answered
    PendingPublish answered = std::move(in_flight_.front());
    in_flight_.pop_front();
    if (detail::IsError(reply)) {
        // A refusal (e.g. an ACL without this channel) would be refused again: count it and move on.
        dropped_.fetch_add(1, std::memory_order_relaxed);
        if (refused_++ % detail::kLogEvery == 0) {
            spdlog::error("redis bus: PUBLISH to \"{}\" refused ({} so far): {}", answered.channel, refused_,
                          detail::Text(reply));
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
void RedisBus::Impl::RequeueInFlight() {
    resent_.fetch_add(in_flight_.size(), std::memory_order_relaxed);
    for (auto it = in_flight_.rbegin(); it != in_flight_.rend(); ++it) queued_.push_front(std::move(*it));
    in_flight_.clear();
    EnforceBound();
}

void RedisBus::Impl::OnPublishReply(redisAsyncContext* ac, void* r, void* privdata) {
    Link* link = LiveLink(ac, r, privdata);
    if (link == nullptr) return;
    link->owner->OnPublishAnswered(static_cast<redisReply*>(r));
}

}  // namespace syncline::observer
