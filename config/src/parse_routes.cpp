// The "routes" key: consumer routes (model, fields, mixins, queryset, permissions, pagination, ...), multiplexer
// routes ("streams") and routed routes ("routepatterns"); and the names a route may use (mixins, permissions).

#include "parse.hpp"

#include <syncline/core/consumer/permissions.hpp>
#include <syncline/core/protocol/routed.hpp>

#include <algorithm>
#include <map>

namespace syncline::config {
namespace {

using namespace detail;

// A queryset object: {"author": "alice", "likes__gte": 3}, Django lookups on declared fields.
std::vector<Filter> ParseQueryset(const rapidjson::Value& v, const std::string& path, const Schema& schema) {
    if (!v.IsObject()) Fail(path, "expected an object of lookups such as {\"author\": \"alice\"}");
    std::vector<Filter> filters;
    for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) {
        std::string key = it->name.GetString();
        std::string key_path = path + "." + key;
        auto lookup = ParseLookup(key);
        if (!lookup) Fail(key_path, "unknown lookup operator");
        auto index = schema.FieldIndex(lookup->first);
        if (!index) Fail(key_path, "unknown field \"" + lookup->first + "\" of model \"" + schema.table() + "\"");
        Filter filter{lookup->first, lookup->second, Value(), {}};
        const FieldSpec& field = schema.field(*index);
        auto convert = [&](const rapidjson::Value& json) -> Value {
            if (json.IsNull()) return Value();
            if (json.IsBool() && lookup->second != FilterOp::kIsNull) return Value(json.GetBool());
            if (auto value = LookupValue(field, json)) return *value;
            if (json.IsBool()) return Value(json.GetBool());
            if (json.IsNumber()) return Value(json.GetDouble());
            if (json.IsString()) return Value(std::string(json.GetString(), json.GetStringLength()));
            Fail(key_path, "expected a scalar value");
        };
        if (lookup->second == FilterOp::kIn) {
            if (!it->value.IsArray()) Fail(key_path, "expected a list of values");
            for (const auto& item : it->value.GetArray()) filter.values.push_back(convert(item));
        } else {
            filter.value = convert(it->value);
        }
        filters.push_back(std::move(filter));
    }
    return filters;
}

// The field of an owner rule or of "owner_field": a field of the model that can hold a user's id (integer or text).
std::string OwnerFieldName(const rapidjson::Value& v, const std::string& path, const Schema& schema) {
    std::string field = GetString(v, path);
    if (schema.from_database()) return field;  // checked when the consumer binds, once the table is read
    std::vector<std::string> names;
    for (const auto& f : schema.fields()) {
        if (CanHoldOwner(f)) names.push_back(f.name);
    }
    std::optional<std::size_t> index = schema.FieldIndex(field);
    if (!index) {
        Fail(path, "unknown field \"" + field + "\" of model \"" + schema.table() + "\"; valid fields: " + Join(names));
    }
    if (!CanHoldOwner(schema.field(*index))) {
        Fail(path, "field \"" + field + "\" is a " + std::string(FieldTypeName(schema.field(*index).type)) +
                       " field and cannot hold a user id; valid fields: " + Join(names));
    }
    return field;
}

const char* const kPermissionForms =
    "allow_any, is_authenticated, read_only, {\"owner\": \"<field>\"}, {\"group\": \"<name>\"}, "
    "{\"and\": [...]}, {\"or\": [...]}, {\"not\": <permission>}";

// One permission: a name, or an object with exactly one key naming its form.
PermissionPtr ParsePermission(const rapidjson::Value& v, const std::string& path, const Schema& schema) {
    if (v.IsString()) {
        std::string name(v.GetString(), v.GetStringLength());
        if (name == "allow_any") return std::make_shared<AllowAny>();
        if (name == "is_authenticated") return std::make_shared<IsAuthenticated>();
        if (name == "read_only") return std::make_shared<ReadOnly>();
        Fail(path, "unknown permission \"" + name + "\"; valid permissions: " + kPermissionForms);
    }
    if (!v.IsObject() || v.MemberCount() != 1) {
        Fail(path, std::string("expected a permission name or an object with one key; valid permissions: ") +
                       kPermissionForms);
    }
    std::string form = v.MemberBegin()->name.GetString();
    const rapidjson::Value& arg = v.MemberBegin()->value;
    std::string arg_path = path + "." + form;
    if (form == "owner") return std::make_shared<IsOwner>(OwnerFieldName(arg, arg_path, schema));
    if (form == "group") {
        std::string group = GetString(arg, arg_path);
        if (group.empty()) Fail(arg_path, "empty group name");
        return std::make_shared<InGroup>(group);
    }
    if (form == "and" || form == "or") {
        if (!arg.IsArray() || arg.Empty()) Fail(arg_path, "expected a non-empty list of permissions");
        std::vector<PermissionPtr> parts;
        for (rapidjson::SizeType i = 0; i < arg.Size(); ++i) {
            parts.push_back(ParsePermission(arg[i], arg_path + "[" + std::to_string(i) + "]", schema));
        }
        return form == "and" ? AllOf(std::move(parts)) : AnyOf(std::move(parts));
    }
    if (form == "not") return Not(ParsePermission(arg, arg_path, schema));
    Fail(arg_path, "unknown permission form; valid permissions: " + std::string(kPermissionForms));
}

const std::map<std::string, Mixin (*)()>& MixinTable() {
    static const std::map<std::string, Mixin (*)()> table = {{"list", ListModelMixin},
                                                             {"retrieve", RetrieveModelMixin},
                                                             {"create", CreateModelMixin},
                                                             {"update", UpdateModelMixin},
                                                             {"patch", PatchModelMixin},
                                                             {"delete", DeleteModelMixin},
                                                             {"observe_instance", ObserverModelInstanceMixin},
                                                             {"observe_list", ListObserverMixin}};
    return table;
}

}  // namespace

