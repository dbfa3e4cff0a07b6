#include <syncline/observer/bus.hpp>

namespace syncline::observer {

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
