// The built-in permissions and the and / or / not combinators.

#include <syncline/core/consumer/permissions.hpp>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <system_error>

namespace syncline {
namespace {

// Matches no row, in SQL (an empty IN is "0") and in memory (RowMatches) alike.
Filter NothingFilter(const std::string& field) { return Filter{field, FilterOp::kIn, Value(), {}}; }

// The integer whose canonical decimal text `id` is, if it is one: digits, an optional leading '-', no leading zero
// (but "0" itself), within 64 bits. Never a lookup-style coercion: "01" must not become 1.
std::optional<std::int64_t> CanonicalInteger(const std::string& id) {
    std::int64_t value = 0;
    auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), value);
    if (ec != std::errc() || end != id.data() + id.size()) return std::nullopt;
    if (std::to_string(value) != id) return std::nullopt;  // "01", "-0", and anything from_chars skipped
    return value;
}

// The owner rule as a filter, so the SQL form (list) and the in-memory form (retrieve, writes, pushes) cannot
// disagree: both compare with the one typed value of OwnerValue.
Filter OwnerFilter(const GenericConsumer& consumer, const std::string& field, const User& user) {
    const Schema& schema = consumer.schema();
    std::optional<std::size_t> index = schema.FieldIndex(field);
    if (!index) {
        throw std::invalid_argument("IsOwner: \"" + field + "\" is not a field of \"" + schema.table() + "\"");
    }
    std::optional<Value> value = OwnerValue(schema.field(*index), user);
    if (!value) return NothingFilter(field);
    return Filter{field, FilterOp::kExact, std::move(*value), {}};
}

void CheckParts(const std::vector<PermissionPtr>& parts, const char* what) {
    if (parts.empty()) throw std::invalid_argument(std::string(what) + ": needs at least one permission");
    for (const auto& p : parts) {
        if (!p) throw std::invalid_argument(std::string(what) + ": null permission");
    }
}

class AllOfPermission final : public Permission {
public:
    explicit AllOfPermission(std::vector<PermissionPtr> parts) : parts_(std::move(parts)) {}
    bool CanConnect(const ConnectionContext& connection) const override {
        return std::all_of(parts_.begin(), parts_.end(), [&](const auto& p) { return p->CanConnect(connection); });
    }
    bool HasPermission(const ActionRequest& request, const GenericConsumer& consumer) const override {
        return std::all_of(parts_.begin(), parts_.end(),
                           [&](const auto& p) { return p->HasPermission(request, consumer); });
    }
    bool HasObjectPermission(const ActionRequest& request, const GenericConsumer& consumer,
                             const Row& row) const override {
        return std::all_of(parts_.begin(), parts_.end(),
                           [&](const auto& p) { return p->HasObjectPermission(request, consumer, row); });
    }
    std::optional<std::vector<Filter>> ObjectFilter(const ActionRequest& request,
                                                    const GenericConsumer& consumer) const override {
        std::vector<Filter> all;
        for (const auto& p : parts_) {
            std::optional<std::vector<Filter>> part = p->ObjectFilter(request, consumer);
            if (!part) return std::nullopt;
            all.insert(all.end(), part->begin(), part->end());
        }
        return all;
    }

private:
    std::vector<PermissionPtr> parts_;
};

class AnyOfPermission final : public Permission {
public:
    explicit AnyOfPermission(std::vector<PermissionPtr> parts) : parts_(std::move(parts)) {}
    bool CanConnect(const ConnectionContext& connection) const override {
        return std::any_of(parts_.begin(), parts_.end(), [&](const auto& p) { return p->CanConnect(connection); });
    }
    bool HasPermission(const ActionRequest& request, const GenericConsumer& consumer) const override {
        return std::any_of(parts_.begin(), parts_.end(),
                           [&](const auto& p) { return p->HasPermission(request, consumer); });
    }
    // A part that refused the request must not lend its default "every object" to the others (DRF 3.14's fix).
    bool HasObjectPermission(const ActionRequest& request, const GenericConsumer& consumer,
                             const Row& row) const override {
        return std::any_of(parts_.begin(), parts_.end(), [&](const auto& p) {
            return p->HasPermission(request, consumer) && p->HasObjectPermission(request, consumer, row);
        });
    }
    std::optional<std::vector<Filter>> ObjectFilter(const ActionRequest& request,
                                                    const GenericConsumer& consumer) const override {
        std::vector<std::optional<std::vector<Filter>>> allowing;
        for (const auto& p : parts_) {
            if (!p->HasPermission(request, consumer)) continue;
            allowing.push_back(p->ObjectFilter(request, consumer));
            if (allowing.back() && allowing.back()->empty()) return std::vector<Filter>{};  // one allows every row
        }
        // SQL has no OR of filter lists here: only a single allowing part keeps its SQL form.
        if (allowing.size() == 1) return allowing.front();
        return std::nullopt;
    }

private:
    std::vector<PermissionPtr> parts_;
};

