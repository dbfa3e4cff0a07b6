// The observer's fan-out: events from the bus (or re-read from the change feed after a bus outage) are de-duplicated
// by version and pushed to the subscriptions they concern (observer_registry.cpp keeps those).
#include <syncline/observer/observer.hpp>

#include <syncline/core/log.hpp>

#include "subscription.hpp"

#include <rapidjson/document.h>

#include <algorithm>
#include <map>
#include <tuple>
#include <unordered_set>

namespace syncline::observer {
namespace {

// The last versions remembered per row for de-duplication; past this many rows, the oldest half is forgotten.
constexpr std::size_t kMaxRememberedRows = 200000;

}  // namespace

Observer::Observer(std::vector<Schema> models, Bus& bus, ChannelLayout layout, std::unique_ptr<ChangeSource> catch_up)
    : models_(std::move(models)), bus_(bus), layout_(std::move(layout)), catch_up_(std::move(catch_up)) {
    for (const auto& s : models_) schemas_[s.table()] = &s;
}

Observer::~Observer() = default;

void Observer::Start() {
    if (catch_up_) last_seen_.store(catch_up_->LatestSeq());
    bus_.SetHandler([this](std::string_view channel, std::string_view payload) { OnMessage(channel, payload); });
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
    std::optional<RowEvent> event = DecodeEvent(payload, schemas_);
    if (!event) {
        Log(LogLevel::kWarn, "observer: dropped a malformed event on " + std::string(channel));
        return;
    }
    Deliver(*event);
}

void Observer::Deliver(const RowEvent& event) {
    std::int64_t seen = last_seen_.load();
    while (event.version > seen && !last_seen_.compare_exchange_weak(seen, event.version)) {
    }
    {
        std::lock_guard<std::mutex> lock(stats_mutex_);
        ++stats_.events;
    }
    std::vector<SubPtr> instance_subs, table_subs;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (auto it = instance_.find(RowKey(event.table, event.pk)); it != instance_.end()) {
            instance_subs.reserve(it->second.size());
            for (const auto& [order, sub] : it->second) instance_subs.push_back(sub);
        }
        if (auto it = table_subs_.find(event.table); it != table_subs_.end()) {
            table_subs.reserve(it->second.size());
            for (const auto& [order, sub] : it->second) table_subs.push_back(sub);
        }
    }
    // Nothing to remember for a row nobody here watches: a replayed older version reaching a later subscriber is
    // still dropped, by the subscription's own version (instance) or by the newer version remembered once it is
    // delivered (groups).
    if (instance_subs.empty() && table_subs.empty()) return;
    if (SeenBefore(event)) {
        std::lock_guard<std::mutex> lock(stats_mutex_);
        ++stats_.duplicates;
        return;
    }
    auto schema_it = schemas_.find(event.table);
    if (schema_it == schemas_.end()) return;
    const Schema& schema = *schema_it->second;
    std::optional<Row> old_row;
    if (event.old_json) {
        try {
            old_row = RowFromJson(schema, *event.old_json);
        } catch (const std::invalid_argument&) {
            Log(LogLevel::kWarn, "observer: unreadable old row of " + event.table);
        }
    }

    // Serialized once per consumer and version; every socket gets the same bytes plus its request_id.
    struct Frames {
        std::optional<std::string> represented_new, represented_old;
        std::map<std::string, std::string> prefixes;  // by action
    };
    std::unordered_map<GenericConsumer*, Frames> frames;
    std::uint64_t serializations = 0;
    auto represent = [&](GenericConsumer* consumer, bool new_state) -> const std::string& {
        Frames& f = frames[consumer];
        auto& slot = new_state ? f.represented_new : f.represented_old;
        if (!slot) {
            slot = consumer->Represent(new_state ? *event.row : *old_row);
            ++serializations;
        }
        return *slot;
    };
    auto prefix = [&](GenericConsumer* consumer, const std::string& action, int status,
                      const std::function<std::string()>& data) -> const std::string& {
        auto& map = frames[consumer].prefixes;
        std::string slot_key = action + ":" + std::to_string(status);
        auto it = map.find(slot_key);
        if (it == map.end()) it = map.emplace(slot_key, PushPrefix(action, status, data(), event.version)).first;
        return it->second;
    };

    rapidjson::Document message;
    message.SetObject();
    message.AddMember("action", "subscribe_instance", message.GetAllocator());
    if (event.pk.kind() == Value::Kind::kInteger) {
        message.AddMember("pk", static_cast<int64_t>(event.pk.AsInteger()), message.GetAllocator());
    } else if (event.pk.kind() == Value::Kind::kText) {
        message.AddMember("pk", rapidjson::Value(event.pk.AsText().c_str(), message.GetAllocator()),
                          message.GetAllocator());
    }
    std::string pk_json = JsonOfValue(event.pk);
    std::uint64_t sent = 0;
    // A permission that throws skips that socket's push; logged once per event, not once per socket.
    bool permission_failure_logged = false;
    auto permission_failed = [&](const std::exception& e) {
        if (permission_failure_logged) return;
        permission_failure_logged = true;
        Log(LogLevel::kError, "observer: a permission check failed for a push of " + event.table + " " + pk_json +
                                  " (the push is skipped for those sockets): " + e.what());
    };

