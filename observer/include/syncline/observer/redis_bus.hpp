#pragma once
/// \file
/// The Redis bus: the Bus interface over Redis pub/sub, so relays and observers in different processes and on
/// different machines see the same channel space.

#include <syncline/observer/bus.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace syncline::observer {

/// How a RedisBus connects and how it behaves while Redis is away.
struct RedisBusOptions {
    /// Where Redis is: `redis://host[:port][/db]`, with an optional `[user]:password@` before the host (sent with
    /// AUTH; the userinfo ends at the URL's last `@`, so the password may hold any character but is not
    /// percent-decoded). The port defaults to 6379 and the database to 0; an IPv6 host is written in brackets. The
    /// password never appears in a log line or an exception message (RedactUrl).
    std::string url;
    /// How often each connection is probed with PING when it is up.
    std::chrono::milliseconds ping_interval{500};
    /// A connection that has not answered anything for this long while a PING is outstanding (or that takes this
    /// long to connect and finish its set-up) is treated as dead and reconnected.
    std::chrono::milliseconds ping_timeout{1500};
    /// Reconnect delay: starts at backoff_min, doubles after each failed attempt up to backoff_max; each delay is
    /// drawn uniformly from [delay/2, delay] so that many processes do not reconnect in step.
    std::chrono::milliseconds backoff_min{50};
    std::chrono::milliseconds backoff_max{2000};
    /// Publishes held by the bus (queued, or sent and awaiting Redis's reply). Beyond this the oldest unsent ones are
    /// dropped and counted in Stats::dropped_publishes.
    std::size_t max_pending_publishes = 100000;
    /// Publishes sent to Redis and not yet answered, at most (the pipelining window).
    std::size_t max_in_flight_publishes = 4096;
};

/// A Bus over Redis pub/sub, with one connection for PUBLISH and another for SUBSCRIBE (hiredis drops a subscribed
/// connection that is sent an ordinary command).
///
/// Threads: the bus runs one thread of its own (the bus thread); every Redis call, every handler and every internal
/// state change happens there. Every public method may be called from any thread, including from inside the bus's own
/// handlers (Publish, Subscribe, Unsubscribe and the setters only queue work for the bus thread and return), except
/// WaitConnected and the destructor, which must not be called from a handler (they would wait for the thread they
/// run on).
///
/// Delivery: messages are at most once (Redis pub/sub keeps nothing for a subscriber that is away; the reconnect
/// handler is the cue to catch up). Publishes are at least once: a publish is kept until Redis has answered it, so one
/// that was sent when a connection dropped is sent again after the reconnect (receivers drop versions they have
/// already seen). Publishes made while Redis is down are queued (bounded by max_pending_publishes) and sent in order
/// when it is back.
///
/// Failures: a lost connection (error, server gone, or no answer to the watchdog PING within ping_timeout) is retried
/// forever with jittered exponential backoff; on every reconnect the database is selected again and every channel
/// subscribed again. One log line (spdlog) per connection event: up, lost (with the reason), restored (after how many
/// attempts); never one per message.
class RedisBus final : public Bus {
public:
    /// The counters (BusStats; "acked" counts publishes Redis answered).
    using Stats = BusStats;

    /// Parses options.url and starts the bus thread, which starts connecting both connections; does not wait for
    /// them (see WaitConnected). Throws std::invalid_argument, naming the problem, for a malformed URL or option.
    explicit RedisBus(RedisBusOptions options);
    /// Stops the bus thread and closes both connections. Publishes not yet answered by Redis are discarded; no
    /// handler runs after the destructor returns. Quick even when Redis is down. Not from a handler.
    ~RedisBus() override;
    RedisBus(const RedisBus&) = delete;
    RedisBus& operator=(const RedisBus&) = delete;

    /// Queues `payload` for `channel` and returns at once; the bus thread pipelines queued publishes (up to
    /// max_in_flight_publishes unanswered), so the caller never waits for a round trip. Sent after a reconnect if
    /// Redis is down. Any thread. The publish-ack handler is not called for publishes made through this overload.
    void Publish(std::string channel, std::string payload) override;
    /// The same, tagged with `seq`: once Redis has answered this PUBLISH, the publish-ack handler is called with
    /// `seq`. Acks come in the order of Publish calls (as serialised across threads); a dropped publish is never acked.
    void Publish(std::string channel, std::string payload, std::int64_t seq) override;
    /// Starts delivering `channel`'s messages to the handler. Idempotent; remembered and subscribed again after every
    /// reconnect. Any thread.
    void Subscribe(std::string channel) override;
    /// The same, and calls `on_active` once on the bus thread when Redis has confirmed the subscription (at once if
    /// it already had): from then on every message published to `channel` reaches the handler (as long as the
    /// connection holds). If the connection drops first, it is called after the resubscription on the next one. Not
    /// called if the channel is unsubscribed first or the bus is destroyed. Lets a caller subscribe, wait, then read
    /// current state without a window in which a change is missed.
    void Subscribe(std::string channel, std::function<void()> on_active) override;
    /// Stops delivering `channel`'s messages: no message for it reaches the handler once the bus thread has processed
    /// this call. Any thread.
    void Unsubscribe(std::string channel) override;
    /// Sets the message handler, called on the bus thread with views valid only during the call. Any thread; set it
    /// before the first Subscribe (messages arriving while no handler is set are dropped).
    void SetHandler(Handler handler) override;
    /// Sets the handler called on the bus thread each time the subscribe connection has (re)connected and every
    /// channel known at that moment is subscribed again (the first connection included): messages published while it
    /// was down are lost, so this is the cue to catch up. If that connection is already up when the handler is set, it
    /// is called once right away, so a handler set after start-up never misses the first connection. Any thread.
    void SetReconnectHandler(std::function<void()> handler) override;
    /// Sets the handler called on the bus thread with the `seq` of each tagged publish that Redis has answered, in
    /// publish order. Set it before the first tagged Publish. Any thread.
    void SetPublishAckHandler(std::function<void(std::int64_t seq)> handler) override;

    /// True while both connections are up (connected, database selected, channels subscribed). Any thread.
    bool connected() const override;
    /// True: Redis carries messages between processes and machines.
    bool crosses_processes() const override;
    /// Waits until both connections are up; false if `timeout` passed first. Any thread except the bus thread.
    bool WaitConnected(std::chrono::milliseconds timeout);
    /// The counters. Any thread.
    Stats stats() const override;

private:
    class Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace syncline::observer
