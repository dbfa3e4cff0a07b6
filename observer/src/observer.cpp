// The observer's fan-out: events from the bus (or re-read from the change feed after a bus outage) are de-duplicated
// by version and pushed to the subscriptions they concern (observer_registry.cpp keeps those).
#include <syncline/observer/observer.hpp>

#include <syncline/core/support/log.hpp>

#include "subscription.hpp"

#include <algorithm>
#include <exception>
#include <map>
#include <stdexcept>
#include <string_view>
#include <tuple>
#include <utility>

namespace syncline::observer {
namespace {

// The last versions remembered per row for de-duplication; past this many rows, the oldest half is forgotten.
constexpr std::size_t kMaxRememberedRows = 200000;

}  // namespace

Observer::Observer(std::vector<Schema> models, Bus& bus, ChannelLayout layout, std::unique_ptr<ChangeSource> catch_up)
    : models_(std::move(models)), bus_(bus), layout_(std::move(layout)), catch_up_(std::move(catch_up)) {
    for (const auto& s : models_) schemas_[s.table()] = &s;
}

Observer::~Observer() {
    {
        std::lock_guard<std::mutex> lock(queue_mutex_);
        stopping_ = true;
    }
    queue_cv_.notify_all();
    if (delivery_thread_.joinable()) delivery_thread_.join();
}

void Observer::Start() {
    if (catch_up_) last_seen_.store(catch_up_->LatestSeq());
    if (bus_.crosses_processes()) delivery_thread_ = std::thread([this] { DeliveryLoop(); });
    bus_.SetHandler([this](std::string_view channel, std::string_view payload) { OnMessage(channel, payload); });
    bus_.SetEventHandler([this](std::string_view, const RowEvent& event) { OnEvent(event); });
    std::vector<std::string> channels;
    for (const Schema& model : models_) {
        for (std::string& channel : layout_.ForTable(model.table())) channels.push_back(std::move(channel));
    }
    {
        std::lock_guard<std::mutex> lock(active_mutex_);
        unconfirmed_channels_ = channels.size();
    }
    for (std::string& channel : channels) {
        bus_.Subscribe(std::move(channel), [this] {
            std::lock_guard<std::mutex> lock(active_mutex_);
            if (unconfirmed_channels_ > 0 && --unconfirmed_channels_ == 0) active_cv_.notify_all();
        });
    }
}

bool Observer::WaitSubscribed(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(active_mutex_);
    return active_cv_.wait_for(lock, timeout, [this] { return unconfirmed_channels_ == 0; });
}

bool Observer::SeenBefore(const RowEvent& event) {
    std::string key = RowKey(event.table, event.pk);
    auto it = last_version_.find(key);
    if (it != last_version_.end() && event.version <= it->second) return true;
    if (last_version_.size() >= kMaxRememberedRows) {
        std::vector<std::int64_t> versions;
        versions.reserve(last_version_.size());
        for (const auto& [k, v] : last_version_) versions.push_back(v);
        std::nth_element(versions.begin(), versions.begin() + static_cast<std::ptrdiff_t>(versions.size() / 2),
                         versions.end());
        std::int64_t median = versions[versions.size() / 2];
        for (auto e = last_version_.begin(); e != last_version_.end();) {
            e = e->second < median ? last_version_.erase(e) : std::next(e);
        }
    }
    last_version_[key] = event.version;
    return false;
}

void Observer::OnMessage(std::string_view channel, std::string_view payload) {
    {
        // Every channel of every model arrives (Start); most processes need only some of them.
        std::lock_guard<std::mutex> lock(mutex_);
        if (channel_refs_.find(std::string(channel)) == channel_refs_.end()) return;
    }
    std::optional<RowEvent> event = DecodeEvent(payload, schemas_);
    if (!event) {
        Log(LogLevel::kWarn, "observer: dropped a malformed event on " + std::string(channel));
        return;
    }
    if (delivery_thread_.joinable()) {
        Enqueue(std::move(*event));
    } else {
        Deliver(*event);
    }
}

void Observer::OnEvent(const RowEvent& event) {
    // No channel check: it only spares OnMessage the decoding of events nobody here needs, and Deliver finds a row's
    // subscribers (or none) at once.
    if (delivery_thread_.joinable()) {
        Enqueue(event);
    } else {
        Deliver(event);
    }
}

void Observer::Enqueue(RowEvent event) {
    std::string key = RowKey(event.table, event.pk);
    {
        std::lock_guard<std::mutex> lock(queue_mutex_);
        auto waiting = queued_.find(key);
        if (waiting == queued_.end() && queued_.size() >= max_queued_rows_) {
            // Too many rows waiting: drop them all and read the feed from before the oldest of them instead (the
            // delivery thread does, coalescing per batch), so the queue's memory stays bounded and nothing is lost.
            std::int64_t oldest = event.version;
            for (const auto& [row, older] : queued_) oldest = std::min(oldest, older.version);
            overflow_after_ = std::min(overflow_after_.value_or(oldest - 1), oldest - 1);
            queued_.clear();
            queue_order_.clear();
            ++overflows_;
        } else if (waiting == queued_.end()) {
            queue_order_.push_back(key);
            queued_.emplace(std::move(key), std::move(event));
        } else if (event.version > waiting->second.version) {
            // As Coalesce folds a batch: the image from before the first waiting version (none if it created the
            // row), but a row created and deleted since keeps the image it was deleted in.
            RowEvent& older = waiting->second;
            const bool created = !older.old_json.has_value();
            if (!(created && !event.row)) event.old_json = std::move(older.old_json);
            older = std::move(event);
            ++coalesced_;
            return;  // it keeps its place in the queue
        } else {
            return;  // a version already waiting or older: dropped (Deliver would drop it too)
        }
    }
    queue_cv_.notify_one();
}

void Observer::DeliveryLoop() {
    for (;;) {
        RowEvent event;
        {
            std::unique_lock<std::mutex> lock(queue_mutex_);
            queue_cv_.wait(lock, [this] { return stopping_ || overflow_after_ || !queue_order_.empty(); });
            if (stopping_) return;
            if (overflow_after_) {
                const std::int64_t after = *overflow_after_;
                overflow_after_.reset();
                lock.unlock();
                Log(LogLevel::kWarn, "observer: more than " + std::to_string(max_queued_rows_) +
                                         " rows waited to be pushed; reading the change feed after change " +
                                         std::to_string(after) + " instead");
                if (catch_up_) {
                    CatchUpFrom(after, "after the delivery queue overflowed");
                } else {
                    Log(LogLevel::kError, "observer: no change feed to read: the dropped events are lost");
                }
                continue;
            }
            auto waiting = queued_.find(queue_order_.front());
            queue_order_.pop_front();
            if (waiting == queued_.end()) continue;
            event = std::move(waiting->second);
            queued_.erase(waiting);
        }
        try {
            Deliver(event);
        } catch (const std::exception& e) {
            Log(LogLevel::kError, std::string("observer: delivering an event failed: ") + e.what());
        }
    }
}

// One event's pushes: the permission checks and frames that its subscribers share, each built once, and the push to
// each subscriber's socket. Lives for one Deliver call, on the delivery thread.
class Observer::EventPush {
public:
    // `unknown_before`: the row's state before this version is unknown (re-read after a gap): a group or list
    // subscriber gets its current state when it belongs, else a delete (it may have belonged).
    EventPush(const RowEvent& event, const Schema& schema, bool unknown_before = false)
        : event_(event), schema_(schema), unknown_before_(unknown_before) {
        pk_json_ = JsonOfValue(event.pk);
        if (unknown_before_) old_row_ = event.row;
        if (event.old_json) {
            try {
                old_row_ = RowFromJson(schema, *event.old_json);
            } catch (const std::invalid_argument&) {
                Log(LogLevel::kWarn, "observer: unreadable old row of " + event.table);
            }
        }
    }