    // The complete frame (and its coalescing key) per consumer, kind and request_id: subscribers that share a
    // request_id get the same SharedFrame, which the transport prepares once for all of their sockets.
    struct SharedPush {
        std::shared_ptr<const SharedFrame> frame;
        std::string key;
    };
    std::map<std::tuple<GenericConsumer*, bool, std::string_view>, SharedPush> instance_frames;

    for (const SubPtr& sub : instance_subs) {
        std::shared_ptr<ConnectionContext> conn = sub->connection.lock();
        if (!conn || event.version <= sub->last_version.load()) continue;
        GenericConsumer* consumer = sub->consumer;
        ActionRequest request(*conn, "subscribe_instance", message);
        bool visible = false;
        try {
            if (!consumer->HasPermission(request)) continue;  // a denied push is not sent at all
            // A row the socket may not see (out of its queryset, or refused by an object permission) has left it.
            visible = event.row && consumer->CanSee(request, *event.row);
        } catch (const std::exception& e) {
            permission_failed(e);
            continue;
        }
        SharedPush& push = instance_frames[{consumer, visible, sub->request_id}];
        if (!push.frame) {
            const std::string& head =
                visible ? prefix(consumer, "update", 200, [&] { return represent(consumer, true); })
                        : prefix(consumer, "delete", 204, [&] { return "{\"pk\":" + pk_json + "}"; });
            push.frame = std::make_shared<const SharedFrame>(head + sub->request_id + "}");
            push.key = InstancePushKey(*consumer, event.pk, sub->request_id);
        }
        conn->Push(push.frame, push.key);
        sub->last_version.store(event.version);
        ++sent;
    }

    // Group and list subscriptions: membership before and after decides create, update or delete.
    std::map<const GroupObserver*, std::pair<std::vector<std::string>, std::vector<std::string>>> groups;
    std::map<std::tuple<GenericConsumer*, std::string, std::string_view>, std::shared_ptr<const SharedFrame>>
        group_frames;
    for (const SubPtr& sub : table_subs) {
        std::shared_ptr<ConnectionContext> conn = sub->connection.lock();
        if (!conn) continue;
        GenericConsumer* consumer = sub->consumer;
        std::string action_name = sub->kind == Sub::Kind::kList ? "subscribe_list" : sub->observer->subscribe_action;
        ActionRequest request(*conn, action_name, message);
        auto member = [&](const Row& row, bool is_new) {
            if (!consumer->CanSee(request, row)) return false;
            if (sub->kind == Sub::Kind::kList) return RowMatches(schema, row, sub->filter);
            auto& cached = groups[sub->observer.get()];
            auto& keys = is_new ? cached.second : cached.first;
            if (keys.empty()) {
                keys = sub->observer->row_groups(row);
                if (keys.empty()) keys.push_back(std::string("\x1f"));  // "no groups", cached
            }
            return std::find(keys.begin(), keys.end(), sub->group) != keys.end();
        };
        bool was = false;
        bool is = false;
        try {
            if (!consumer->HasPermission(request)) continue;
            was = old_row && member(*old_row, false);
            is = event.row && member(*event.row, true);
        } catch (const std::exception& e) {
            permission_failed(e);
            continue;
        }
        if (!was && !is) continue;
        std::string action = was && is ? "update" : was ? "delete" : "create";
        std::shared_ptr<const SharedFrame>& frame = group_frames[{consumer, action, sub->request_id}];
        if (!frame) {
            const std::string& head = prefix(consumer, action, 200, [&] { return represent(consumer, is); });
            frame = std::make_shared<const SharedFrame>(head + sub->request_id + "}");
        }
        conn->Push(frame, "g:" + std::to_string(reinterpret_cast<std::uintptr_t>(sub.get())) + ":" + pk_json);
        ++sent;
    }
    std::lock_guard<std::mutex> lock(stats_mutex_);
    stats_.frames += sent;
    stats_.serializations += serializations;
}

void Observer::CatchUp() {
    if (!catch_up_) return;
    {
        std::lock_guard<std::mutex> lock(stats_mutex_);
        ++stats_.catch_ups;
    }
    std::int64_t from = last_seen_.load();
    std::int64_t oldest = catch_up_->OldestSeq();
    if (oldest > from + 1) {
        Log(LogLevel::kWarn, "observer: changes " + std::to_string(from + 1) + ".." + std::to_string(oldest - 1) +
                                 " were trimmed before this process caught up; subscribers of rows changed then get "
                                 "their next change only");
    }
    std::size_t delivered = 0;
    while (true) {
        std::vector<ChangeEvent> changes = catch_up_->ReadAfter(from, 512);
        if (changes.empty()) break;
        from = changes.back().seq;
        for (const RowEvent& event : Coalesce(std::move(changes))) {
            if (schemas_.count(event.table)) {
                Deliver(event);
                ++delivered;
            }
        }
    }
    Log(LogLevel::kInfo, "observer: caught up to change " + std::to_string(from) + " (" + std::to_string(delivered) +
                             " row events re-read after the bus reconnected)");
}

ObserverStats Observer::stats() const {
    std::lock_guard<std::mutex> lock(stats_mutex_);
    return stats_;
}

}  // namespace syncline::observer
