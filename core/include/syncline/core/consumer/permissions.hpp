#pragma once
/// \file
/// Permissions (docs/protocol.md §8): each answers CanConnect at the handshake, HasPermission per request, and (object
/// level, ext) HasObjectPermission per row with ObjectFilter as its SQL form. They compose with And / Or / Not.
///
/// Where they run: CanConnect in ConsumerEndpoint::Admit (false: HTTP 403); HasPermission in
/// GenericConsumer::Dispatch before the action lookup (false: 403, so 403 beats 405); HasObjectPermission in
/// GenericConsumer::GetObject once the row is found (retrieve, update, patch, delete, subscribe_instance; false:
/// 403), and for `list` as a filter (ObjectFilter in SQL when every permission has one, else HasObjectPermission on
/// each row in memory), so a list never shows a row retrieve would refuse; pushes re-check both (GenericConsumer::
/// CanSee): a row the socket may no longer see is pushed as a delete.
///
/// Thread safety: a permission is shared by every connection of its consumers; every method is called concurrently
/// and must be thread-safe, and should not block. A method that throws answers 500 in a request (logged), refuses
/// the handshake with 500, and skips the push (logged once per event).

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <syncline/core/consumer/consumer.hpp>

namespace syncline {

/// A permission. Override HasPermission (action level) and, for object-level rules, HasObjectPermission together
/// with ObjectFilter.
class Permission {
public:
    virtual ~Permission() = default;
    /// May this connection open? false refuses the handshake with HTTP 403. The connection's user is set. Default:
    /// true.
    virtual bool CanConnect(const ConnectionContext& connection) const;
    /// May this request run? false answers 403 before the action is even looked up.
    virtual bool HasPermission(const ActionRequest& request, const GenericConsumer& consumer) const = 0;
    /// May this request act on (or see) this row? Asked only after HasPermission allowed the request. Default: true.
    virtual bool HasObjectPermission(const ActionRequest& request, const GenericConsumer& consumer,
                                     const Row& row) const;
    /// The SQL form of HasObjectPermission for this request: filters that select exactly the rows it allows (an
    /// empty list: every row), or nullopt when there is none, in which case `list` checks each row in memory with
    /// HasObjectPermission (correct, but it reads the whole queryset). Default: nullopt, the safe answer for a
    /// subclass that overrides HasObjectPermission; permissions without object-level rules should return an empty
    /// list so lists stay in SQL.
    virtual std::optional<std::vector<Filter>> ObjectFilter(const ActionRequest& request,
                                                            const GenericConsumer& consumer) const;
};

/// A shared, immutable permission: what consumers and the combinators hold.
using PermissionPtr = std::shared_ptr<const Permission>;

/// Allows everything (the default).
class AllowAny final : public Permission {
public:
    bool HasPermission(const ActionRequest& request, const GenericConsumer& consumer) const override;
    std::optional<std::vector<Filter>> ObjectFilter(const ActionRequest& request,
                                                    const GenericConsumer& consumer) const override;
};

/// Only authenticated users may run actions. Anonymous sockets still connect (as in DCRF) and every action answers
/// 403; use the `anonymous: refuse` authentication policy to refuse them at the handshake.
class IsAuthenticated final : public Permission {
public:
    bool HasPermission(const ActionRequest& request, const GenericConsumer& consumer) const override;
    std::optional<std::vector<Filter>> ObjectFilter(const ActionRequest& request,
                                                    const GenericConsumer& consumer) const override;
};

/// Allows the actions that do not write (ActionSpec::writes false: list, retrieve, subscriptions, ...). An action
/// the consumer does not have is allowed, so it answers 405 rather than 403.
class ReadOnly final : public Permission {
public:
    bool HasPermission(const ActionRequest& request, const GenericConsumer& consumer) const override;
    std::optional<std::vector<Filter>> ObjectFilter(const ActionRequest& request,
                                                    const GenericConsumer& consumer) const override;
};

/// Whether a field can hold a user's id (OwnerValue): integer, text or datetime (text).
bool CanHoldOwner(const FieldSpec& field);

/// The value that `field` holds in the rows `user` owns, or nullopt when the user owns none. Ids compare exactly, by
/// type, never by coercion:
/// - an integer field holds a user whose User::id is the canonical decimal text of an integer: exactly what the
///   integer prints as (`std::to_string`), which is what a JSON integer claim or token-table id becomes. So "1" and
///   "-7" are integers; "01", "+1", " 1", "1 ", "1.0", "1e0", "0x1", "-0" and "" are not, and own no integer row;
/// - a text (or datetime) field holds the id's exact text: "01" owns "01", never "1".
/// Anonymous users (or an empty id) own nothing. Throws std::invalid_argument naming the field when it cannot hold an
/// owner (real, boolean, json: CanHoldOwner). Pure, thread-safe.
std::optional<Value> OwnerValue(const FieldSpec& field, const User& user);

/// Object level: a row is allowed when its `field` holds the user's id (OwnerValue: an integer field only for a
/// canonical integer id, a text field for the exact text). Anonymous users own nothing. Every request passes the
/// action-level check; `list` shows only the user's rows (in SQL, with the same typed value as the in-memory check
/// of retrieve, writes and pushes, so both forms agree), other rows answer 403. The field must be an integer or text
/// field of the consumer's model (else each check throws std::invalid_argument naming it: a 500).
class IsOwner final : public Permission {
public:
    /// `field`: the field holding the owner's id. Throws std::invalid_argument when empty.
    explicit IsOwner(std::string field);
    bool HasPermission(const ActionRequest& request, const GenericConsumer& consumer) const override;
    bool HasObjectPermission(const ActionRequest& request, const GenericConsumer& consumer,
                             const Row& row) const override;
    std::optional<std::vector<Filter>> ObjectFilter(const ActionRequest& request,
                                                    const GenericConsumer& consumer) const override;
    /// The owner field.
    const std::string& field() const { return field_; }

private:
    std::string field_;
};

/// Allows requests of users in the group `group` (User::groups).
class InGroup final : public Permission {
public:
    /// `group`: the group name a user must have.
    explicit InGroup(std::string group);
    bool HasPermission(const ActionRequest& request, const GenericConsumer& consumer) const override;
    std::optional<std::vector<Filter>> ObjectFilter(const ActionRequest& request,
                                                    const GenericConsumer& consumer) const override;

private:
    std::string group_;
};

/// Every permission must allow: CanConnect, HasPermission and HasObjectPermission are all ANDed; ObjectFilter
/// concatenates the parts' filters when each has one (else nullopt). Throws std::invalid_argument for an empty list
/// or a null part.
PermissionPtr AllOf(std::vector<PermissionPtr> parts);
/// At least one permission must allow: CanConnect and HasPermission are ORed; an object is allowed when some part
/// allows both the request and the object (DRF's OR since 3.14, so Or(IsAdmin, IsOwner) lets owners see only their
/// rows). ObjectFilter: an empty list when a part allowing the request has no object rule, a part's filters when
/// only that part allows the request, else nullopt (each row checked in memory). Throws std::invalid_argument for
/// an empty list or a null part.
PermissionPtr AnyOf(std::vector<PermissionPtr> parts);
/// AllOf({a, b}).
PermissionPtr And(PermissionPtr a, PermissionPtr b);
/// AnyOf({a, b}).
PermissionPtr Or(PermissionPtr a, PermissionPtr b);
/// Negates HasPermission and HasObjectPermission, as DRF's `~` does (so Not(IsOwner()) refuses every request: the
/// owner rule's action-level check always allows). CanConnect is not negated: always true, since negating a
/// permission that does not look at the handshake would refuse every socket. ObjectFilter: nullopt. Throws
/// std::invalid_argument for a null part.
PermissionPtr Not(PermissionPtr a);

}  // namespace syncline