    // An instance subscriber gets the row's new state (update), or a delete when the row is gone or its socket may
    // no longer see it; nothing when it already has this version or its permission refuses the push.
    void ToInstanceSubscriber(Sub& sub) {
        std::shared_ptr<ConnectionContext> connection = sub.connection.lock();
        if (!connection || event_.version <= sub.last_version.load()) return;
        GenericConsumer& consumer = *sub.consumer;
        if (!instance_check_) instance_check_ = &Check("subscribe_instance");
        bool visible = false;
        try {
            // A denied push is not sent at all; a row the socket may not see (out of its queryset, or refused by an
            // object permission) has left it.
            const auto verdict =
                instance_check_->AllowedAndSees(consumer, *connection, event_.row ? &*event_.row : nullptr);
            if (verdict == PushCheck::Verdict::kDenied) return;
            visible = verdict == PushCheck::Verdict::kVisible;
        } catch (const std::exception& e) {
            PermissionFailed(e);
            return;
        }
        SharedPush& push =
            visible ? Frame(consumer, "update", 200, sub.request_id) : Frame(consumer, "delete", 204, sub.request_id);
        if (push.key.empty()) push.key = InstancePushKey(consumer, event_.pk, sub.request_id);
        connection->Push(push.frame, push.key);
        sub.last_version.store(event_.version);
        ++sent_;
    }

