// The subscription mixins: instance (DCRF's ObserverModelInstanceMixin), group observers and filtered lists.

#include <syncline/core/consumer/subscriptions.hpp>

#include <algorithm>
#include <set>
#include <string_view>

#include "json_util.hpp"

namespace syncline {

std::string JsonOfValue(const Value& value);

namespace {

Result<std::string> RequiredRequestId(const ActionRequest& request) {
    const rapidjson::Value* id = request.request_id();
    if (!id || id->IsNull()) return ActionResult::Message(400, "request_id is required to subscribe.");
    return JsonText(*id);
}

std::optional<std::string> OptionalRequestId(const ActionRequest& request) {
    const rapidjson::Value* id = request.request_id();
    if (!id) return std::nullopt;
    return JsonText(*id);
}

const FieldSpec& LookupField(const GenericConsumer& consumer) {
    const Schema& schema = consumer.schema();
    const std::string& name = consumer.options().lookup_field;
    return name == "pk" ? schema.pk() : schema.field(*schema.FieldIndex(name));
}

ActionResult SubscribeInstance(GenericConsumer& consumer, ActionRequest& request) {
    Result<std::string> request_id = RequiredRequestId(request);
    if (!request_id) return request_id.error();
    const rapidjson::Value* since_arg = request.Arg("since");
    std::optional<std::int64_t> since;
    if (since_arg && !since_arg->IsNull()) {
        if (!since_arg->IsInt64() || since_arg->GetInt64() < 0) {
            return ActionResult::Message(400, "since must be a non-negative integer version.");
        }
        since = since_arg->GetInt64();
    }
    const Schema& schema = consumer.schema();
    Result<Row> row = consumer.GetObject(request);
    Value pk;
    Value lookup_value;
    std::int64_t version = 0;
    if (row) {
        pk = (*row)[schema.pk_index()];
        lookup_value = (*row)[schema.FieldIndex(LookupField(consumer).name).value()];
        if (since) version = consumer.store().RowVersion(schema.table(), pk);
    } else {
        // A reconnecting client (since given) whose row was deleted meanwhile subscribes to get that delete. The
        // rules of retrieve still hold: a row that exists but is hidden from this socket (outside its queryset)
        // answers 404, as does a deleted row this socket could not see before it went (while its image is kept).
        const rapidjson::Value* arg = request.Arg(consumer.lookup_kwarg());
        std::optional<Value> value = arg ? LookupValue(LookupField(consumer), *arg) : std::nullopt;
        bool by_pk = consumer.options().lookup_field == "pk" || LookupField(consumer).primary_key;
        if (!since || !value || !by_pk || row.error().status != 404) return row.error();
        if (consumer.store().Get(schema.table(), schema.pk().name, *value)) return row.error();
        std::optional<ModelStore::LastChangeInfo> last = consumer.store().LastChange(schema.table(), *value);
        if (!last || last->version <= *since) return row.error();
        if (last->before && !consumer.CanSee(request, *last->before)) return row.error();
        version = last->version;
        pk = *value;
        lookup_value = *value;
    }
    std::int64_t known = since ? std::max(*since, version) : 0;
    if (!consumer.registry().SubscribeInstance(request.connection(), consumer,
                                               InstanceSubscription{pk, lookup_value, *request_id, known})) {
        return SubscriptionLimitReply(request.connection());
    }
    if (since && version > *since) {
        // Deferred by the connection's push gate until the 201 below has been queued.
        std::string frame = row ? PushPrefix("update", 200, consumer.Represent(*row), version)
                                : PushPrefix("delete", 204, "{\"pk\":" + JsonOfValue(pk) + "}", version);
        request.connection().Push(frame + *request_id + "}", InstancePushKey(consumer, pk, *request_id));
    }
    return ActionResult::Ok(201);
}

ActionResult UnsubscribeInstance(GenericConsumer& consumer, ActionRequest& request) {
    const rapidjson::Value* arg = request.Arg(consumer.lookup_kwarg());
    if (!arg) return ActionResult::Message(400, "Missing lookup argument \"" + consumer.lookup_kwarg() + "\".");
    // No database read: unsubscribing from a row that was deleted still answers 204 (DCRF answers 404).
    std::optional<Value> value = LookupValue(LookupField(consumer), *arg);
    if (value) consumer.registry().UnsubscribeInstance(request.connection(), consumer, *value, OptionalRequestId(request));
    return ActionResult::Ok(204);
}

ActionResult SubscribeList(GenericConsumer& consumer, ActionRequest& request) {
    Result<std::string> request_id = RequiredRequestId(request);
    if (!request_id) return request_id.error();
    Result<std::vector<Filter>> filter = ParseListFilter(consumer, request.Arg("filter"), request.connection().limits());
    if (!filter) return filter.error();
    if (!consumer.registry().SubscribeList(request.connection(), consumer, std::move(*filter), *request_id)) {
        return SubscriptionLimitReply(request.connection());
    }
    return ActionResult::Ok(201);
}

ActionResult UnsubscribeList(GenericConsumer& consumer, ActionRequest& request) {
    consumer.registry().UnsubscribeList(request.connection(), consumer, OptionalRequestId(request));
    return ActionResult::Ok(204);
}

}  // namespace

ActionResult SubscriptionLimitReply(const ConnectionContext& connection) {
    const ConnectionLimits& limits = connection.limits();
    return ActionResult::Message(429, "Too many subscriptions on this socket (the limit is " +
                                          std::to_string(limits.max_subscriptions) + " subscriptions, and " +
                                          std::to_string(limits.max_list_filter_values) +
                                          " filter values in list subscriptions).");
}

std::string JsonOfValue(const Value& value) {
    rapidjson::StringBuffer buffer;
    JsonWriter writer(buffer);
    FieldSpec any;
    any.type = value.kind() == Value::Kind::kText ? FieldType::kText : FieldType::kInteger;
    WriteFieldValue(writer, any, value);
    return std::string(buffer.GetString(), buffer.GetSize());
}

std::string InstancePushKey(const GenericConsumer& consumer, const Value& pk, std::string_view request_id) {
    std::string key = "i:" + std::to_string(reinterpret_cast<std::uintptr_t>(&consumer)) + ":";
    key += pk.DebugString();
    key += ":";
    key += request_id;
    return key;
}

std::string PushPrefix(std::string_view action, int status, std::string_view data_json, std::int64_t version) {
    std::string out;
    out.reserve(data_json.size() + 96);
    out += R"({"errors":[],"data":)";
    out += data_json;
    out += R"(,"action":")";
    out += action;
    out += R"(","response_status":)";
    out += std::to_string(status);
    out += R"(,"version":)";
    out += std::to_string(version);
    out += R"(,"request_id":)";
    return out;
}

