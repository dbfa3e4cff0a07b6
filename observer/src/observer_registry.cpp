// The observer's subscription registry (Observer's SubscriptionRegistry side): subscribe, unsubscribe and drop per
// kind (instance, group, list), each indexed by row or table for delivery, by identity and by unsubscribe target per
// connection, under the per-connection cap; and the bus channels they retain while any subscription needs them.
#include <syncline/observer/observer.hpp>

#include "subscription.hpp"

#include <algorithm>
#include <string_view>

namespace syncline::observer {
namespace {

// Keys of a connection's subscriptions. Parts are length-prefixed, so no text a client chooses (a pk, a group, a
// request_id) can make two different subscriptions share a key.
void AppendPart(std::string& key, std::string_view part) {
    key += std::to_string(part.size());
    key += ':';
    key += part;
}

std::string Target(char kind, const GenericConsumer& consumer, std::string_view what) {
    std::string key(1, kind);
    AppendPart(key, std::to_string(reinterpret_cast<std::uintptr_t>(&consumer)));
    AppendPart(key, what);
    return key;
}

std::string GroupWhat(const GroupObserver& observer, std::string_view group) {
    std::string what;
    AppendPart(what, std::to_string(reinterpret_cast<std::uintptr_t>(&observer)));
    AppendPart(what, group);
    return what;
}

std::string Identity(const std::string& target, std::string_view request_id) {
    std::string key = target;
    AppendPart(key, request_id);
    return key;
}

// What a list subscription's filter counts toward ConnectionLimits::max_list_filter_values.
std::size_t FilterValues(const std::vector<Filter>& filter) {
    std::size_t n = 0;
    for (const Filter& f : filter) n += f.op == FilterOp::kIn ? f.values.size() : 1;
    return n;
}

}  // namespace

// The subscriptions one Subscribe call added, held until Start.
class Observer::Pending final : public PendingSubscriptions {
public:
    Pending(Observer& observer, std::uint64_t connection_id, std::vector<SubPtr> subs)
        : observer_(observer), connection_id_(connection_id), subs_(std::move(subs)) {}
    ~Pending() override {
        if (!started_ && !subs_.empty()) observer_.Cancel(connection_id_, subs_);
    }
    void Start(std::int64_t version, std::vector<std::pair<Value, std::int64_t>> newer_rows) override {
        if (started_) return;
        started_ = true;
        for (const SubPtr& sub : subs_) observer_.StartSub(*sub, version, newer_rows);
    }

private:
    Observer& observer_;
    std::uint64_t connection_id_;
    std::vector<SubPtr> subs_;
    bool started_ = false;
};

void Observer::Cancel(std::uint64_t connection_id, const std::vector<SubPtr>& subs) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto conn_it = by_connection_.find(connection_id);
    if (conn_it == by_connection_.end()) return;
    ConnectionSubs& connection_subs = conn_it->second;
    for (const SubPtr& sub : subs) {
        auto found = connection_subs.by_identity.find(sub->identity);
        if (found != connection_subs.by_identity.end() && found->second == sub) Remove(connection_subs, sub);
    }
    if (connection_subs.by_identity.empty()) by_connection_.erase(conn_it);
}

void Observer::Retain(const std::string& channel) {
    // Called with mutex_ held. The bus carries every channel already (Start); this only tells OnMessage it is needed.
    ++channel_refs_[channel];
}

std::set<std::string> Observer::needed_channels() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::set<std::string> needed;
    for (const auto& [channel, refs] : channel_refs_) needed.insert(channel);
    return needed;
}

void Observer::Release(const std::string& channel) {
    auto it = channel_refs_.find(channel);
    if (it == channel_refs_.end()) return;
    if (--it->second == 0) channel_refs_.erase(it);
}

Observer::SubPtr Observer::NewSub(ConnectionContext& connection, GenericConsumer& consumer, std::string identity) {
    auto sub = std::make_shared<Sub>();
    sub->connection = connection.shared_from_this();
    sub->connection_id = connection.id();
    sub->consumer = &consumer;
    sub->table = consumer.options().model;
    sub->identity = std::move(identity);
    return sub;
}