    // A group or list subscriber: whether the row belonged to its group or list before and after decides create,
    // update or delete; nothing when it belonged to neither or its permission refuses the push.
    void ToTableSubscriber(const Sub& sub) {
        std::shared_ptr<ConnectionContext> connection = sub.connection.lock();
        if (!connection || event_.version <= sub.floor.load()) return;
        if (event_.version <= sub.row_floors_max) {
            auto known = sub.row_floors.find(RowKey(sub.table, event_.pk));
            if (known != sub.row_floors.end() && event_.version <= known->second) return;
        }
        GenericConsumer& consumer = *sub.consumer;
        const PushCheck& check =
            Check(sub.kind == Sub::Kind::kList ? "subscribe_list" : sub.observer->subscribe_action);
        bool was = false;
        bool is = false;
        try {
            if (!check.Allowed(consumer, *connection)) return;
            is = event_.row && IsMember(sub, *connection, check, *event_.row, true);
            if (unknown_before_) {
                // A row this socket may not see is skipped: its pk would tell what the socket may not know.
                // Whether it belonged is unknown: "update" (its state now) when it belongs, else "delete".
                if (event_.row && !is && !check.CanSee(consumer, *connection, *event_.row)) return;
                was = true;
            } else {
                was = old_row_ && IsMember(sub, *connection, check, *old_row_, false);
            }
        } catch (const std::exception& e) {
            PermissionFailed(e);
            return;
        }
        if (!was && !is) return;
        SharedPush& push = Frame(consumer, was && is ? "update" : was ? "delete" : "create", 200, sub.request_id);
        connection->Push(push.frame, "g:" + std::to_string(reinterpret_cast<std::uintptr_t>(&sub)) + ":" + pk_json_);
        ++sent_;
    }

    std::uint64_t frames_sent() const { return sent_; }
    std::uint64_t serializations() const { return serializations_; }

private:
    // A complete frame and its coalescing key.
    struct SharedPush {
        std::shared_ptr<const SharedFrame> frame;
        std::string key;  // instance pushes: one per consumer, row and request_id (set by the caller)
    };

    // The frame of `action` for one consumer and request_id: subscribers that share them get the same SharedFrame,
    // which the transport prepares once for all of their sockets. Its data is the row serialized once per consumer
    // and state (204: the pk), its head built once per consumer, action and status.
    SharedPush& Frame(GenericConsumer& consumer, std::string_view action, int status, std::string_view request_id) {
        SharedPush& push = frames_[{&consumer, action, status, request_id}];
        if (!push.frame) {
            std::string& head = heads_[{&consumer, action, status}];
            if (head.empty()) {
                const bool bare = status == 204 || (action == "delete" && !old_row_);  // a delete known by its pk only
                std::string data = bare ? "{\"pk\":" + pk_json_ + "}" : Represent(consumer, action != "delete");
                head = PushPrefix(action, status, data, event_.version, consumer.store().Epoch());
            }
            std::string frame = head;
            frame.append(request_id);
            frame += '}';
            push.frame = std::make_shared<const SharedFrame>(std::move(frame));
        }
        return push;
    }

