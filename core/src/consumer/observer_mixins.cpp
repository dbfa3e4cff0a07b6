// The subscription mixins: instance (DCRF's ObserverModelInstanceMixin), group observers and filtered lists.

#include <syncline/core/consumer/subscriptions.hpp>

#include <algorithm>
#include <functional>
#include <iterator>
#include <memory>
#include <set>
#include <string_view>
#include <tuple>

#include "json_util.hpp"
#include "list_reads.hpp"

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

// What a subscribe says about what the client already has: `since` (a version it saw) and `epoch` (of that version).
struct Resume {
    std::optional<std::int64_t> since;
    bool same_epoch = true;  // false: the client's versions belong to another database (recreated, restored)
};

Result<Resume> ReadResume(const GenericConsumer& consumer, const ActionRequest& request) {
    Resume resume;
    const rapidjson::Value* since = request.Arg("since");
    if (since && !since->IsNull()) {
        if (!since->IsInt64() || since->GetInt64() < 0) {
            return ActionResult::Message(400, "since must be a non-negative integer version.");
        }
        resume.since = since->GetInt64();
    }
    const rapidjson::Value* epoch = request.Arg("epoch");
    if (epoch && !epoch->IsNull()) {
        if (!epoch->IsString()) return ActionResult::Message(400, "epoch must be a string.");
        resume.same_epoch = std::string_view(epoch->GetString(), epoch->GetStringLength()) == consumer.store().Epoch();
    }
    return resume;
}

// Whether a row at `version` changed after what the client has: always when its versions are of another epoch.
bool NewerThan(const Resume& resume, std::int64_t version) {
    return resume.since && (!resume.same_epoch || version > *resume.since);
}

std::string Quoted(const std::string& text) {
    rapidjson::StringBuffer buffer;
    JsonWriter writer(buffer);
    writer.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
    return std::string(buffer.GetString(), buffer.GetSize());
}

// The 201 of a subscribe, telling the version the subscription starts at and the database's epoch.
ActionResult Subscribed(const GenericConsumer& consumer, std::int64_t version) {
    ActionResult result = ActionResult::Ok(201);
    result.extra.emplace_back("version", std::to_string(version));
    result.extra.emplace_back("epoch", Quoted(consumer.store().Epoch()));
    return result;
}

std::string DeleteData(const Value& pk) { return "{\"pk\":" + JsonOfValue(pk) + "}"; }

