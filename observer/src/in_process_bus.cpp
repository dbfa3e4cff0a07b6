#include <syncline/observer/bus.hpp>

#include <utility>

namespace syncline::observer {

void Bus::Publish(std::string channel, std::string payload, std::int64_t seq) {
    Publish(std::move(channel), std::move(payload));
    std::function<void(std::int64_t)> ack;
    {
        std::lock_guard<std::mutex> lock(publish_ack_mutex_);
        ack = publish_ack_;
    }
    if (ack) ack(seq);
}

void Bus::Subscribe(std::string channel, std::function<void()> on_active) {
    Subscribe(std::move(channel));
    if (on_active) on_active();
}

void Bus::SetReconnectHandler(std::function<void()> /*handler*/) {}

void Bus::SetPublishAckHandler(std::function<void(std::int64_t seq)> handler) {
    std::lock_guard<std::mutex> lock(publish_ack_mutex_);
    publish_ack_ = std::move(handler);
}

bool Bus::connected() const { return true; }

bool Bus::crosses_processes() const { return false; }

BusStats Bus::stats() const { return {}; }

void InProcessBus::Publish(std::string channel, std::string payload) {
    Handler handler;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (channels_.find(channel) == channels_.end() || !handler_) return;
        handler = handler_;
    }
    // Called without the lock held: the handler may take its own locks, and must never wait on ours.
    handler(channel, payload);
}

void InProcessBus::Subscribe(std::string channel) {
    std::lock_guard<std::mutex> lock(mutex_);
    channels_.insert(std::move(channel));
}

void InProcessBus::Unsubscribe(std::string channel) {
    std::lock_guard<std::mutex> lock(mutex_);
    channels_.erase(channel);
}

void InProcessBus::SetHandler(Handler handler) {
    std::lock_guard<std::mutex> lock(mutex_);
    handler_ = std::move(handler);
}

}  // namespace syncline::observer
