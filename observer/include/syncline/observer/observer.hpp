#pragma once
/// \file
/// The observer: the subscription registry of one process, and the fan-out of row events to subscribed sockets.
///
/// Threads: registry calls come from connection threads (thread-safe, one mutex held briefly, never while sending).
/// Deliver and CatchUp run one at a time (deliver_mutex_): Deliver on the relay's thread for the in-process path, or,
/// with a bus between processes, on the observer's own delivery thread, which takes the events the bus thread queued;
/// CatchUp on the bus thread.
///
/// Overload: with a bus between processes, events wait for the delivery thread in a queue with one entry per row. A
/// newer version of a row that is still waiting replaces it (latest state wins; the image from before the first stays,
/// as when the relay coalesces a batch), so when changes come faster than this process can push them, what waits is
/// bounded by the rows changing, not by the rate, and what a subscriber sees stays recent instead of falling further
/// behind. ObserverStats::coalesced counts the versions replaced. The rows waiting are bounded too (SetMaxQueuedRows,
/// 100,000 by default, e.g. a bulk UPDATE of a large table): past it the queue is dropped and the delivery thread reads
/// the change feed from before the oldest dropped version instead (coalesced per batch, as after a bus reconnect).

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <syncline/core/model/change_source.hpp>
#include <syncline/core/consumer/subscriptions.hpp>
#include <syncline/observer/bus.hpp>
#include <syncline/observer/row_event.hpp>

namespace syncline::observer {

/// Counters for tests and metrics.
struct ObserverStats {
    std::uint64_t events = 0;        ///< Row events processed.
    std::uint64_t duplicates = 0;    ///< Events dropped because their version was already processed.
    std::uint64_t frames = 0;        ///< Push frames handed to sockets.
    std::uint64_t serializations = 0;  ///< Rows serialized for pushes (once per consumer and version).
    std::uint64_t catch_ups = 0;     ///< Catch-up passes after a bus reconnect.
    std::uint64_t coalesced = 0;     ///< Versions replaced by a newer one of the same row while waiting to be pushed.
    std::uint64_t queued = 0;        ///< Rows waiting for the delivery thread now.
    std::uint64_t overflows = 0;     ///< Times more than the maximum of rows waited: the feed was read instead.
};

class Observer final : public SubscriptionRegistry {
public:
    /// `bus` carries events (the observer subscribes channels on it as interest comes and goes); `catch_up` reads
    /// the change feed after a bus outage (may be null: no catch-up).
    Observer(std::vector<Schema> models, Bus& bus, ChannelLayout layout, std::unique_ptr<ChangeSource> catch_up);

    /// Stops the delivery thread (events still waiting are dropped).
    ~Observer() override;

    /// Installs the bus handler and subscribes every channel of every model (ChannelLayout::ForTable), for good. A
    /// subscription made later only changes this process's registry: it never waits for the bus (a Redis SUBSCRIBE
    /// takes a round trip on the bus thread, which may be busy delivering), and a change committed after its reply is
    /// sure to arrive, because the channel was active before the server listened (WaitSubscribed). The price: this
    /// process receives every change of its models; a message on a channel no subscription here needs is dropped
    /// before it is decoded. Call once, before the first subscription.
    void Start();
    /// Waits until the bus has confirmed every channel Start subscribed; false if `timeout` passed first (Redis down:
    /// the reconnect catch-up then covers what was published before the confirmations). Not from the bus thread.
    bool WaitSubscribed(std::chrono::milliseconds timeout);
    /// The most rows whose events may wait for the delivery thread (see Overload above). Call before Start.
    void SetMaxQueuedRows(std::size_t rows) { max_queued_rows_ = rows == 0 ? 1 : rows; }
    std::size_t max_queued_rows() const { return max_queued_rows_; }
    static constexpr std::size_t kDefaultMaxQueuedRows = 100000;

    // SubscriptionRegistry
    std::unique_ptr<PendingSubscriptions> SubscribeInstance(ConnectionContext& connection, GenericConsumer& consumer,
                                                            InstanceSubscription subscription) override;
    void UnsubscribeInstance(ConnectionContext& connection, GenericConsumer& consumer, const Value& lookup_value,
                             const std::optional<std::string>& request_id) override;
    std::unique_ptr<PendingSubscriptions> SubscribeGroups(ConnectionContext& connection, GenericConsumer& consumer,
                                                          std::shared_ptr<const GroupObserver> observer,
                                                          const std::vector<std::string>& groups,
                                                          const std::string& request_id) override;
    void UnsubscribeGroups(ConnectionContext& connection, GenericConsumer& consumer, const GroupObserver& observer,
                           const std::vector<std::string>& groups,
                           const std::optional<std::string>& request_id) override;
    std::unique_ptr<PendingSubscriptions> SubscribeList(ConnectionContext& connection, GenericConsumer& consumer,
                                                        std::vector<Filter> filter,
                                                        const std::string& request_id) override;
    void UnsubscribeList(ConnectionContext& connection, GenericConsumer& consumer,
                         const std::optional<std::string>& request_id) override;
    void DropConnection(ConnectionContext& connection) override;

    /// Processes one event: pushes it to every interested socket of this process.
    void Deliver(const RowEvent& event);
    /// A bus payload arrived: delivered at once with a bus inside the process, else queued for the delivery thread.
    void OnMessage(std::string_view channel, std::string_view payload);
    /// A bus inside the process carried an event (InProcessBus::PublishEvent): as OnMessage, with nothing to decode.
    void OnEvent(const RowEvent& event);
    /// The bus reconnected: reads the feed after the last event seen and delivers what was missed.
    void CatchUp();

