#include <syncline/core/consumer/consumer.hpp>

#include <syncline/core/support/log.hpp>
#include <syncline/core/consumer/permissions.hpp>
#include <syncline/core/consumer/subscriptions.hpp>
#include <syncline/core/protocol/envelope.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <stdexcept>
#include <string_view>

#include "json_util.hpp"

namespace syncline {

ConsumerOptions WithMixins(ConsumerOptions options, std::vector<Mixin> mixins) {
    mixins.insert(mixins.end(), options.mixins.begin(), options.mixins.end());
    options.mixins = std::move(mixins);
    return options;
}

GenericConsumer::GenericConsumer(ConsumerOptions options) : options_(std::move(options)) {
    lookup_kwarg_ = options_.lookup_url_kwarg.empty() ? options_.lookup_field : options_.lookup_url_kwarg;
    for (const auto& mixin : options_.mixins) {
        for (const auto& action : mixin.actions) AddAction(action);
    }
}

GenericConsumer::~GenericConsumer() = default;

SubscriptionRegistry& GenericConsumer::registry() const {
    if (!registry_) throw std::logic_error("consumer of \"" + options_.model + "\": this server serves no subscriptions");
    return *registry_;
}

void GenericConsumer::Bind(ModelStore& store, SubscriptionRegistry* registry) {
    registry_ = registry;
    const Schema* schema = nullptr;
    try {
        schema = &store.Model(options_.model);
    } catch (const StoreError&) {
        throw std::invalid_argument("consumer: unknown model \"" + options_.model + "\"");
    }
    if (options_.lookup_field != "pk" && !schema->FieldIndex(options_.lookup_field)) {
        throw std::invalid_argument("consumer: lookup_field \"" + options_.lookup_field + "\" is not a field of \"" +
                                    options_.model + "\"");
    }
    for (const auto& filter : options_.queryset) {
        if (!schema->FieldIndex(filter.field)) {
            throw std::invalid_argument("consumer: queryset filter on unknown field \"" + filter.field + "\"");
        }
    }
    // A filter or an ordering on a write-only field would tell its value by what it matches or how rows sort.
    const auto& write_only = options_.serializer.write_only;
    for (const auto* list : {&options_.filter_fields, &options_.ordering_fields}) {
        const char* what = list == &options_.filter_fields ? "filter_fields" : "ordering_fields";
        for (const auto& field : *list) {
            if (!schema->FieldIndex(field)) {
                throw std::invalid_argument(std::string("consumer: ") + what + " names unknown field \"" + field + "\"");
            }
            if (std::find(write_only.begin(), write_only.end(), field) != write_only.end()) {
                throw std::invalid_argument(std::string("consumer: ") + what + " names write-only field \"" + field +
                                            "\" (its values would leak)");
            }
        }
    }
    SerializerOptions serializer = options_.serializer;
    if (!options_.owner_field.empty()) {
        std::optional<std::size_t> index = schema->FieldIndex(options_.owner_field);
        if (!index) {
            throw std::invalid_argument("consumer: owner_field \"" + options_.owner_field + "\" is not a field of \"" +
                                        options_.model + "\"");
        }
        if (!CanHoldOwner(schema->field(*index))) {
            throw std::invalid_argument("consumer: owner_field \"" + options_.owner_field +
                                        "\" must be an integer or text field");
        }
        // Set by create from the user, never from the client (DRF's read_only): ignored in every input.
        serializer.read_only.push_back(options_.owner_field);
    }
    serializer_ = std::make_unique<Serializer>(*schema, std::move(serializer));
    store_ = &store;
}

void GenericConsumer::AddAction(ActionSpec action) {
    auto it = std::find_if(actions_.begin(), actions_.end(), [&](const ActionSpec& a) { return a.name == action.name; });
    if (it != actions_.end()) {
        *it = std::move(action);
    } else {
        actions_.push_back(std::move(action));
    }
}

const Envelope& GenericConsumer::envelope() const {
    return options_.envelope ? *options_.envelope : DcrfEnvelope();
}

const ActionSpec* GenericConsumer::FindAction(std::string_view name) const {
    auto it = std::find_if(actions_.begin(), actions_.end(), [&](const ActionSpec& a) { return a.name == name; });
    if (it != actions_.end()) return &*it;
    return default_action_ ? &*default_action_ : nullptr;
}

ModelStore& GenericConsumer::store() const {
    if (!store_) throw std::logic_error("consumer of \"" + options_.model + "\" used before Bind");
    return *store_;
}

const Schema& GenericConsumer::schema() const { return serializer().schema(); }

const Serializer& GenericConsumer::serializer() const {
    if (!serializer_) throw std::logic_error("consumer of \"" + options_.model + "\" used before Bind");
    return *serializer_;
}

void GenericConsumer::OnDisconnect(ConnectionContext& connection) {
    if (registry_) registry_->DropConnection(connection);
}

bool GenericConsumer::CanConnect(const ConnectionContext& connection) const {
    return std::all_of(options_.permissions.begin(), options_.permissions.end(),
                       [&](const auto& p) { return p->CanConnect(connection); });
}

bool GenericConsumer::HasPermission(const ActionRequest& request) const {
    return std::all_of(options_.permissions.begin(), options_.permissions.end(),
                       [&](const auto& p) { return p->HasPermission(request, *this); });
}

bool GenericConsumer::HasObjectPermission(const ActionRequest& request, const Row& row) const {
    return std::all_of(options_.permissions.begin(), options_.permissions.end(),
                       [&](const auto& p) { return p->HasObjectPermission(request, *this, row); });
}

std::optional<std::vector<Filter>> GenericConsumer::ObjectFilter(const ActionRequest& request) const {
    std::vector<Filter> all;
    for (const auto& p : options_.permissions) {
        std::optional<std::vector<Filter>> part = p->ObjectFilter(request, *this);
        if (!part) return std::nullopt;
        all.insert(all.end(), part->begin(), part->end());
    }
    return all;
}

bool GenericConsumer::CanSee(const ActionRequest& request, const Row& row) const {
    return RowMatches(schema(), row, GetQueryset(request).filters) && HasObjectPermission(request, row);
}

GenericConsumer::ObjectPage GenericConsumer::ListObjects(const ActionRequest& request, Query query, bool count) const {
    ObjectPage page;
    if (std::optional<std::vector<Filter>> filter = ObjectFilter(request)) {
        query.filters.insert(query.filters.end(), filter->begin(), filter->end());
        if (count) page.count = store().Count(options_.model, query.filters);
        page.rows = store().List(options_.model, query);
        return page;
    }
    // No SQL form: read the whole queryset in order and keep the visible rows, so count, limit and offset describe
    // exactly the rows retrieve would allow.
    std::optional<std::int64_t> limit = query.limit;
    std::int64_t offset = std::max<std::int64_t>(query.offset, 0);
    query.limit.reset();
    query.offset = 0;
    std::int64_t visible = 0;
    for (Row& row : store().List(options_.model, query)) {
        if (!count && limit && visible - offset >= *limit) break;
        if (!HasObjectPermission(request, row)) continue;
        if (visible >= offset && (!limit || visible - offset < *limit)) page.rows.push_back(std::move(row));
        ++visible;
    }
    if (count) page.count = visible;
    return page;
}

ActionResult GenericConsumer::Dispatch(ActionRequest& request) {
    Result<const ActionSpec*> action = Authorize(request);
    if (!action) return action.error();
    ActionResult result = Execute(**action, request);
    while (result.next) {
        if (request.stream_cancelled()) return ActionResult::Streamed();
        ActionHandler step = std::move(result.next);
        result = ExecuteStep(step, request);
    }
    return result;
}

Result<const ActionSpec*> GenericConsumer::Authorize(const ActionRequest& request) const {
    try {
        if (!HasPermission(request)) {
            return ActionResult::Message(403, "You do not have permission to perform this action.");
        }
        const ActionSpec* action = FindAction(request.action());
        if (!action) return ActionResult::Message(405, "Method \"" + request.action() + "\" not allowed.");
        return action;
    } catch (const std::exception& e) {
        Log(LogLevel::kError,
            "permission check of \"" + request.action() + "\" on \"" + options_.model + "\" failed: " + e.what());
    } catch (...) {
        Log(LogLevel::kError, "permission check of \"" + request.action() + "\" on \"" + options_.model + "\" failed");
    }
    return ActionResult::Message(500, "Internal server error");
}

ActionResult GenericConsumer::Execute(const ActionSpec& action, ActionRequest& request) {
    try {
        if (action.needs_object && !request.has_object()) {
            Result<Row> row = GetObject(request);
            if (!row) return row.error();
            request.set_object(std::move(*row));
        }
        return action.handler(*this, request);
    } catch (const StoreError& e) {
        if (std::optional<ActionResult> retry = RetryLaterReply(e)) return std::move(*retry);
        Log(LogLevel::kError, "action \"" + request.action() + "\" on \"" + options_.model + "\" failed: " + e.what());
    } catch (const std::exception& e) {
        Log(LogLevel::kError, "action \"" + request.action() + "\" on \"" + options_.model + "\" failed: " + e.what());
    } catch (...) {
        Log(LogLevel::kError, "action \"" + request.action() + "\" on \"" + options_.model + "\" failed");
    }
    return ActionResult::Message(500, "Internal server error");
}

ActionResult GenericConsumer::ExecuteStep(const ActionHandler& step, ActionRequest& request) {
    try {
        return step(*this, request);
    } catch (const StoreError& e) {
        if (std::optional<ActionResult> retry = RetryLaterReply(e)) return std::move(*retry);
        Log(LogLevel::kError, "action \"" + request.action() + "\" on \"" + options_.model + "\" failed: " + e.what());
    } catch (const std::exception& e) {
        Log(LogLevel::kError, "action \"" + request.action() + "\" on \"" + options_.model + "\" failed: " + e.what());
    } catch (...) {
        Log(LogLevel::kError, "action \"" + request.action() + "\" on \"" + options_.model + "\" failed");
    }
    return ActionResult::Message(500, "Internal server error");
}

Query GenericConsumer::GetQueryset(const ActionRequest& request) const {
    (void)request;
    Query query;
    query.filters = options_.queryset;
    return query;
}

std::optional<Value> LookupValue(const FieldSpec& field, const rapidjson::Value& json) {
    if (field.type == FieldType::kInteger) {
        if (json.IsInt64()) return Value(static_cast<std::int64_t>(json.GetInt64()));
        if (json.IsDouble()) {
            double d = json.GetDouble();
            if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9e18) {
                return Value(static_cast<std::int64_t>(d));
            }
            return std::nullopt;
        }
        if (json.IsString()) {
            // An optional '-' and decimal digits (Django's int() of a URL kwarg), within int64: anything else, an
            // overflow included ("9999999999999999999"), is a value of the wrong type, so 404, never an exception.
            std::string_view s(json.GetString(), json.GetStringLength());
            std::int64_t n = 0;
            auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
            if (s.empty() || s[0] == '+' || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
            return Value(n);
        }
        return std::nullopt;
    }
    if (field.type == FieldType::kText || field.type == FieldType::kDateTime) {
        if (json.IsString()) return Value(std::string(json.GetString(), json.GetStringLength()));
        if (json.IsInt64()) return Value(std::to_string(json.GetInt64()));
        return std::nullopt;
    }
    if (field.type == FieldType::kBoolean && json.IsBool()) return Value(json.GetBool());
    if (field.type == FieldType::kReal && json.IsNumber()) return Value(json.GetDouble());
    return std::nullopt;
}

Result<Row> GenericConsumer::GetObject(const ActionRequest& request) const {
    const rapidjson::Value* arg = request.Arg(lookup_kwarg_);
    if (!arg) return ActionResult::Message(400, "Missing lookup argument \"" + lookup_kwarg_ + "\".");
    const Schema& s = schema();
    const FieldSpec& field = options_.lookup_field == "pk" ? s.pk() : s.field(*s.FieldIndex(options_.lookup_field));
    std::optional<Value> value = LookupValue(field, *arg);
    if (!value) return ActionResult::Message(404, "Not found");
    Query query = GetQueryset(request);
    query.filters.push_back(Filter{field.name, FilterOp::kExact, std::move(*value), {}});
    query.limit = 1;
    std::vector<Row> rows = store().List(options_.model, query);
    if (rows.empty()) return ActionResult::Message(404, "Not found");
    // As DRF's check_object_permissions: the row exists for this queryset, the user may not touch it.
    if (!HasObjectPermission(request, rows.front())) {
        return ActionResult::Message(403, "You do not have permission to perform this action.");
    }
    return std::move(rows.front());
}

Row GenericConsumer::PerformCreate(const ActionRequest& request, const Assignments& values) {
    (void)request;
    return store().Insert(options_.model, values);
}

Row GenericConsumer::PerformUpdate(const ActionRequest& request, const Row& instance, const Assignments& values) {
    (void)request;
    const Value& pk = instance.at(schema().pk_index());
    std::optional<Row> row = store().Patch(options_.model, pk, values);
    if (!row) throw StoreError(StoreErrc::kNotFound, "the row was deleted during the update");
    return std::move(*row);
}

void GenericConsumer::PerformDestroy(const ActionRequest& request, const Row& instance) {
    (void)request;
    store().Delete(options_.model, instance.at(schema().pk_index()));
}

std::optional<ActionResult> RetryLaterReply(const StoreError& error) {
    // Not logged per request: during an outage every request fails alike, and the relay logs the outage once.
    switch (error.kind()) {
        case StoreErrc::kBusy:
            return ActionResult::Message(503, "The database is busy. Try again.");
        case StoreErrc::kUnavailable:
            return ActionResult::Message(503, "The database is unavailable. Try again.");
        default:
            return std::nullopt;
    }
}

ActionResult WriteErrorReply(const GenericConsumer& consumer, const StoreError& error) {
    switch (error.kind()) {
        case StoreErrc::kInvalid: {
            FieldErrors errors;
            for (const auto& [field, message] : error.field_errors()) errors.push_back({field, {message}});
            return ActionResult::Error(400, ActionErrors::Fields(std::move(errors)));
        }
        case StoreErrc::kConstraint: {
            // SQLite words it "UNIQUE constraint failed: posts.title" (several columns: comma separated).
            std::string what = error.what();
            auto pos = what.find("UNIQUE constraint failed: ");
            if (pos != std::string::npos) {
                std::string rest = what.substr(pos + 26);
                auto dot = rest.find('.');
                auto end = rest.find_first_of(", ");
                std::string field = dot == std::string::npos ? rest : rest.substr(dot + 1, end == std::string::npos ? std::string::npos : end - dot - 1);
                if (consumer.serializer().Has(field)) {
                    return ActionResult::Error(
                        400, ActionErrors::Field(field, consumer.options().model + " with this " + field +
                                                            " already exists."));
                }
            }
            return ActionResult::Error(400, ActionErrors::Field("non_field_errors", "The write violates a constraint."));
        }
        case StoreErrc::kBusy:
        case StoreErrc::kUnavailable:
            return *RetryLaterReply(error);
        default:
            throw error;
    }
}

}  // namespace syncline