namespace detail {

// A consumer route, or (handler_mode) one handler of a routed route: the same keys, but a "handler" class instead of
// "mixins" and no per-connection "rate_limit".
RouteConfig ParseRoute(const std::string& route_path, const rapidjson::Value& v, const std::string& path,
                       const std::vector<Schema>& models, bool handler_mode) {
    if (route_path.empty() || route_path[0] != '/') Fail(path, "a route path must start with /");
    if (!v.IsObject()) Fail(path, "expected an object such as {\"model\": \"posts\", \"mixins\": [\"list\"]}");
    std::vector<std::string> keys = {"model",       "fields",         "read_only",        "write_only",
                                     "mixins",      "lookup_field",   "lookup_url_kwarg", "queryset",
                                     "rate_limit",  "group_by",       "filter_fields",    "ordering_fields",
                                     "pagination",  "page_size",      "max_page_size",    "permissions",
                                     "owner_field", "allowed_origins"};
    if (handler_mode) {
        *std::find(keys.begin(), keys.end(), "mixins") = "handler";
        keys.erase(std::find(keys.begin(), keys.end(), "rate_limit"));
        keys.erase(std::find(keys.begin(), keys.end(), "allowed_origins"));
    }
    CheckKeys(v, path, keys);
    RouteConfig route;
    route.path = route_path;
    const rapidjson::Value* model = Member(v, "model");
    if (!model) Fail(path + ".model", "missing");
    route.consumer.model = GetString(*model, path + ".model");
    auto schema_it =
        std::find_if(models.begin(), models.end(), [&](const Schema& s) { return s.table() == route.consumer.model; });
    if (schema_it == models.end()) {
        std::vector<std::string> names;
        for (const auto& s : models) names.push_back(s.table());
        Fail(path + ".model", "unknown model \"" + route.consumer.model + "\"; valid models: " + Join(names));
    }
    const Schema& schema = *schema_it;
    // A model with "fields": "from_database" has no fields until the server reads its table: the field names a route
    // gives are checked then (a consumer naming a column the table lacks fails the server's start), and the keys
    // that need the fields' types now are refused.
    const bool fields_later = schema.from_database();
    auto needs_fields = [&](const char* key) {
        if (fields_later) {
            Fail(path + "." + key, "not available on model \"" + schema.table() +
                                       "\", whose fields are read from the database (\"fields\": \"from_database\")");
        }
    };
    std::vector<std::string> field_names;
    for (const auto& f : schema.fields()) field_names.push_back(f.name);
    // `allow_pk`: the serializer's lists may name "pk", the primary key whatever its column (see SerializerOptions).
    auto field_list = [&](const char* key, bool allow_pk = false) {
        std::vector<std::string> out;
        if (const auto* p = Member(v, key)) {
            out = GetStringList(*p, path + "." + key);
            for (std::size_t i = 0; i < out.size(); ++i) {
                if (!fields_later && !schema.FieldIndex(out[i]) && !(allow_pk && out[i] == "pk")) {
                    Fail(path + "." + key + "[" + std::to_string(i) + "]",
                         "unknown field \"" + out[i] + "\"; valid fields: " +
                             (allow_pk && !schema.FieldIndex("pk") ? "pk, " : "") + Join(field_names));
                }
            }
        }
        return out;
    };
    route.consumer.serializer.fields = field_list("fields", true);
    route.consumer.serializer.read_only = field_list("read_only", true);
    route.consumer.serializer.write_only = field_list("write_only");
    if (const auto* p = Member(v, "lookup_field")) {
        route.consumer.lookup_field = GetString(*p, path + ".lookup_field");
        if (!fields_later && route.consumer.lookup_field != "pk" && !schema.FieldIndex(route.consumer.lookup_field)) {
            Fail(path + ".lookup_field",
                 "unknown field \"" + route.consumer.lookup_field + "\"; valid fields: pk, " + Join(field_names));
        }
    }
    if (const auto* p = Member(v, "lookup_url_kwarg")) {
        route.consumer.lookup_url_kwarg = GetString(*p, path + ".lookup_url_kwarg");
    }
    if (Member(v, "queryset")) needs_fields("queryset");
    if (const auto* p = Member(v, "queryset")) route.consumer.queryset = ParseQueryset(*p, path + ".queryset", schema);
    if (const auto* p = Member(v, "owner_field")) {
        route.consumer.owner_field = OwnerFieldName(*p, path + ".owner_field", schema);
    }
    if (const auto* p = Member(v, "rate_limit")) route.endpoint.rate_limit = ParseRateLimit(*p, path + ".rate_limit");
    if (const auto* p = Member(v, "allowed_origins")) {
        route.endpoint.allowed_origins = ParseAllowedOrigins(*p, path + ".allowed_origins");
    }
    if (const auto* p = Member(v, "permissions")) {
        if (!p->IsArray()) {
            Fail(path + ".permissions", std::string("expected a list; valid permissions: ") + kPermissionForms);
        }
        for (rapidjson::SizeType i = 0; i < p->Size(); ++i) {
            route.consumer.permissions.push_back(
                ParsePermission((*p)[i], path + ".permissions[" + std::to_string(i) + "]", schema));
        }
    }
    route.consumer.filter_fields = field_list("filter_fields");
    route.consumer.ordering_fields = field_list("ordering_fields");
    for (const char* key : {"filter_fields", "ordering_fields"}) {
        const auto& fields =
            std::string(key) == "filter_fields" ? route.consumer.filter_fields : route.consumer.ordering_fields;
        for (const auto& field : fields) {
            const auto& write_only = route.consumer.serializer.write_only;
            if (std::find(write_only.begin(), write_only.end(), field) != write_only.end()) {
                Fail(path + "." + key, "\"" + field + "\" is write-only; filtering or ordering on it would leak it");
            }
        }
    }
    std::string pagination;
    if (const auto* p = Member(v, "pagination")) {
        pagination = GetString(*p, path + ".pagination");
        if (pagination != "limit_offset" && pagination != "streamed") {
            Fail(path + ".pagination",
                 "unknown pagination \"" + pagination + "\"; valid values: limit_offset, streamed");
        }
    }
    if (const auto* p = Member(v, "page_size"))
        route.consumer.page_size = GetInteger(*p, path + ".page_size", 1, 100000);
    if (const auto* p = Member(v, "max_page_size")) {
        route.consumer.max_page_size = GetInteger(*p, path + ".max_page_size", 1, 100000);
    }
    if (const auto* p = Member(v, "group_by")) {
        needs_fields("group_by");
        route.group_by = GetString(*p, path + ".group_by");
        if (!schema.FieldIndex(route.group_by)) {
            Fail(path + ".group_by", "unknown field \"" + route.group_by + "\"; valid fields: " + Join(field_names));
        }
        route.consumer.mixins.push_back(ModelObserverMixin(GroupByField(schema, route.group_by)));
    }
    if (handler_mode) {
        const rapidjson::Value* handler = Member(v, "handler");
        if (!handler) Fail(path + ".handler", "missing; valid handlers: " + Join(RoutedHandlerNames()));
        std::string name = GetString(*handler, path + ".handler");
        try {
            for (auto& mixin : RoutedHandlerMixins(name)) route.consumer.mixins.push_back(std::move(mixin));
        } catch (const std::out_of_range&) {
            Fail(path + ".handler", "unknown handler \"" + name + "\"; valid handlers: " + Join(RoutedHandlerNames()));
        }
        route.mixins = {name};
        if (pagination == "streamed") {
            // A routed consumer answers each frame with one reply in its own envelope: no stream of frames.
            Fail(path + ".pagination", "\"streamed\" is not available on a routed handler; valid values: limit_offset");
        }
        bool has_list = false;
        for (const auto& mixin : route.consumer.mixins) {
            for (const auto& action : mixin.actions) has_list = has_list || action.name == "list";
        }
        if (pagination == "limit_offset" && has_list) route.consumer.mixins.push_back(PaginatedModelListMixin());
        return route;
    }
    const rapidjson::Value* mixins = Member(v, "mixins");
    if (!mixins) Fail(path + ".mixins", "missing; valid mixins: " + Join(ConfigMixinNames()));
    route.mixins = GetStringList(*mixins, path + ".mixins");
    if (route.mixins.empty()) Fail(path + ".mixins", "empty; valid mixins: " + Join(ConfigMixinNames()));
    for (std::size_t i = 0; i < route.mixins.size(); ++i) {
        try {
            route.consumer.mixins.push_back(MixinByName(route.mixins[i]));
        } catch (const std::out_of_range&) {
            Fail(path + ".mixins[" + std::to_string(i) + "]",
                 "unknown mixin \"" + route.mixins[i] + "\"; valid mixins: " + Join(ConfigMixinNames()));
        }
    }
    // Each replaces "list"; streamed also adds list_cancel.
    if (pagination == "limit_offset") route.consumer.mixins.push_back(PaginatedModelListMixin());
    if (pagination == "streamed") route.consumer.mixins.push_back(StreamedPaginatedListMixin());
    return route;
}

// A multiplexer route: {"streams": {"posts": "/ws/posts/"}}. The paths are checked once every route is known.
RouteConfig ParseMultiplexRoute(const std::string& route_path, const rapidjson::Value& v, const std::string& path) {
    CheckKeys(v, path, {"streams", "allowed_origins"});
    const rapidjson::Value* found = Member(v, "streams");
    if (!found) Fail(path + ".streams", "missing");
    const rapidjson::Value& streams = *found;
    if (!streams.IsObject() || streams.MemberCount() == 0) {
        Fail(path + ".streams",
             "expected a non-empty object of stream names to route paths such as "
             "{\"posts\": \"/ws/posts/\"}");
    }
    RouteConfig route;
    route.path = route_path;
    if (const auto* p = Member(v, "allowed_origins")) {
        route.endpoint.allowed_origins = ParseAllowedOrigins(*p, path + ".allowed_origins");
    }
    for (auto it = streams.MemberBegin(); it != streams.MemberEnd(); ++it) {
        std::string name(it->name.GetString(), it->name.GetStringLength());
        if (name.empty()) Fail(path + ".streams", "a stream name may not be empty");
        route.streams.emplace_back(name, GetString(it->value, path + ".streams." + name));
    }
    return route;
}

// A routed route: {"routepatterns": {"<pattern>": {<route keys>, "handler": "..."}}}, in match order.
RouteConfig ParseRoutedRoute(const std::string& route_path, const rapidjson::Value& v, const std::string& path,
                             const std::vector<Schema>& models) {
    CheckKeys(v, path, {"routepatterns", "rate_limit", "allowed_origins"});
    const rapidjson::Value* found = Member(v, "routepatterns");
    if (!found) Fail(path + ".routepatterns", "missing");
    const rapidjson::Value& patterns = *found;
    if (!patterns.IsObject() || patterns.MemberCount() == 0) {
        Fail(path + ".routepatterns",
             "expected a non-empty object of patterns to handlers such as "
             "{\"posts/(?P<pk>[^/]+)/$\": {\"model\": \"posts\", \"handler\": "
             "\"RetrieveAPIActionHandler\"}}");
    }
    RouteConfig route;
    route.path = route_path;
    if (const auto* p = Member(v, "rate_limit")) route.endpoint.rate_limit = ParseRateLimit(*p, path + ".rate_limit");
    if (const auto* p = Member(v, "allowed_origins")) {
        route.endpoint.allowed_origins = ParseAllowedOrigins(*p, path + ".allowed_origins");
    }
    for (auto it = patterns.MemberBegin(); it != patterns.MemberEnd(); ++it) {
        std::string pattern(it->name.GetString(), it->name.GetStringLength());
        std::string pattern_path = path + ".routepatterns." + pattern;
        if (auto error = RoutePatternError(pattern)) Fail(pattern_path, "invalid regular expression: " + *error);
        RouteConfig handler = ParseRoute(route_path, it->value, pattern_path, models, true);
        route.routepatterns.push_back(RoutePatternConfig{pattern, handler.mixins[0], std::move(handler.consumer)});
    }
    return route;
}

}  // namespace detail