// The order of one subscribe: the subscription is added first and held, then what the client has is read in one
// snapshot (the row's version; with `since`, its current state), then the 201 and its pushes are queued, and only then
// does the subscription start at that version. So no change committed after the snapshot is missed, and none the
// client could already have read (a creation still in flight from another process) is pushed after the 201.
ActionResult SubscribeInstance(GenericConsumer& consumer, ActionRequest& request) {
    Result<std::string> request_id = RequiredRequestId(request);
    if (!request_id) return request_id.error();
    Result<Resume> resume = ReadResume(consumer, request);
    if (!resume) return resume.error();
    const Schema& schema = consumer.schema();
    ModelStore& store = consumer.store();
    Result<Row> row = consumer.GetObject(request);
    Value pk;
    Value lookup_value;
    if (row) {
        pk = (*row)[schema.pk_index()];
        lookup_value = (*row)[schema.FieldIndex(LookupField(consumer).name).value()];
    } else {
        // A reconnecting client (since given) whose row was deleted meanwhile subscribes to get that delete. The
        // rules of retrieve still hold: a row that exists but is hidden from this socket (outside its queryset)
        // answers 404, as does a deleted row this socket could not see before it went (while its image is kept).
        const rapidjson::Value* arg = request.Arg(consumer.lookup_kwarg());
        std::optional<Value> value = arg ? LookupValue(LookupField(consumer), *arg) : std::nullopt;
        bool by_pk = consumer.options().lookup_field == "pk" || LookupField(consumer).primary_key;
        if (!resume->since || !value || !by_pk || row.error().status != 404) return row.error();
        if (store.Get(schema.table(), schema.pk().name, *value)) return row.error();
        if (!NewerThan(*resume, store.RowVersion(schema.table(), *value))) return row.error();
        std::optional<ModelStore::LastChangeInfo> last = store.LastChange(schema.table(), *value);
        if (last && last->before && !consumer.CanSee(request, *last->before)) return row.error();
        pk = *value;
        lookup_value = *value;
    }
    std::unique_ptr<PendingSubscriptions> pending = consumer.registry().SubscribeInstance(
        request.connection(), consumer, InstanceSubscription{pk, lookup_value, *request_id});
    if (!pending) return SubscriptionLimitReply(request.connection());
    std::int64_t version = 0;
    std::optional<std::string> push;
    {
        std::unique_ptr<ModelStore::ReadScope> snapshot = store.ReadSnapshot();
        version = store.RowVersion(schema.table(), pk);
        if (NewerThan(*resume, version)) {
            std::optional<Row> now = store.Get(schema.table(), schema.pk().name, pk);
            // A row this socket may no longer see has left it, as for the observer's pushes.
            push = now && consumer.CanSee(request, *now)
                       ? PushPrefix("update", 200, consumer.Represent(*now), version, store.Epoch())
                       : PushPrefix("delete", 204, DeleteData(pk), version, store.Epoch());
        }
    }
    // Deferred by the connection's push gate until the 201 has been queued.
    if (push) request.connection().Push(*push + *request_id + "}", InstancePushKey(consumer, pk, *request_id));
    pending->Start(version, {});
    return Subscribed(consumer, version);
}

ActionResult UnsubscribeInstance(GenericConsumer& consumer, ActionRequest& request) {
    const rapidjson::Value* arg = request.Arg(consumer.lookup_kwarg());
    if (!arg) return ActionResult::Message(400, "Missing lookup argument \"" + consumer.lookup_kwarg() + "\".");
    // No database read: unsubscribing from a row that was deleted still answers 204 (DCRF answers 404).
    std::optional<Value> value = LookupValue(LookupField(consumer), *arg);
    if (value) consumer.registry().UnsubscribeInstance(request.connection(), consumer, *value, OptionalRequestId(request));
    return ActionResult::Ok(204);
}

Result<bool> SnapshotArg(const ActionRequest& request) {
    const rapidjson::Value* snapshot = request.Arg("snapshot");
    if (!snapshot || snapshot->IsNull()) return false;
    if (!snapshot->IsBool()) return ActionResult::Message(400, "snapshot must be true or false.");
    return snapshot->GetBool();
}

// A list or group subscription's view of rows: which rows belong to it, as this socket sees them.
using Belongs = std::function<bool(const Row& row)>;
using RowVersions = std::vector<std::pair<Value, std::int64_t>>;

