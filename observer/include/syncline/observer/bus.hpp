#pragma once
/// \file
/// The bus that carries published changes between relays and observers. In-process by default; the Redis bus
/// (pub/sub across processes and nodes) implements the same interface.

#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

namespace syncline::observer {

/// A publish/subscribe channel space. Thread-safe: every method may be called from any thread.
class Bus {
public:
    /// Called for each message on a subscribed channel. May run on any thread; must not call back into the bus.
    using Handler = std::function<void(std::string_view channel, std::string_view payload)>;

    virtual ~Bus() = default;
    /// Sends `payload` to every subscriber of `channel` (at most once each).
    virtual void Publish(std::string channel, std::string payload) = 0;
    /// Starts delivering `channel`'s messages to the handler. Subscribing twice is the same as once.
    virtual void Subscribe(std::string channel) = 0;
    /// Stops delivering `channel`'s messages.
    virtual void Unsubscribe(std::string channel) = 0;
    /// Sets the handler; call before the first Subscribe.
    virtual void SetHandler(Handler handler) = 0;
};

/// The in-process bus: Publish calls the handler synchronously on the publishing thread for subscribed channels.
class InProcessBus final : public Bus {
public:
    void Publish(std::string channel, std::string payload) override;
    void Subscribe(std::string channel) override;
    void Unsubscribe(std::string channel) override;
    void SetHandler(Handler handler) override;

private:
    std::mutex mutex_;
    std::set<std::string, std::less<>> channels_;
    Handler handler_;
};

}  // namespace syncline::observer