void Observer::Add(ConnectionSubs& subs, const SubPtr& sub, std::vector<std::string> targets,
                   std::vector<std::string> channels) {
    // Indexed under each target alone (unsubscribing every request_id) and with its request_id (unsubscribing one).
    sub->targets.clear();
    for (auto& target : targets) {
        sub->targets.push_back(Identity(target, sub->request_id));
        sub->targets.push_back(std::move(target));
    }
    sub->channels = std::move(channels);
    sub->order = next_order_++;
    for (const auto& c : sub->channels) Retain(c);
    subs.by_identity.emplace(sub->identity, sub);
    for (const auto& target : sub->targets) subs.by_target[target].emplace(sub->identity, sub);
    if (sub->kind == Sub::Kind::kList) subs.list_filter_values += FilterValues(sub->filter);
    if (sub->kind == Sub::Kind::kInstance) {
        instance_[RowKey(sub->table, sub->pk)].emplace(sub->order, sub);
    } else {
        table_subs_[sub->table].emplace(sub->order, sub);
    }
    ++subscription_count_;
}

void Observer::Remove(ConnectionSubs& subs, const SubPtr& sub) {
    for (const auto& c : sub->channels) Release(c);
    auto& index = sub->kind == Sub::Kind::kInstance ? instance_ : table_subs_;
    const std::string key = sub->kind == Sub::Kind::kInstance ? RowKey(sub->table, sub->pk) : sub->table;
    if (auto found = index.find(key); found != index.end()) {
        found->second.erase(sub->order);
        if (found->second.empty()) index.erase(found);
    }
    for (const auto& target : sub->targets) {
        if (auto found = subs.by_target.find(target); found != subs.by_target.end()) {
            found->second.erase(sub->identity);
            if (found->second.empty()) subs.by_target.erase(found);
        }
    }
    subs.by_identity.erase(sub->identity);
    if (sub->kind == Sub::Kind::kList) subs.list_filter_values -= FilterValues(sub->filter);
    --subscription_count_;
}

void Observer::RemoveTarget(std::uint64_t connection_id, const std::string& target,
                            const std::optional<std::string>& request_id) {
    auto conn_it = by_connection_.find(connection_id);
    if (conn_it == by_connection_.end()) return;
    ConnectionSubs& subs = conn_it->second;
    auto target_it = subs.by_target.find(request_id ? Identity(target, *request_id) : target);
    if (target_it == subs.by_target.end()) return;
    std::vector<SubPtr> doomed;
    doomed.reserve(target_it->second.size());
    for (const auto& [identity, sub] : target_it->second) doomed.push_back(sub);
    for (const SubPtr& sub : doomed) Remove(subs, sub);
    if (subs.by_identity.empty()) by_connection_.erase(conn_it);
}

std::unique_ptr<PendingSubscriptions> Observer::SubscribeInstance(ConnectionContext& connection,
                                                                  GenericConsumer& consumer,
                                                                  InstanceSubscription subscription) {
    std::string channel = layout_.ForRow(consumer.options().model, subscription.pk);
    std::vector<SubPtr> added;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        ConnectionSubs& subs = by_connection_[connection.id()];
        std::string row_target = Target('i', consumer, subscription.pk.DebugString());
        std::string identity = Identity(row_target, subscription.request_id);
        if (subs.by_identity.count(identity) == 0) {
            if (subs.by_identity.size() >= connection.limits().max_subscriptions) {
                if (subs.by_identity.empty()) by_connection_.erase(connection.id());
                return nullptr;
            }
            SubPtr sub = NewSub(connection, consumer, std::move(identity));
            sub->kind = Sub::Kind::kInstance;
            sub->request_id = std::move(subscription.request_id);
            added.push_back(sub);
            // Unsubscribing names the row by the lookup value the client used, or by its pk.
            std::vector<std::string> targets{row_target};
            if (!(subscription.lookup_value == subscription.pk)) {
                targets.push_back(Target('i', consumer, subscription.lookup_value.DebugString()));
            }
            sub->pk = std::move(subscription.pk);
            sub->lookup_value = std::move(subscription.lookup_value);
            Add(subs, sub, std::move(targets), {channel});
        }  // else: subscribing twice with the same request_id changes nothing
    }
    return std::make_unique<Pending>(*this, connection.id(), std::move(added));
}

void Observer::UnsubscribeInstance(ConnectionContext& connection, GenericConsumer& consumer, const Value& lookup_value,
                                   const std::optional<std::string>& request_id) {
    std::lock_guard<std::mutex> lock(mutex_);
    RemoveTarget(connection.id(), Target('i', consumer, lookup_value.DebugString()), request_id);
}