// The snapshot of a list or group subscription, read inside the subscribe's snapshot: the rows that belong, through
// the route's queryset, permissions and serializer, shaped as the route's `list` answers (one array, or one page of
// limit/offset for a paginated or streamed route), with a "versions" key aligned with the rows.
ActionResult Snapshot(GenericConsumer& consumer, ActionRequest& request, const Query& query, const Belongs& belongs,
                      std::int64_t version, RowVersions& newer_rows) {
    const Schema& schema = consumer.schema();
    ListShape shape = ListShapeOf(consumer);
    Query page_query = query;
    std::int64_t limit = 0;
    std::int64_t offset = 0;
    const bool paged = shape == ListShape::kPaginated || shape == ListShape::kStreamed;
    if (paged && !belongs) {
        std::tie(limit, offset) = PageWindow(consumer, request);
        page_query.limit = limit;
        page_query.offset = offset;
    }
    GenericConsumer::ObjectPage page = consumer.ListObjects(request, page_query, paged && !belongs);
    std::vector<Row> rows;
    for (Row& row : page.rows) {
        if (!belongs || belongs(row)) rows.push_back(std::move(row));
    }
    if (paged && belongs) {
        // Groups have no query to page with: the members are paged here.
        std::tie(limit, offset) = PageWindow(consumer, request);
        page.count = static_cast<std::int64_t>(rows.size());
        std::size_t first = std::min<std::size_t>(rows.size(), static_cast<std::size_t>(offset));
        std::size_t last = std::min<std::size_t>(rows.size(), first + static_cast<std::size_t>(limit));
        rows = std::vector<Row>(std::make_move_iterator(rows.begin() + static_cast<std::ptrdiff_t>(first)),
                                std::make_move_iterator(rows.begin() + static_cast<std::ptrdiff_t>(last)));
    }
    std::string versions = "[";
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const Value& pk = rows[i][schema.pk_index()];
        const std::int64_t row_version = consumer.store().RowVersion(schema.table(), pk);
        if (row_version > version) newer_rows.emplace_back(pk, row_version);
        if (i) versions += ",";
        versions += std::to_string(row_version);
    }
    versions += "]";
    std::string data = JsonArray(consumer, rows);
    ActionResult result = Subscribed(consumer, version);
    result.data = paged ? PageData(page.count, data, limit, offset) : data;
    result.extra.emplace_back("versions", versions);
    return result;
}

// `since` on a list or group subscription: pushes of the rows that changed after it, read inside the subscribe's
// snapshot: the current state of each that belongs ("update"), a delete for each that left or went. A row that
// exists but that this socket may not see is skipped (its pk would tell what the socket may not know); a deleted row
// whose old image is still kept gets its delete only when the socket could see it. false when the store cannot tell
// what changed (`since` from another epoch, or older than the versions it keeps): the caller then sends a snapshot.
bool PushChangesSince(GenericConsumer& consumer, ActionRequest& request, const Resume& resume, const Belongs& belongs,
                      const std::string& key_prefix, const std::string& request_id, std::int64_t version,
                      std::vector<std::pair<std::string, std::string>>& pushes, RowVersions& newer_rows) {
    if (!resume.same_epoch) return false;
    const Schema& schema = consumer.schema();
    ModelStore& store = consumer.store();
    std::optional<std::vector<ModelStore::ChangedRow>> changed = store.ChangedSince(schema.table(), *resume.since);
    if (!changed) return false;
    const std::string epoch = store.Epoch();
    for (const ModelStore::ChangedRow& change : *changed) {
        std::string frame;
        std::optional<Row> now = change.deleted ? std::nullopt : store.Get(schema.table(), schema.pk().name, change.pk);
        if (now && belongs(*now)) {
            frame = PushPrefix("update", 200, consumer.Represent(*now), change.version, epoch);
        } else if (now) {
            if (!consumer.CanSee(request, *now)) continue;
            frame = PushPrefix("delete", 200, consumer.Represent(*now), change.version, epoch);
        } else {
            std::optional<ModelStore::LastChangeInfo> last = store.LastChange(schema.table(), change.pk);
            if (last && last->before && !consumer.CanSee(request, *last->before)) continue;
            frame = PushPrefix("delete", 200,
                               last && last->before ? consumer.Represent(*last->before) : DeleteData(change.pk),
                               change.version, epoch);
        }
        pushes.emplace_back(frame + request_id + "}", key_prefix + JsonOfValue(change.pk));
        if (change.version > version) newer_rows.emplace_back(change.pk, change.version);
    }
    return true;
}