    const std::string& Represent(const GenericConsumer& consumer, bool new_state) {
        Represented& represented = represented_[&consumer];
        std::optional<std::string>& slot = new_state ? represented.new_state : represented.old_state;
        if (!slot) {
            slot = consumer.Represent(new_state ? *event_.row : *old_row_);
            ++serializations_;
        }
        return *slot;
    }

    const PushCheck& Check(std::string_view action) {
        auto it = checks_.find(action);
        if (it == checks_.end()) {
            it = checks_
                     .emplace(std::piecewise_construct, std::forward_as_tuple(action),
                              std::forward_as_tuple(std::string(action), event_.pk))
                     .first;
        }
        return it->second;
    }

    // Whether `row` (the old state or the new) is in the subscriber's list or group, as its socket sees it.
    bool IsMember(const Sub& sub, ConnectionContext& connection, const PushCheck& check, const Row& row, bool is_new) {
        if (!check.CanSee(*sub.consumer, connection, row)) return false;
        if (sub.kind == Sub::Kind::kList) return RowMatches(schema_, row, sub.filter);
        auto& cached = groups_[sub.observer.get()];
        std::vector<std::string>& keys = is_new ? cached.second : cached.first;
        if (keys.empty()) {
            keys = sub.observer->row_groups(row);
            if (keys.empty()) keys.push_back(std::string("\x1f"));  // "no groups", cached
        }
        return std::find(keys.begin(), keys.end(), sub.group) != keys.end();
    }

    // A permission that throws skips that socket's push; logged once per event, not once per socket.
    void PermissionFailed(const std::exception& e) {
        if (permission_failure_logged_) return;
        permission_failure_logged_ = true;
        Log(LogLevel::kError, "observer: a permission check failed for a push of " + event_.table + " " + pk_json_ +
                                  " (the push is skipped for those sockets): " + e.what());
    }

    struct Represented {
        std::optional<std::string> new_state, old_state;
    };

