#include <syncline/observer/bus.hpp>
#include <syncline/observer/row_event.hpp>

#include <utility>

namespace syncline::observer {

void Bus::Publish(std::string channel, std::string payload, std::int64_t seq) {
    Publish(std::move(channel), std::move(payload));
    Ack(seq);
}

void Bus::Ack(std::int64_t seq) {
    std::function<void(std::int64_t)> ack;
    {
        std::lock_guard<std::mutex> lock(publish_ack_mutex_);
        ack = publish_ack_;
    }
    if (ack) ack(seq);
}

void Bus::PublishEvent(const std::string& channel, const RowEvent& event, const Schema& schema, std::int64_t seq) {
    Publish(channel, EncodeEvent(event, schema), seq);
}

void Bus::SetEventHandler(EventHandler /*handler*/) {}

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
    delivered_.fetch_add(1, std::memory_order_relaxed);
    handler(channel, payload);
}

void InProcessBus::PublishEvent(const std::string& channel, const RowEvent& event, const Schema& schema,
                                std::int64_t seq) {
    EventHandler event_handler;
    bool subscribed = false;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        subscribed = channels_.find(channel) != channels_.end();
        if (subscribed) event_handler = event_handler_;
    }
    if (!subscribed) {
        // Carried to nobody, as a text publish to an unsubscribed channel is: acked all the same.
    } else if (event_handler) {
        delivered_.fetch_add(1, std::memory_order_relaxed);
        event_handler(channel, event);
    } else {
        Publish(channel, EncodeEvent(event, schema));
    }
    Ack(seq);
}

void InProcessBus::SetEventHandler(EventHandler handler) {
    std::lock_guard<std::mutex> lock(mutex_);
    event_handler_ = std::move(handler);
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