class NotPermission final : public Permission {
public:
    explicit NotPermission(PermissionPtr part) : part_(std::move(part)) {}
    bool HasPermission(const ActionRequest& request, const GenericConsumer& consumer) const override {
        return !part_->HasPermission(request, consumer);
    }
    bool HasObjectPermission(const ActionRequest& request, const GenericConsumer& consumer,
                             const Row& row) const override {
        return !part_->HasObjectPermission(request, consumer, row);
    }

private:
    PermissionPtr part_;
};

}  // namespace

bool CanHoldOwner(const FieldSpec& field) {
    return field.type == FieldType::kInteger || field.type == FieldType::kText || field.type == FieldType::kDateTime;
}

std::optional<Value> OwnerValue(const FieldSpec& field, const User& user) {
    if (!CanHoldOwner(field)) {
        throw std::invalid_argument("owner field \"" + field.name + "\" is a " +
                                    std::string(FieldTypeName(field.type)) +
                                    " field; an owner is held by an integer or text field");
    }
    if (!user.authenticated || user.id.empty()) return std::nullopt;
    if (field.type == FieldType::kInteger) {
        std::optional<std::int64_t> id = CanonicalInteger(user.id);
        if (!id) return std::nullopt;
        return Value(*id);
    }
    return Value(user.id);
}

bool Permission::CanConnect(const ConnectionContext& connection) const {
    (void)connection;
    return true;
}

bool Permission::HasObjectPermission(const ActionRequest& request, const GenericConsumer& consumer,
                                     const Row& row) const {
    (void)request;
    (void)consumer;
    (void)row;
    return true;
}

std::optional<std::vector<Filter>> Permission::ObjectFilter(const ActionRequest& request,
                                                            const GenericConsumer& consumer) const {
    (void)request;
    (void)consumer;
    return std::nullopt;
}

bool AllowAny::HasPermission(const ActionRequest& request, const GenericConsumer& consumer) const {
    (void)request;
    (void)consumer;
    return true;
}

std::optional<std::vector<Filter>> AllowAny::ObjectFilter(const ActionRequest& request,
                                                          const GenericConsumer& consumer) const {
    (void)request;
    (void)consumer;
    return std::vector<Filter>{};
}

bool IsAuthenticated::HasPermission(const ActionRequest& request, const GenericConsumer& consumer) const {
    (void)consumer;
    return request.connection().user().authenticated;
}

std::optional<std::vector<Filter>> IsAuthenticated::ObjectFilter(const ActionRequest& request,
                                                                 const GenericConsumer& consumer) const {
    (void)request;
    (void)consumer;
    return std::vector<Filter>{};
}

bool ReadOnly::HasPermission(const ActionRequest& request, const GenericConsumer& consumer) const {
    const ActionSpec* action = consumer.FindAction(request.action());
    return !action || !action->writes;
}

std::optional<std::vector<Filter>> ReadOnly::ObjectFilter(const ActionRequest& request,
                                                          const GenericConsumer& consumer) const {
    (void)request;
    (void)consumer;
    return std::vector<Filter>{};
}

IsOwner::IsOwner(std::string field) : field_(std::move(field)) {
    if (field_.empty()) throw std::invalid_argument("IsOwner: empty field name");
}

bool IsOwner::HasPermission(const ActionRequest& request, const GenericConsumer& consumer) const {
    (void)request;
    (void)consumer;
    return true;
}

bool IsOwner::HasObjectPermission(const ActionRequest& request, const GenericConsumer& consumer, const Row& row) const {
    return RowMatches(consumer.schema(), row, {OwnerFilter(consumer, field_, request.connection().user())});
}

std::optional<std::vector<Filter>> IsOwner::ObjectFilter(const ActionRequest& request,
                                                         const GenericConsumer& consumer) const {
    return std::vector<Filter>{OwnerFilter(consumer, field_, request.connection().user())};
}

InGroup::InGroup(std::string group) : group_(std::move(group)) {}

bool InGroup::HasPermission(const ActionRequest& request, const GenericConsumer& consumer) const {
    (void)consumer;
    const User& user = request.connection().user();
    return user.authenticated && std::find(user.groups.begin(), user.groups.end(), group_) != user.groups.end();
}

std::optional<std::vector<Filter>> InGroup::ObjectFilter(const ActionRequest& request,
                                                         const GenericConsumer& consumer) const {
    (void)request;
    (void)consumer;
    return std::vector<Filter>{};
}

PermissionPtr AllOf(std::vector<PermissionPtr> parts) {
    CheckParts(parts, "AllOf");
    return std::make_shared<AllOfPermission>(std::move(parts));
}

PermissionPtr AnyOf(std::vector<PermissionPtr> parts) {
    CheckParts(parts, "AnyOf");
    return std::make_shared<AnyOfPermission>(std::move(parts));
}

PermissionPtr And(PermissionPtr a, PermissionPtr b) { return AllOf({std::move(a), std::move(b)}); }

PermissionPtr Or(PermissionPtr a, PermissionPtr b) { return AnyOf({std::move(a), std::move(b)}); }

PermissionPtr Not(PermissionPtr a) {
    CheckParts({a}, "Not");
    return std::make_shared<NotPermission>(std::move(a));
}

}  // namespace syncline