Result<std::vector<Filter>> ParseListFilter(const GenericConsumer& consumer, const rapidjson::Value* filter,
                                            const ConnectionLimits& limits) {
    std::vector<Filter> filters;
    if (!filter || filter->IsNull()) return filters;
    if (!filter->IsObject()) return ActionResult::Message(400, "filter must be an object of field lookups.");
    const Schema& schema = consumer.schema();
    const std::vector<std::string>& allowed = consumer.options().filter_fields;
    std::set<std::string_view> seen;
    for (auto it = filter->MemberBegin(); it != filter->MemberEnd(); ++it) {
        std::string key(it->name.GetString(), it->name.GetStringLength());
        // A key given twice (JSON allows it) would let one frame carry any number of conditions.
        if (!seen.insert(std::string_view(it->name.GetString(), it->name.GetStringLength())).second) {
            return ActionResult::Message(400, "Filter \"" + key + "\" is given more than once.");
        }
        auto lookup = ParseLookup(key);
        // Only the declared filter fields (Bind refuses a write-only one there): a filter on anything else would be
        // an oracle, e.g. {"secret__startswith": "h"} telling a secret's prefix by what it matches.
        if (!lookup || std::find(allowed.begin(), allowed.end(), lookup->first) == allowed.end() ||
            !schema.FieldIndex(lookup->first)) {
            return ActionResult::Message(400, "Filtering on \"" + key + "\" is not allowed.");
        }
        const FieldSpec& field = schema.field(*schema.FieldIndex(lookup->first));
        Filter f{lookup->first, lookup->second, Value(), {}};
        auto convert = [&](const rapidjson::Value& json) -> std::optional<Value> {
            if (json.IsNull()) return Value();
            if (lookup->second == FilterOp::kIsNull) return json.IsBool() ? std::optional<Value>(Value(json.GetBool())) : std::nullopt;
            auto [value, errors] = consumer.serializer().Coerce(field, json);
            if (!errors.empty()) return std::nullopt;
            return value;
        };
        if (lookup->second == FilterOp::kIn) {
            if (!it->value.IsArray()) return ActionResult::Message(400, "Filter \"" + key + "\" expects a list.");
            if (it->value.Size() > limits.max_filter_values) {
                return ActionResult::Message(400, "Filter \"" + key + "\" has " + std::to_string(it->value.Size()) +
                                                      " values; the limit is " +
                                                      std::to_string(limits.max_filter_values) + ".");
            }
            for (const auto& item : it->value.GetArray()) {
                auto v = convert(item);
                if (!v) return ActionResult::Message(400, "Invalid value for filter \"" + key + "\".");
                f.values.push_back(*v);
            }
        } else {
            auto v = convert(it->value);
            if (!v) return ActionResult::Message(400, "Invalid value for filter \"" + key + "\".");
            f.value = *v;
        }
        filters.push_back(std::move(f));
    }
    return filters;
}