std::unique_ptr<PendingSubscriptions> Observer::SubscribeGroups(ConnectionContext& connection,
                                                                GenericConsumer& consumer,
                                                                std::shared_ptr<const GroupObserver> observer,
                                                                const std::vector<std::string>& groups,
                                                                const std::string& request_id) {
    const std::string& table = consumer.options().model;
    std::vector<SubPtr> added;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        ConnectionSubs& subs = by_connection_[connection.id()];
        // The groups not subscribed yet, each once.
        struct Fresh {
            std::string target, identity;
            const std::string* group;
        };
        std::vector<Fresh> fresh;
        for (const auto& group : groups) {
            std::string target = Target('g', consumer, GroupWhat(*observer, group));
            std::string identity = Identity(target, request_id);
            if (subs.by_identity.count(identity) != 0) continue;
            if (std::any_of(fresh.begin(), fresh.end(), [&](const Fresh& f) { return f.identity == identity; })) {
                continue;
            }
            fresh.push_back(Fresh{std::move(target), std::move(identity), &group});
        }
        if (subs.by_identity.size() + fresh.size() > connection.limits().max_subscriptions) {
            if (subs.by_identity.empty()) by_connection_.erase(connection.id());
            return nullptr;
        }
        for (Fresh& f : fresh) {
            SubPtr sub = NewSub(connection, consumer, std::move(f.identity));
            sub->kind = Sub::Kind::kGroup;
            sub->request_id = request_id;
            sub->observer = observer;
            sub->group = *f.group;
            Add(subs, sub, {std::move(f.target)}, layout_.ForTable(table));
            added.push_back(sub);
        }
    }
    return std::make_unique<Pending>(*this, connection.id(), std::move(added));
}

void Observer::UnsubscribeGroups(ConnectionContext& connection, GenericConsumer& consumer,
                                 const GroupObserver& observer, const std::vector<std::string>& groups,
                                 const std::optional<std::string>& request_id) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& group : groups) {
        RemoveTarget(connection.id(), Target('g', consumer, GroupWhat(observer, group)), request_id);
    }
}

std::unique_ptr<PendingSubscriptions> Observer::SubscribeList(ConnectionContext& connection, GenericConsumer& consumer,
                                                              std::vector<Filter> filter,
                                                              const std::string& request_id) {
    const std::string& table = consumer.options().model;
    std::vector<SubPtr> added;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        ConnectionSubs& subs = by_connection_[connection.id()];
        std::string target = Target('l', consumer, "");
        std::string identity = Identity(target, request_id);
        // The same request_id again replaces the filter.
        auto same = subs.by_identity.find(identity);
        const std::size_t replaced = same == subs.by_identity.end() ? 0 : FilterValues(same->second->filter);
        if ((same == subs.by_identity.end() && subs.by_identity.size() >= connection.limits().max_subscriptions) ||
            subs.list_filter_values - replaced + FilterValues(filter) > connection.limits().max_list_filter_values) {
            if (subs.by_identity.empty()) by_connection_.erase(connection.id());
            return nullptr;
        }
        if (same != subs.by_identity.end()) Remove(subs, SubPtr(same->second));
        SubPtr sub = NewSub(connection, consumer, std::move(identity));
        sub->kind = Sub::Kind::kList;
        sub->request_id = request_id;
        sub->filter = std::move(filter);
        Add(subs, sub, {std::move(target)}, layout_.ForTable(table));
        added.push_back(sub);
    }
    return std::make_unique<Pending>(*this, connection.id(), std::move(added));
}

void Observer::UnsubscribeList(ConnectionContext& connection, GenericConsumer& consumer,
                               const std::optional<std::string>& request_id) {
    std::lock_guard<std::mutex> lock(mutex_);
    RemoveTarget(connection.id(), Target('l', consumer, ""), request_id);
}

void Observer::DropConnection(ConnectionContext& connection) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto conn_it = by_connection_.find(connection.id());
    if (conn_it == by_connection_.end()) return;
    ConnectionSubs& subs = conn_it->second;
    std::vector<SubPtr> all;
    all.reserve(subs.by_identity.size());
    for (const auto& [identity, sub] : subs.by_identity) all.push_back(sub);
    for (const SubPtr& sub : all) Remove(subs, sub);
    by_connection_.erase(conn_it);
}

std::size_t Observer::subscription_count() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return subscription_count_;
}

}  // namespace syncline::observer