    const RowEvent& event_;
    const Schema& schema_;
    const bool unknown_before_;
    std::optional<Row> old_row_;
    std::string pk_json_;
    std::map<std::string, PushCheck, std::less<>> checks_;  // by subscribe action
    const PushCheck* instance_check_ = nullptr;             // checks_'s subscribe_instance, once asked
    std::unordered_map<const GenericConsumer*, Represented> represented_;
    // Keys hold views of literals and of the subscriptions' request_ids, which outlive the event.
    std::map<std::tuple<const GenericConsumer*, std::string_view, int>, std::string> heads_;
    std::map<std::tuple<const GenericConsumer*, std::string_view, int, std::string_view>, SharedPush> frames_;
    // Per group observer, the groups of the old row and of the new one.
    std::map<const GroupObserver*, std::pair<std::vector<std::string>, std::vector<std::string>>> groups_;
    bool permission_failure_logged_ = false;
    std::uint64_t sent_ = 0;
    std::uint64_t serializations_ = 0;
};

bool Observer::Hold(Sub& sub, const RowEvent& event) {
    if (!sub.held.load()) return false;
    std::lock_guard<std::mutex> lock(sub.start_mutex);
    if (!sub.held.load()) return false;  // started meanwhile: its held events went first
    // An instance subscription needs only the newest change of its row; a list or group every change in order.
    if (sub.kind == Sub::Kind::kInstance) sub.held_events.clear();
    sub.held_events.push_back(event);
    return true;
}

void Observer::StartSub(Sub& sub, std::int64_t version, const std::vector<std::pair<Value, std::int64_t>>& newer_rows) {
    std::lock_guard<std::mutex> lock(sub.start_mutex);
    if (sub.kind == Sub::Kind::kInstance) {
        std::int64_t known = sub.last_version.load();
        if (version > known) sub.last_version.store(version);
    } else {
        sub.floor.store(version);
        for (const auto& [pk, row_version] : newer_rows) {
            if (row_version <= version) continue;
            std::int64_t& floor = sub.row_floors[RowKey(sub.table, pk)];
            floor = std::max(floor, row_version);
            sub.row_floors_max = std::max(sub.row_floors_max, row_version);
        }
    }
    std::vector<RowEvent> held = std::move(sub.held_events);
    sub.held_events.clear();
    auto schema = schemas_.find(sub.table);
    if (schema != schemas_.end()) {
        for (const RowEvent& event : held) {
            EventPush push(event, *schema->second);
            if (sub.kind == Sub::Kind::kInstance) {
                push.ToInstanceSubscriber(sub);
            } else {
                push.ToTableSubscriber(sub);
            }
            std::lock_guard<std::mutex> stats_lock(stats_mutex_);
            stats_.frames += push.frames_sent();
            stats_.serializations += push.serializations();
        }
    }
    sub.held.store(false);
}

void Observer::NoteReceived(const RowEvent& event) {
    std::int64_t seen = last_seen_.load();
    while (event.version > seen && !last_seen_.compare_exchange_weak(seen, event.version)) {
    }
    std::lock_guard<std::mutex> lock(stats_mutex_);
    ++stats_.events;
}

Observer::Concerned Observer::SubscriptionsOf(const RowEvent& event) const {
    Concerned concerned;
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto it = instance_.find(RowKey(event.table, event.pk)); it != instance_.end()) {
        concerned.instance.reserve(it->second.size());
        for (const auto& [order, sub] : it->second) concerned.instance.push_back(sub);
    }
    if (auto it = table_subs_.find(event.table); it != table_subs_.end()) {
        concerned.table.reserve(it->second.size());
        for (const auto& [order, sub] : it->second) concerned.table.push_back(sub);
    }
    return concerned;
}

void Observer::Deliver(const RowEvent& event) {
    std::lock_guard<std::mutex> lock(deliver_mutex_);
    DeliverLocked(event);
}

void Observer::DeliverLocked(const RowEvent& event) {
    NoteReceived(event);
    Concerned concerned = SubscriptionsOf(event);
    // Nothing to remember for a row nobody here watches: a replayed older version reaching a later subscriber is
    // still dropped, by the subscription's own version (instance) or by the newer version remembered once it is
    // delivered (groups).
    if (concerned.instance.empty() && concerned.table.empty()) return;
    if (SeenBefore(event)) {
        std::lock_guard<std::mutex> lock(stats_mutex_);
        ++stats_.duplicates;
        return;
    }
    auto schema = schemas_.find(event.table);
    if (schema == schemas_.end()) return;
    EventPush push(event, *schema->second);
    for (const SubPtr& sub : concerned.instance) {
        if (!Hold(*sub, event)) push.ToInstanceSubscriber(*sub);
    }
    for (const SubPtr& sub : concerned.table) {
        if (!Hold(*sub, event)) push.ToTableSubscriber(*sub);
    }
    std::lock_guard<std::mutex> lock(stats_mutex_);
    stats_.frames += push.frames_sent();
    stats_.serializations += push.serializations();
}

void Observer::CatchUp() { CatchUpFrom(std::nullopt, "after the bus reconnected"); }