    ObserverStats stats() const;
    /// Number of subscriptions (all kinds) held.
    std::size_t subscription_count() const;
    /// The channels some subscription of this process needs now (the others' messages are dropped undecoded).
    std::set<std::string> needed_channels() const;

private:
    struct Sub;
    using SubPtr = std::shared_ptr<Sub>;
    // Subscriptions in the order they were made (Sub::order), so pushes go out in that order.
    using OrderedSubs = std::map<std::uint64_t, SubPtr>;
    // One connection's subscriptions: by identity (what makes two subscriptions the same one) and by target (what an
    // unsubscribe names: a consumer's row, group or list, alone or with one request_id), so that neither subscribing
    // nor unsubscribing scans them.
    struct ConnectionSubs {
        std::unordered_map<std::string, SubPtr> by_identity;
        std::unordered_map<std::string, std::unordered_map<std::string, SubPtr>> by_target;  // target -> identity
        std::size_t list_filter_values = 0;  // held by the list subscriptions (ConnectionLimits::max_list_filter_values)
    };
    SubPtr NewSub(ConnectionContext& connection, GenericConsumer& consumer, std::string identity);
    // With mutex_ held: adds a sub made by NewSub under its targets; its channels are retained.
    void Add(ConnectionSubs& subs, const SubPtr& sub, std::vector<std::string> targets,
             std::vector<std::string> channels);
    // With mutex_ held: removes one sub everywhere (channels released).
    void Remove(ConnectionSubs& subs, const SubPtr& sub);
    // With mutex_ held: removes the connection's subs under `target` (only `request_id`'s when given).
    void RemoveTarget(std::uint64_t connection_id, const std::string& target,
                      const std::optional<std::string>& request_id);
    void Retain(const std::string& channel);
    void Release(const std::string& channel);
    bool SeenBefore(const RowEvent& event);
    // Deliver, with deliver_mutex_ held.
    void DeliverLocked(const RowEvent& event);
    // Queues a bus event for the delivery thread, replacing a waiting older version of its row.
    void Enqueue(RowEvent event);
    void DeliveryLoop();
    // CatchUp's work: reads the feed after `after` (at most last_seen_), else after last_seen_; `why` for the log.
    void CatchUpFrom(std::optional<std::int64_t> after, const char* why);
    // Deliver's steps: note the version received, find the subscriptions the event concerns, then one EventPush
    // builds the frames they need (once each) and decides which sockets get which.
    struct Concerned {
        std::vector<SubPtr> instance;  // of the row, in subscription order
        std::vector<SubPtr> table;     // groups and lists of its table, in subscription order
    };
    class EventPush;
    class Pending;
    // A sub that is not started yet keeps `event` (true); else the caller pushes it.
    static bool Hold(Sub& sub, const RowEvent& event);
    // Pending::Start: the sub starts at `version`, after its held events newer than that are pushed.
    void StartSub(Sub& sub, std::int64_t version, const std::vector<std::pair<Value, std::int64_t>>& newer_rows);
    // Pending destroyed without Start: its subs go.
    void Cancel(std::uint64_t connection_id, const std::vector<SubPtr>& subs);
    void NoteReceived(const RowEvent& event);
    // CatchUp after a gap the feed no longer holds (changes after `seen` and before `oldest` trimmed): pushes, from
    // the rows' versions and current state, what each subscription missed. Returns the frames pushed.
    std::size_t Resync(std::int64_t seen, std::int64_t oldest);
    Concerned SubscriptionsOf(const RowEvent& event) const;

    std::vector<Schema> models_;
    std::unordered_map<std::string, const Schema*> schemas_;
    Bus& bus_;
    ChannelLayout layout_;
    std::unique_ptr<ChangeSource> catch_up_;
    std::mutex deliver_mutex_;  // one Deliver or CatchUp at a time
    // The delivery queue (a bus between processes only): row keys in arrival order, and each row's waiting event.
    mutable std::mutex queue_mutex_;
    std::condition_variable queue_cv_;
    std::deque<std::string> queue_order_;
    std::unordered_map<std::string, RowEvent> queued_;
    bool stopping_ = false;           // guarded by queue_mutex_
    std::uint64_t coalesced_ = 0;     // guarded by queue_mutex_
    std::uint64_t overflows_ = 0;     // guarded by queue_mutex_
    std::optional<std::int64_t> overflow_after_;  // guarded by queue_mutex_: the feed is to be read after this seq
    std::size_t max_queued_rows_ = kDefaultMaxQueuedRows;
    std::thread delivery_thread_;     // started by Start when the bus crosses processes
    // Channels Start subscribed that the bus has not confirmed yet.
    std::mutex active_mutex_;
    std::condition_variable active_cv_;
    std::size_t unconfirmed_channels_ = 0;

    mutable std::mutex mutex_;
    std::unordered_map<std::string, OrderedSubs> instance_;    // row key -> subscriptions
    std::unordered_map<std::string, OrderedSubs> table_subs_;  // table -> group and list subscriptions
    std::unordered_map<std::uint64_t, ConnectionSubs> by_connection_;
    std::unordered_map<std::string, int> channel_refs_;  // channel -> subscriptions here that need it
    std::uint64_t next_order_ = 0;
    std::size_t subscription_count_ = 0;

    // Delivery-thread state.
    std::unordered_map<std::string, std::int64_t> last_version_;  // row key -> newest version processed
    std::atomic<std::int64_t> last_seen_{0};                       // newest version received from the bus
    mutable std::mutex stats_mutex_;
    ObserverStats stats_;
};

}  // namespace syncline::observer