Mixin ObserverModelInstanceMixin() {
    Mixin mixin = RetrieveModelMixin();
    // Not needs_object: it looks the row up itself, since with `since` a row deleted meanwhile still subscribes (to
    // get its delete) where the dispatcher's lookup would answer 404.
    mixin.actions.push_back(ActionSpec{"subscribe_instance", SubscribeInstance, false, false, true, false});
    mixin.actions.push_back(ActionSpec{"unsubscribe_instance", UnsubscribeInstance, false, false, true, false});
    return mixin;
}

Mixin ListObserverMixin() {
    return {{ActionSpec{"subscribe_list", SubscribeList, false, false, true, false},
             ActionSpec{"unsubscribe_list", UnsubscribeList, false, false, true, false}}};
}

Mixin ModelObserverMixin(GroupObserver observer) {
    auto shared = std::make_shared<const GroupObserver>(std::move(observer));
    ActionHandler subscribe = [shared](GenericConsumer& consumer, ActionRequest& request) -> ActionResult {
        Result<std::string> request_id = RequiredRequestId(request);
        if (!request_id) return request_id.error();
        Result<std::vector<std::string>> groups = shared->request_groups(request);
        if (!groups) return groups.error();
        if (!consumer.registry().SubscribeGroups(request.connection(), consumer, shared, *groups, *request_id)) {
            return SubscriptionLimitReply(request.connection());
        }
        return ActionResult::Ok(201);
    };
    ActionHandler unsubscribe = [shared](GenericConsumer& consumer, ActionRequest& request) -> ActionResult {
        Result<std::vector<std::string>> groups = shared->request_groups(request);
        if (!groups) return groups.error();
        consumer.registry().UnsubscribeGroups(request.connection(), consumer, *shared, *groups,
                                              OptionalRequestId(request));
        return ActionResult::Ok(204);
    };
    return {{ActionSpec{shared->subscribe_action, subscribe, false, false, true, false},
             ActionSpec{shared->unsubscribe_action, unsubscribe, false, false, true, false}}};
}

}  // namespace syncline
