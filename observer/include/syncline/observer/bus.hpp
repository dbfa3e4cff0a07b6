#pragma once
/// \file
/// The bus that carries published changes between relays and observers. In-process by default; the Redis bus
/// (pub/sub across processes and nodes) implements the same interface.

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

#include <syncline/core/model/schema.hpp>
#include <syncline/observer/row_event.hpp>

namespace syncline::observer {

/// A bus's counters since construction (each read atomically; the set is not a snapshot). All stay 0 on a bus that
/// does not cross processes.
struct BusStats {
    std::uint64_t published = 0;          ///< Publish calls.
    std::uint64_t acked = 0;              ///< Publishes the transport answered (one re-sent after a reconnect counts once).
    std::uint64_t received = 0;           ///< Messages delivered to the handler.
    std::uint64_t reconnects = 0;         ///< Times a lost connection came back.
    std::uint64_t dropped_publishes = 0;  ///< Publishes given up: over the pending limit, or refused.
    std::uint64_t resent_publishes = 0;   ///< Publishes in flight on a lost connection, queued to be sent again.
};

/// A publish/subscribe channel space, and everything the server needs to know about it: whether a subscription is
/// active yet, when the bus came back after losing messages, which tagged publishes it has carried, whether it is up.
/// The server reaches every bus through this interface only. Thread-safe: every method may be called from any thread.
class Bus {
public:
    /// Called for each message on a subscribed channel. May run on any thread; must not call back into the bus.
    using Handler = std::function<void(std::string_view channel, std::string_view payload)>;
    /// Called for each row event a bus carries as an event (not as text: a bus inside the process). Same rules.
    using EventHandler = std::function<void(std::string_view channel, const RowEvent& event)>;

    virtual ~Bus() = default;
    /// Sends `payload` to every subscriber of `channel` (at most once each).
    virtual void Publish(std::string channel, std::string payload) = 0;
    /// The same, tagged with `seq`: once the bus has carried it (handed it to every subscriber, or had it confirmed by
    /// the transport), the publish-ack handler is called with `seq`, in the order of Publish calls. This default
    /// carries it synchronously and acks at once.
    virtual void Publish(std::string channel, std::string payload, std::int64_t seq);
    /// Publishes a row event, tagged with `seq` as the tagged Publish is. This default encodes it (EncodeEvent with
    /// `schema`) and publishes the text; a bus inside the process carries the event itself, with no encoding, to the
    /// event handler (InProcessBus).
    virtual void PublishEvent(const std::string& channel, const RowEvent& event, const Schema& schema,
                              std::int64_t seq);
    /// Starts delivering `channel`'s messages to the handler. Subscribing twice is the same as once.
    virtual void Subscribe(std::string channel) = 0;
    /// The same, and calls `on_active` (once, on any thread) when the subscription is active: from then on every
    /// message published to `channel` reaches the handler while the bus stays up. This default suits a bus whose
    /// Subscribe takes effect before it returns: it calls `on_active` at once.
    virtual void Subscribe(std::string channel, std::function<void()> on_active);
    /// Stops delivering `channel`'s messages.
    virtual void Unsubscribe(std::string channel) = 0;
    /// Sets the handler; call before the first Subscribe.
    virtual void SetHandler(Handler handler) = 0;
    /// Sets the handler of the events a bus carries as events; call before the first Subscribe. A bus that carries
    /// only text never calls it (this default ignores it): its events reach the Handler, encoded.
    virtual void SetEventHandler(EventHandler handler);
    /// Sets the handler called each time the bus has come back after a time in which messages may have been lost (and
    /// every channel is subscribed again): the cue to catch up from the change feed. A bus that never loses messages
    /// never calls it (this default).
    virtual void SetReconnectHandler(std::function<void()> handler);
    /// Sets the handler called with the `seq` of each tagged publish the bus has carried. Set it before the first
    /// tagged Publish.
    virtual void SetPublishAckHandler(std::function<void(std::int64_t seq)> handler);
    /// True while the bus can carry messages (a bus inside one process always can: this default).
    virtual bool connected() const;
    /// True when the bus carries messages between processes (and so has counters and a connection to report).
    virtual bool crosses_processes() const;
    /// The counters (all 0 in this default).
    virtual BusStats stats() const;

protected:
    // Calls the publish-ack handler, if one is set, with `seq` (the default tagged Publish,
    // InProcessBus::PublishEvent).
    void Ack(std::int64_t seq);
    // For Ack.
    std::function<void(std::int64_t seq)> publish_ack_;
    std::mutex publish_ack_mutex_;
};

/// The in-process bus: Publish calls the handler synchronously on the publishing thread for subscribed channels.
/// PublishEvent hands the event itself to the event handler (no encoding, no copy), or, when only a text handler is
/// set, its encoded text to that. Either way it then acks `seq`. This is how a Server with no Redis carries its
/// relay's changes to its observer.
class InProcessBus final : public Bus {
public:
    using Bus::Publish;
    using Bus::Subscribe;
    void Publish(std::string channel, std::string payload) override;
    void PublishEvent(const std::string& channel, const RowEvent& event, const Schema& schema,
                      std::int64_t seq) override;
    void Subscribe(std::string channel) override;
    void Unsubscribe(std::string channel) override;
    void SetHandler(Handler handler) override;
    void SetEventHandler(EventHandler handler) override;
    /// Messages and events handed to a handler so far.
    std::uint64_t delivered() const { return delivered_.load(std::memory_order_relaxed); }

private:
    std::mutex mutex_;
    std::set<std::string, std::less<>> channels_;
    Handler handler_;
    EventHandler event_handler_;
    std::atomic<std::uint64_t> delivered_{0};
};

}  // namespace syncline::observer
