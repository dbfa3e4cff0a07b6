#pragma once
/// \file
/// Subscriptions (docs/protocol.md §6-§7) as consumers see them: the registry interface the observer implements, and
/// the mixins that install the subscribe/unsubscribe actions.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <syncline/core/consumer/consumer.hpp>

namespace syncline {

/// A group observer over a consumer's model: the C++ counterpart of DCRF's @model_observer. When a row changes, the
/// groups it left get a `delete` push, the groups it stayed in an `update`, the groups it entered a `create`.
struct GroupObserver {
    std::string subscribe_action = "subscribe_group";
    std::string unsubscribe_action = "unsubscribe_group";
    /// The groups a row belongs to (e.g. {"author:alice", "all"}). Called on the observer's thread.
    std::function<std::vector<std::string>(const Row& row)> row_groups;
    /// The groups a subscribe or unsubscribe request names; return an error ActionResult (e.g. 400) to refuse it.
    std::function<Result<std::vector<std::string>>(const ActionRequest& request)> request_groups;
};

/// One instance subscription as requested.
struct InstanceSubscription {
    Value pk;            ///< The row's primary key.
    Value lookup_value;  ///< The value the client addressed the row by (matches a later unsubscribe).
    std::string request_id;  ///< The request_id as JSON text.
};

/// Subscriptions just added and not started yet. Until Start, the changes that concern them are held, not pushed, so
/// that the subscribing action can read what the subscriber already has (a row's version, a list's snapshot) after
/// the subscription exists and before any push: nothing committed after that read is missed, and nothing in it is
/// pushed again. Destroyed without Start (the action failed), the subscriptions are removed again.
class PendingSubscriptions {
public:
    virtual ~PendingSubscriptions() = default;
    /// Starts the subscriptions at `version` (the version of what the subscriber has: a row's, or a snapshot's): the
    /// held changes newer than it are pushed now, in order, then every later one as it comes; a change at or below
    /// it never is (for an instance subscription, nor one below the version of a push the action already made).
    /// Call once, after the action queued its reply's pushes.
    ///
    /// `newer_rows`: rows the action already sent at a version above `version`, each with that version (a snapshot
    /// may hold changes committed after its version: on PostgreSQL, those that committed while it waited for older
    /// transactions). For a group or list subscription, a change of such a row at or below its version is not pushed
    /// either: the subscriber has it.
    virtual void Start(std::int64_t version, std::vector<std::pair<Value, std::int64_t>> newer_rows) = 0;
};

/// Where subscriptions live. Implemented by the observer; every method is thread-safe and costs O(log n) in the
/// number of subscriptions held (per row, group or connection), never a scan of a connection's or the server's.
///
/// Each connection may hold at most `connection.limits().max_subscriptions` subscriptions (one per row, group or
/// list subscribed, per request_id), and its list subscriptions at most `max_list_filter_values` filter values
/// together (an `__in` list counts its values, any other condition one): a Subscribe call that would go beyond either
/// returns nullptr and adds nothing. Adding one that the connection already holds changes nothing (its pending part
/// is empty). Every Subscribe returns the subscriptions it added as PendingSubscriptions, which the caller starts.
class SubscriptionRegistry {
public:
    virtual ~SubscriptionRegistry() = default;
    /// Adds an instance subscription; the same connection, consumer, row and request_id again changes nothing.
    virtual std::unique_ptr<PendingSubscriptions> SubscribeInstance(ConnectionContext& connection,
                                                                    GenericConsumer& consumer,
                                                                    InstanceSubscription subscription) = 0;
    /// Removes the connection's subscriptions of `consumer` to the row addressed by `lookup_value`: only the one with
    /// `request_id` when given, else all of them.
    virtual void UnsubscribeInstance(ConnectionContext& connection, GenericConsumer& consumer,
                                     const Value& lookup_value, const std::optional<std::string>& request_id) = 0;
    /// Adds group subscriptions of one observer of `consumer` (all of them, or none when the limit would be passed).
    virtual std::unique_ptr<PendingSubscriptions> SubscribeGroups(ConnectionContext& connection,
                                                                  GenericConsumer& consumer,
                                                                  std::shared_ptr<const GroupObserver> observer,
                                                                  const std::vector<std::string>& groups,
                                                                  const std::string& request_id) = 0;
    /// Removes group subscriptions (only `request_id`'s when given).
    virtual void UnsubscribeGroups(ConnectionContext& connection, GenericConsumer& consumer,
                                   const GroupObserver& observer, const std::vector<std::string>& groups,
                                   const std::optional<std::string>& request_id) = 0;
    /// Adds a filtered-list subscription: rows entering, changing in and leaving the filter (within the consumer's
    /// queryset) are pushed as create, update and delete. The same request_id again replaces the filter.
    virtual std::unique_ptr<PendingSubscriptions> SubscribeList(ConnectionContext& connection,
                                                                GenericConsumer& consumer, std::vector<Filter> filter,
                                                                const std::string& request_id) = 0;
    /// Removes list subscriptions (only `request_id`'s when given).
    virtual void UnsubscribeList(ConnectionContext& connection, GenericConsumer& consumer,
                                 const std::optional<std::string>& request_id) = 0;
    /// Drops every subscription of a connection (it closed).
    virtual void DropConnection(ConnectionContext& connection) = 0;
};

/// The 429 answer to a subscribe beyond the connection's subscription limit.
ActionResult SubscriptionLimitReply(const ConnectionContext& connection);

/// DCRF's ObserverModelInstanceMixin: `retrieve`, `subscribe_instance` (201; `since` pushes the current state right
/// after the reply when the row changed later) and `unsubscribe_instance` (204).
Mixin ObserverModelInstanceMixin();

/// The subscribe/unsubscribe actions of a group observer.
Mixin ModelObserverMixin(GroupObserver observer);

/// `subscribe_list` (201, `{"filter": {"author": "alice"}}`, Django lookups on the serializer's fields) and
/// `unsubscribe_list` (204).
Mixin ListObserverMixin();

/// The push frame of an instance or group change, minus its request_id: `{"errors":[],"data":<data>,"action":
/// "<action>","response_status":<status>,"version":<version>,"epoch":"<epoch>","request_id":`. Append the
/// request_id's JSON text and "}" to finish it; the prefix is built once per consumer and version and shared by every
/// subscriber. `epoch` is the store's (hex digits, written as they are).
std::string PushPrefix(std::string_view action, int status, std::string_view data_json, std::int64_t version,
                       std::string_view epoch);

/// A key value as JSON (integers as numbers, text as strings).
std::string JsonOfValue(const Value& value);

/// The coalescing key of an instance push: one per consumer, row and request_id.
std::string InstancePushKey(const GenericConsumer& consumer, const Value& pk, std::string_view request_id);

/// The permission checks of one push (permissions.hpp: pushes re-check HasPermission and CanSee). Permissions see a
/// push to a subscriber as a request, on the subscriber's connection, of the action that made the subscription
/// (`subscribe_instance`, `subscribe_list`, a group observer's subscribe action) whose message is
/// `{"action": <that action>, "pk": <the row's pk>}` (pk only when it is an integer or text): no request_id, which
/// is how a permission tells a push from the client's own subscribe. Built once per pushed row and action, then asked
/// for each subscriber. Immutable: its methods may run concurrently. They throw what a permission throws; the caller
/// then skips that subscriber's push.
class PushCheck {
public:
    PushCheck(std::string action, const Value& pk);
    PushCheck(const PushCheck&) = delete;
    PushCheck& operator=(const PushCheck&) = delete;