void Observer::CatchUpFrom(std::optional<std::int64_t> after, const char* why) {
    if (!catch_up_) return;
    std::lock_guard<std::mutex> deliver_lock(deliver_mutex_);
    {
        std::lock_guard<std::mutex> lock(stats_mutex_);
        ++stats_.catch_ups;
    }
    std::int64_t from = after ? std::min(*after, last_seen_.load()) : last_seen_.load();
    const std::int64_t seen = from;
    const std::int64_t oldest = catch_up_->OldestSeq();
    const bool gap = oldest > from + 1;
    if (gap) {
        Log(LogLevel::kWarn, "observer: changes " + std::to_string(from + 1) + ".." + std::to_string(oldest - 1) +
                                 " were trimmed before this process caught up; the rows they changed are pushed from "
                                 "their current state");
    }
    std::size_t delivered = 0;
    while (true) {
        std::vector<ChangeEvent> changes = catch_up_->ReadAfter(from, 512);
        if (changes.empty()) break;
        from = changes.back().seq;
        for (const RowEvent& event : Coalesce(std::move(changes))) {
            if (schemas_.count(event.table)) {
                DeliverLocked(event);
                ++delivered;
            }
        }
    }
    // After the feed: a row whose latest change the feed still held was delivered above, with its latest state.
    if (gap) delivered += Resync(seen, oldest);
    Log(LogLevel::kInfo, "observer: caught up to change " + std::to_string(from) + " (" + std::to_string(delivered) +
                             " row events re-read " + why + ")");
}

std::size_t Observer::Resync(std::int64_t seen, std::int64_t oldest) {
    std::vector<SubPtr> instance;
    std::map<std::pair<GenericConsumer*, std::string>, std::vector<SubPtr>> table;  // by consumer and table
    {
        std::lock_guard<std::mutex> lock(mutex_);
        for (const auto& [key, subs] : instance_) {
            for (const auto& [order, sub] : subs) instance.push_back(sub);
        }
        for (const auto& [name, subs] : table_subs_) {
            for (const auto& [order, sub] : subs) table[{sub->consumer, sub->table}].push_back(sub);
        }
    }
    std::size_t pushed = 0;
    auto current = [&](GenericConsumer& consumer, const std::string& name, const Value& pk, std::int64_t version) {
        RowEvent event;
        event.table = name;
        event.pk = pk;
        event.version = version;
        event.row = consumer.store().Get(name, consumer.schema().pk().name, pk);
        return event;
    };
    for (const SubPtr& sub : instance) {
        auto schema = schemas_.find(sub->table);
        if (schema == schemas_.end()) continue;
        ModelStore& store = sub->consumer->store();
        try {
            std::int64_t version = store.RowVersion(sub->table, sub->pk);
            if (version <= sub->last_version.load()) continue;
            RowEvent event = current(*sub->consumer, sub->table, sub->pk, version);
            EventPush push(event, *schema->second, true);
            push.ToInstanceSubscriber(*sub);
            pushed += push.frames_sent();
        } catch (const std::exception& e) {
            Log(LogLevel::kError, "observer: could not re-read a row after a gap: " + std::string(e.what()));
        }
    }
    for (const auto& [key, subs] : table) {
        auto schema = schemas_.find(key.second);
        if (schema == schemas_.end()) continue;
        GenericConsumer& consumer = *key.first;
        try {
            std::optional<std::vector<ModelStore::ChangedRow>> changed =
                consumer.store().ChangedSince(key.second, seen);
            if (!changed) {
                Log(LogLevel::kWarn, "observer: the versions of " + key.second + " after change " +
                                         std::to_string(seen) +
                                         " are no longer known; list and group subscribers "
                                         "get their next changes only");
                continue;
            }
            for (const ModelStore::ChangedRow& row : *changed) {
                if (row.version >= oldest) continue;  // its latest change was in the feed
                RowEvent event = current(consumer, key.second, row.pk, row.version);
                EventPush push(event, *schema->second, true);
                for (const SubPtr& sub : subs) push.ToTableSubscriber(*sub);
                pushed += push.frames_sent();
            }
        } catch (const std::exception& e) {
            Log(LogLevel::kError, "observer: could not re-read rows after a gap: " + std::string(e.what()));
        }
    }
    return pushed;
}

ObserverStats Observer::stats() const {
    ObserverStats stats;
    {
        std::lock_guard<std::mutex> lock(stats_mutex_);
        stats = stats_;
    }
    std::lock_guard<std::mutex> lock(queue_mutex_);
    stats.coalesced = coalesced_;
    stats.queued = queued_.size();
    stats.overflows = overflows_;
    return stats;
}

}  // namespace syncline::observer