// The body shared by subscribe_list and a group observer's subscribe, once the subscription is pending.
// `members` narrows the snapshot's rows (groups); null when the query alone selects them (lists).
ActionResult StartTableSubscription(GenericConsumer& consumer, ActionRequest& request,
                                    std::unique_ptr<PendingSubscriptions> pending, const Resume& resume, bool snapshot,
                                    const Query& query, const Belongs& members, const std::string& request_id,
                                    const Belongs& belongs) {
    ModelStore& store = consumer.store();
    std::vector<std::pair<std::string, std::string>> pushes;
    ActionResult result;
    std::int64_t version = 0;
    RowVersions newer_rows;
    {
        std::unique_ptr<ModelStore::ReadScope> scope = store.ReadSnapshot();
        version = scope->version();
        bool reset = false;
        if (resume.since && !snapshot) {
            std::string key_prefix =
                "s:" + std::to_string(reinterpret_cast<std::uintptr_t>(&consumer)) + ":" + request_id + ":";
            reset = !PushChangesSince(consumer, request, resume, belongs, key_prefix, request_id, version, pushes,
                                      newer_rows);
        }
        if (snapshot || reset) {
            result = Snapshot(consumer, request, query, members, version, newer_rows);
            if (reset) result.extra.emplace_back("reset", "true");
        } else {
            result = Subscribed(consumer, version);
        }
    }
    for (auto& [frame, key] : pushes) request.connection().Push(frame, key);
    pending->Start(version, std::move(newer_rows));
    return result;
}

ActionResult SubscribeList(GenericConsumer& consumer, ActionRequest& request) {
    Result<std::string> request_id = RequiredRequestId(request);
    if (!request_id) return request_id.error();
    Result<Resume> resume = ReadResume(consumer, request);
    if (!resume) return resume.error();
    Result<bool> snapshot = SnapshotArg(request);
    if (!snapshot) return snapshot.error();
    Result<std::vector<Filter>> filter = ParseListFilter(consumer, request.Arg("filter"), request.connection().limits());
    if (!filter) return filter.error();
    Query query = consumer.GetQueryset(request);
    query.filters.insert(query.filters.end(), filter->begin(), filter->end());
    const Schema& schema = consumer.schema();
    std::vector<Filter> filters = *filter;
    Belongs belongs = [&consumer, &request, &schema, filters](const Row& row) {
        return consumer.CanSee(request, row) && RowMatches(schema, row, filters);
    };
    std::unique_ptr<PendingSubscriptions> pending =
        consumer.registry().SubscribeList(request.connection(), consumer, std::move(*filter), *request_id);
    if (!pending) return SubscriptionLimitReply(request.connection());
    // The snapshot's rows come from the query (already filtered): every one belongs.
    return StartTableSubscription(consumer, request, std::move(pending), *resume, *snapshot, query, nullptr,
                                  *request_id, belongs);
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

std::string PushPrefix(std::string_view action, int status, std::string_view data_json, std::int64_t version,
                       std::string_view epoch) {
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
    out += R"(,"epoch":")";
    out += epoch;
    out += R"(","request_id":)";
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
        Result<Resume> resume = ReadResume(consumer, request);
        if (!resume) return resume.error();
        Result<bool> snapshot = SnapshotArg(request);
        if (!snapshot) return snapshot.error();
        Result<std::vector<std::string>> groups = shared->request_groups(request);
        if (!groups) return groups.error();
        std::unique_ptr<PendingSubscriptions> pending =
            consumer.registry().SubscribeGroups(request.connection(), consumer, shared, *groups, *request_id);
        if (!pending) return SubscriptionLimitReply(request.connection());
        std::vector<std::string> wanted = *groups;
        Belongs in_groups = [shared, wanted](const Row& row) {
            std::vector<std::string> of_row = shared->row_groups(row);
            return std::any_of(of_row.begin(), of_row.end(), [&](const std::string& group) {
                return std::find(wanted.begin(), wanted.end(), group) != wanted.end();
            });
        };
        Belongs belongs = [&consumer, &request, in_groups](const Row& row) {
            return consumer.CanSee(request, row) && in_groups(row);
        };
        return StartTableSubscription(consumer, request, std::move(pending), *resume, *snapshot,
                                      consumer.GetQueryset(request), in_groups, *request_id, belongs);
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