    /// Whether `consumer`'s permissions let the push reach `connection` (GenericConsumer::HasPermission): false, the
    /// push is not sent at all.
    bool Allowed(const GenericConsumer& consumer, ConnectionContext& connection) const;
    /// Whether `connection` may see `row` through `consumer` (GenericConsumer::CanSee: its queryset and object
    /// permissions): false, the row is outside that socket's view (an instance push becomes a delete).
    bool CanSee(const GenericConsumer& consumer, ConnectionContext& connection, const Row& row) const;
    /// Allowed, then (when it is, and `row` is given) CanSee, asked of one request: what an instance push needs.
    enum class Verdict { kDenied, kHidden, kVisible };
    Verdict AllowedAndSees(const GenericConsumer& consumer, ConnectionContext& connection, const Row* row) const;
    /// The action permissions see.
    const std::string& action() const { return action_; }

private:
    std::string action_;
    rapidjson::Document message_;
};

/// Parses a list filter object (`{"author": "alice", "likes__gte": 3}`), as `list`, streamed lists and
/// `subscribe_list` take it: only the consumer's filter_fields (never a write-only field), only known lookups, and
/// `__in` lists of at most `limits.max_filter_values` values; anything else answers 400 naming the key.
Result<std::vector<Filter>> ParseListFilter(const GenericConsumer& consumer, const rapidjson::Value* filter,
                                            const ConnectionLimits& limits);

}  // namespace syncline