GroupObserver GroupByField(const Schema& schema, const std::string& field) {
    std::size_t index = schema.FieldIndex(field).value();
    FieldSpec spec = schema.field(index);
    GroupObserver observer;
    observer.row_groups = [index, field](const Row& row) {
        return std::vector<std::string>{"all", field + "=" + JsonOfValue(row.at(index))};
    };
    observer.request_groups = [spec, field](const ActionRequest& request) -> Result<std::vector<std::string>> {
        const rapidjson::Value* arg = request.Arg(field);
        if (!arg) return std::vector<std::string>{"all"};
        // Coerced as a lookup on the field, so "5" and 5 name the same group of an integer field.
        std::optional<Value> value = arg->IsNull() ? std::optional<Value>(Value()) : LookupValue(spec, *arg);
        if (!value) return ActionResult::Message(400, "Invalid value for group field \"" + field + "\".");
        return std::vector<std::string>{field + "=" + JsonOfValue(*value)};
    };
    return observer;
}

const std::vector<std::string>& ConfigMixinNames() {
    static const std::vector<std::string> names = {"list",  "retrieve", "create",           "update",
                                                   "patch", "delete",   "observe_instance", "observe_list"};
    return names;
}

Mixin MixinByName(const std::string& name) { return MixinTable().at(name)(); }

const std::vector<std::string>& ConfigPermissionNames() {
    static const std::vector<std::string> names = {"allow_any", "is_authenticated", "read_only"};
    return names;
}

}  // namespace syncline::config
