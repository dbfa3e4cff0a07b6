#include <syncline/core/config.hpp>

#include <syncline/auth/jwt_authenticator.hpp>
#include <syncline/core/protocol/json_input.hpp>
#include <syncline/core/consumer/permissions.hpp>
#include <syncline/core/protocol/routed.hpp>

#include <rapidjson/document.h>

#include <algorithm>
#include <map>

#include "json_util.hpp"

namespace syncline {
namespace {

std::string Join(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
    return out;
}

[[noreturn]] void Fail(const std::string& path, const std::string& problem) { throw ConfigError(path + ": " + problem); }

void CheckKeys(const rapidjson::Value& object, const std::string& path, const std::vector<std::string>& valid) {
    for (auto it = object.MemberBegin(); it != object.MemberEnd(); ++it) {
        std::string key = it->name.GetString();
        if (std::find(valid.begin(), valid.end(), key) == valid.end()) {
            Fail(path.empty() ? key : path + "." + key, "unknown key; valid keys: " + Join(valid));
        }
    }
}

const rapidjson::Value* Member(const rapidjson::Value& object, const char* key) {
    auto it = object.FindMember(key);
    return it == object.MemberEnd() ? nullptr : &it->value;
}

std::string GetString(const rapidjson::Value& v, const std::string& path) {
    if (!v.IsString()) Fail(path, "expected a string");
    return std::string(v.GetString(), v.GetStringLength());
}

std::int64_t GetInteger(const rapidjson::Value& v, const std::string& path, std::int64_t min, std::int64_t max) {
    if (!v.IsInt64() || v.GetInt64() < min || v.GetInt64() > max) {
        Fail(path, "expected an integer from " + std::to_string(min) + " to " + std::to_string(max));
    }
    return v.GetInt64();
}

double GetNumber(const rapidjson::Value& v, const std::string& path) {
    if (!v.IsNumber() || v.GetDouble() < 0) Fail(path, "expected a number >= 0");
    return v.GetDouble();
}

std::vector<std::string> GetStringList(const rapidjson::Value& v, const std::string& path) {
    if (!v.IsArray()) Fail(path, "expected a list of strings");
    std::vector<std::string> out;
    for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
        out.push_back(GetString(v[i], path + "[" + std::to_string(i) + "]"));
    }
    return out;
}

// "allowed_origins": ["https://app.example.com", "http://localhost:3000"] or ["*"].
AllowedOrigins ParseAllowedOrigins(const rapidjson::Value& v, const std::string& path) {
    if (!v.IsArray()) Fail(path, "expected a list of origins such as [\"https://app.example.com\"]");
    std::vector<std::string> origins = GetStringList(v, path);
    for (std::size_t i = 0; i < origins.size(); ++i) {
        if (std::string error = OriginEntryError(origins[i]); !error.empty()) {
            Fail(path + "[" + std::to_string(i) + "]", error);
        }
    }
    return origins;
}

RateLimit ParseRateLimit(const rapidjson::Value& v, const std::string& path) {
    if (!v.IsObject()) Fail(path, "expected an object such as {\"per_second\": 50, \"burst\": 100}");
    CheckKeys(v, path, {"per_second", "burst", "close_after"});
    RateLimit limit;
    if (auto* p = Member(v, "per_second")) limit.per_second = GetNumber(*p, path + ".per_second");
    if (auto* p = Member(v, "burst")) limit.burst = GetNumber(*p, path + ".burst");
    if (auto* p = Member(v, "close_after")) {
        limit.close_after = static_cast<int>(GetInteger(*p, path + ".close_after", 0, 1000000));
    }
    return limit;
}

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

// The top-level "auth" object: a token table and/or HS256 JWT, where tokens are read from, and the policy.
AuthOptions ParseAuth(const rapidjson::Value& v) {
    const std::string path = "auth";
    if (!v.IsObject()) {
        Fail(path, "expected an object such as {\"jwt\": {\"secret\": \"...\"}, \"anonymous\": \"allow\"}");
    }
    CheckKeys(v, path, {"tokens", "jwt", "anonymous", "invalid_token", "bearer_header", "query_param", "cookie"});
    TokenSources sources;
    if (const auto* p = Member(v, "bearer_header")) {
        if (!p->IsBool()) Fail(path + ".bearer_header", "expected true or false");
        sources.bearer_header = p->GetBool();
    }
    if (const auto* p = Member(v, "query_param")) sources.query_param = GetString(*p, path + ".query_param");
    if (const auto* p = Member(v, "cookie")) sources.cookie = GetString(*p, path + ".cookie");
    std::vector<std::shared_ptr<const Authenticator>> chain;
    if (const auto* tokens = Member(v, "tokens")) {
        const std::string tokens_path = path + ".tokens";
        if (!tokens->IsObject() || tokens->MemberCount() == 0) {
            Fail(tokens_path,
                 "expected a non-empty object such as {\"<token>\": {\"user\": \"alice\", \"id\": 1}}");
        }
        std::map<std::string, User> table;
        std::size_t index = 0;
        for (auto it = tokens->MemberBegin(); it != tokens->MemberEnd(); ++it, ++index) {
            // The token itself never appears in an error message: entries are named by position.
            std::string entry_path = tokens_path + "[" + std::to_string(index) + "]";
            std::string token(it->name.GetString(), it->name.GetStringLength());
            if (token.empty()) Fail(entry_path, "empty token");
            const rapidjson::Value& e = it->value;
            if (!e.IsObject()) Fail(entry_path, "expected an object such as {\"user\": \"alice\", \"id\": 1}");
            CheckKeys(e, entry_path, {"user", "id", "groups"});
            User user;
            if (const auto* p = Member(e, "user")) user.name = GetString(*p, entry_path + ".user");
            if (const auto* p = Member(e, "id")) {
                if (p->IsInt64()) {
                    user.id = std::to_string(p->GetInt64());
                } else if (p->IsString() && p->GetStringLength() > 0) {
                    user.id = p->GetString();
                } else {
                    Fail(entry_path + ".id", "expected an integer or a non-empty string");
                }
            }
            if (user.name.empty() && user.id.empty()) Fail(entry_path, "expected \"user\" and/or \"id\"");
            if (user.id.empty()) user.id = user.name;
            if (user.name.empty()) user.name = user.id;
            if (const auto* p = Member(e, "groups")) user.groups = GetStringList(*p, entry_path + ".groups");
            table.emplace(std::move(token), std::move(user));
        }
        chain.push_back(std::make_shared<auth::StaticTokenAuthenticator>(std::move(table), sources));
    }
    if (const auto* jwt = Member(v, "jwt")) {
        const std::string jwt_path = path + ".jwt";
        if (!jwt->IsObject()) Fail(jwt_path, "expected an object such as {\"secret\": \"...\", \"leeway_s\": 30}");
        CheckKeys(*jwt, jwt_path, {"secret", "leeway_s"});
        auth::JwtOptions options;
        const auto* secret = Member(*jwt, "secret");
        if (!secret) Fail(jwt_path + ".secret", "missing (the HS256 key your backend signs tokens with)");
        options.secret = GetString(*secret, jwt_path + ".secret");
        if (options.secret.empty()) Fail(jwt_path + ".secret", "empty");
        if (const auto* p = Member(*jwt, "leeway_s")) {
            options.leeway_s = GetInteger(*p, jwt_path + ".leeway_s", 0, 86400);
        }
        chain.push_back(std::make_shared<auth::JwtAuthenticator>(std::move(options), sources));
    }
    if (chain.empty()) Fail(path, "expected \"tokens\" and/or \"jwt\"");
    AuthOptions auth;
    auth.authenticator = chain.size() == 1 ? chain.front() : std::make_shared<ChainAuthenticator>(std::move(chain));
    if (const auto* p = Member(v, "anonymous")) {
        std::string policy = GetString(*p, path + ".anonymous");
        if (policy == "allow") {
            auth.anonymous = AnonymousPolicy::kAllow;
        } else if (policy == "refuse") {
            auth.anonymous = AnonymousPolicy::kRefuse;
        } else {
            Fail(path + ".anonymous", "unknown value \"" + policy + "\"; valid values: allow, refuse");
        }
    }
    if (const auto* p = Member(v, "invalid_token")) {
        std::string policy = GetString(*p, path + ".invalid_token");
        if (policy == "anonymous") {
            auth.invalid_credential = InvalidCredentialPolicy::kAnonymous;
        } else if (policy == "refuse") {
            auth.invalid_credential = InvalidCredentialPolicy::kRefuse;
        } else {
            Fail(path + ".invalid_token", "unknown value \"" + policy + "\"; valid values: anonymous, refuse");
        }
    }
    return auth;
}

// A consumer route, or (handler_mode) one handler of a routed route: the same keys, but a "handler" class instead of
// "mixins" and no per-connection "rate_limit".
RouteConfig ParseRoute(const std::string& route_path, const rapidjson::Value& v, const std::string& path,
                       const std::vector<Schema>& models, bool handler_mode = false) {
    if (route_path.empty() || route_path[0] != '/') Fail(path, "a route path must start with /");
    if (!v.IsObject()) Fail(path, "expected an object such as {\"model\": \"posts\", \"mixins\": [\"list\"]}");
    std::vector<std::string> keys = {"model", "fields", "read_only", "write_only", "mixins", "lookup_field",
                                     "lookup_url_kwarg", "queryset", "rate_limit", "group_by", "filter_fields",
                                     "ordering_fields", "pagination", "page_size", "max_page_size", "permissions",
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
    auto schema_it = std::find_if(models.begin(), models.end(),
                                  [&](const Schema& s) { return s.table() == route.consumer.model; });
    if (schema_it == models.end()) {
        std::vector<std::string> names;
        for (const auto& s : models) names.push_back(s.table());
        Fail(path + ".model", "unknown model \"" + route.consumer.model + "\"; valid models: " + Join(names));
    }
    const Schema& schema = *schema_it;
    std::vector<std::string> field_names;
    for (const auto& f : schema.fields()) field_names.push_back(f.name);
    auto field_list = [&](const char* key) {
        std::vector<std::string> out;
        if (const auto* p = Member(v, key)) {
            out = GetStringList(*p, path + "." + key);
            for (std::size_t i = 0; i < out.size(); ++i) {
                if (!schema.FieldIndex(out[i])) {
                    Fail(path + "." + key + "[" + std::to_string(i) + "]",
                         "unknown field \"" + out[i] + "\"; valid fields: " + Join(field_names));
                }
            }
        }
        return out;
    };
    route.consumer.serializer.fields = field_list("fields");
    route.consumer.serializer.read_only = field_list("read_only");
    route.consumer.serializer.write_only = field_list("write_only");
    if (const auto* p = Member(v, "lookup_field")) {
        route.consumer.lookup_field = GetString(*p, path + ".lookup_field");
        if (route.consumer.lookup_field != "pk" && !schema.FieldIndex(route.consumer.lookup_field)) {
            Fail(path + ".lookup_field", "unknown field \"" + route.consumer.lookup_field +
                                             "\"; valid fields: pk, " + Join(field_names));
        }
    }
    if (const auto* p = Member(v, "lookup_url_kwarg")) {
        route.consumer.lookup_url_kwarg = GetString(*p, path + ".lookup_url_kwarg");
    }
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
        const auto& fields = std::string(key) == "filter_fields" ? route.consumer.filter_fields
                                                                 : route.consumer.ordering_fields;
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
    if (const auto* p = Member(v, "page_size")) route.consumer.page_size = GetInteger(*p, path + ".page_size", 1, 100000);
    if (const auto* p = Member(v, "max_page_size")) {
        route.consumer.max_page_size = GetInteger(*p, path + ".max_page_size", 1, 100000);
    }
    if (const auto* p = Member(v, "group_by")) {
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
        Fail(path + ".streams", "expected a non-empty object of stream names to route paths such as "
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
        Fail(path + ".routepatterns", "expected a non-empty object of patterns to handlers such as "
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

const std::map<std::string, Mixin (*)()>& MixinTable() {
    static const std::map<std::string, Mixin (*)()> table = {
        {"list", ListModelMixin},     {"retrieve", RetrieveModelMixin}, {"create", CreateModelMixin},
        {"update", UpdateModelMixin}, {"patch", PatchModelMixin},       {"delete", DeleteModelMixin},
        {"observe_instance", ObserverModelInstanceMixin}, {"observe_list", ListObserverMixin}};
    return table;
}

}  // namespace

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

ServerConfig ParseConfig(std::string_view json_text) {
    rapidjson::Document doc;
    if (JsonInputError error = ParseUntrustedJson(doc, json_text, kMaxJsonDepthLimit, true)) {
        throw ConfigError("config: invalid JSON at offset " + std::to_string(error.offset) + ": " + error.reason);
    }
    if (!doc.IsObject()) throw ConfigError("config: expected a JSON object");
    CheckKeys(doc, "",
              {"database", "listen", "workers", "max_message_bytes", "ping_interval_ms", "pong_timeout_ms",
               "synchronous", "models", "routes", "rate_limit", "bus", "trim_horizon_s", "max_queue_bytes",
               "slow_reader_timeout_ms", "auth", "action_threads", "max_json_depth", "max_request_id_bytes",
               "max_subscriptions_per_socket", "max_filter_values", "max_list_filter_values_per_socket",
               "max_pending_actions", "statement_cache_bytes",
               "allowed_origins", "max_connections", "max_handshakes"});
    ServerConfig config;
    const rapidjson::Value* database = Member(doc, "database");
    if (!database) Fail("database", "missing (the SQLite file, e.g. \"app.db\")");
    config.database = GetString(*database, "database");
    if (config.database.empty()) Fail("database", "empty");
    if (const auto* listen = Member(doc, "listen")) {
        if (!listen->IsObject()) Fail("listen", "expected an object such as {\"host\": \"127.0.0.1\", \"port\": 8000}");
        CheckKeys(*listen, "listen", {"host", "port"});
        if (const auto* p = Member(*listen, "host")) config.host = GetString(*p, "listen.host");
        if (const auto* p = Member(*listen, "port")) {
            config.port = static_cast<std::uint16_t>(GetInteger(*p, "listen.port", 0, 65535));
        }
    }
    if (const auto* p = Member(doc, "workers")) config.workers = static_cast<unsigned>(GetInteger(*p, "workers", 0, 256));
    if (const auto* p = Member(doc, "max_message_bytes")) {
        config.max_message_bytes = static_cast<std::size_t>(GetInteger(*p, "max_message_bytes", 1, 1 << 30));
    }
    if (const auto* p = Member(doc, "ping_interval_ms")) {
        config.ping_interval_ms = GetInteger(*p, "ping_interval_ms", 0, 3600000);
    }
    if (const auto* p = Member(doc, "pong_timeout_ms")) {
        config.pong_timeout_ms = GetInteger(*p, "pong_timeout_ms", 0, 3600000);
    }
    if (const auto* p = Member(doc, "synchronous")) {
        config.synchronous = GetString(*p, "synchronous");
        if (config.synchronous != "normal" && config.synchronous != "full" && config.synchronous != "off") {
            Fail("synchronous", "unknown value \"" + config.synchronous + "\"; valid values: normal, full, off");
        }
    }
    if (const auto* bus = Member(doc, "bus")) {
        if (!bus->IsObject()) Fail("bus", "expected an object such as {\"redis\": \"redis://127.0.0.1:6379/0\"}");
        CheckKeys(*bus, "bus", {"redis", "shards", "channel_prefix"});
        if (const auto* p = Member(*bus, "redis")) {
            config.bus.redis = GetString(*p, "bus.redis");
            if (config.bus.redis.rfind("redis://", 0) != 0) Fail("bus.redis", "expected a redis://host:port/db URL");
        }
        if (const auto* p = Member(*bus, "shards")) config.bus.shards = static_cast<unsigned>(GetInteger(*p, "bus.shards", 1, 4096));
        if (const auto* p = Member(*bus, "channel_prefix")) config.bus.channel_prefix = GetString(*p, "bus.channel_prefix");
    }
    if (const auto* p = Member(doc, "trim_horizon_s")) config.trim_horizon_s = GetInteger(*p, "trim_horizon_s", 1, 365 * 86400);
    if (const auto* p = Member(doc, "max_queue_bytes")) {
        config.max_queue_bytes = static_cast<std::size_t>(GetInteger(*p, "max_queue_bytes", 4096, std::int64_t{1} << 34));
    }
    if (const auto* p = Member(doc, "slow_reader_timeout_ms")) {
        config.slow_reader_timeout_ms = GetInteger(*p, "slow_reader_timeout_ms", 0, 86400000);
    }
    if (const auto* p = Member(doc, "action_threads")) {
        config.action_threads = static_cast<unsigned>(GetInteger(*p, "action_threads", 0, 256));
    }
    if (const auto* p = Member(doc, "max_json_depth")) {
        config.limits.max_json_depth =
            static_cast<std::size_t>(GetInteger(*p, "max_json_depth", 2, static_cast<std::int64_t>(kMaxJsonDepthLimit)));
    }
    if (const auto* p = Member(doc, "max_request_id_bytes")) {
        config.limits.max_request_id_bytes =
            static_cast<std::size_t>(GetInteger(*p, "max_request_id_bytes", 16, std::int64_t{1} << 20));
    }
    if (const auto* p = Member(doc, "max_subscriptions_per_socket")) {
        config.limits.max_subscriptions =
            static_cast<std::size_t>(GetInteger(*p, "max_subscriptions_per_socket", 1, 1000000));
    }
    if (const auto* p = Member(doc, "max_list_filter_values_per_socket")) {
        config.limits.max_list_filter_values =
            static_cast<std::size_t>(GetInteger(*p, "max_list_filter_values_per_socket", 1, 100000000));
    }
    if (const auto* p = Member(doc, "max_filter_values")) {
        config.limits.max_filter_values = static_cast<std::size_t>(GetInteger(*p, "max_filter_values", 1, 100000));
    }
    if (const auto* p = Member(doc, "max_pending_actions")) {
        config.limits.max_pending_actions =
            static_cast<std::size_t>(GetInteger(*p, "max_pending_actions", 0, 1 << 20));
    }
    if (const auto* p = Member(doc, "statement_cache_bytes")) {
        config.statement_cache_bytes =
            static_cast<std::size_t>(GetInteger(*p, "statement_cache_bytes", 0, std::int64_t{1} << 34));
    }
    if (const auto* p = Member(doc, "max_connections")) {
        config.max_connections = static_cast<std::size_t>(GetInteger(*p, "max_connections", 1, 10000000));
    }
    if (const auto* p = Member(doc, "max_handshakes")) {
        config.max_handshakes = static_cast<std::size_t>(GetInteger(*p, "max_handshakes", 1, 1000000));
    }
    if (const auto* p = Member(doc, "allowed_origins")) config.allowed_origins = ParseAllowedOrigins(*p, "allowed_origins");
    RateLimit default_limit;
    if (const auto* p = Member(doc, "rate_limit")) default_limit = ParseRateLimit(*p, "rate_limit");
    if (const auto* p = Member(doc, "auth")) config.auth = ParseAuth(*p);

    const rapidjson::Value* models = Member(doc, "models");
    if (!models || !models->IsObject() || models->MemberCount() == 0) {
        Fail("models", "expected a non-empty object of model declarations");
    }
    for (auto it = models->MemberBegin(); it != models->MemberEnd(); ++it) {
        std::string name = it->name.GetString();
        try {
            config.models.push_back(Schema::FromJson(name, JsonText(it->value)));
        } catch (const SchemaError& e) {
            throw ConfigError(std::string("models.") + e.what());
        }
    }
    const rapidjson::Value* routes = Member(doc, "routes");
    if (!routes || !routes->IsObject() || routes->MemberCount() == 0) {
        Fail("routes", "expected a non-empty object of routes such as {\"/ws/posts/\": {...}}");
    }
    for (auto it = routes->MemberBegin(); it != routes->MemberEnd(); ++it) {
        std::string route_path = it->name.GetString();
        std::string path = "routes." + route_path;
        RouteConfig route;
        if (it->value.IsObject() && Member(it->value, "streams")) {
            if (route_path.empty() || route_path[0] != '/') Fail(path, "a route path must start with /");
            route = ParseMultiplexRoute(route_path, it->value, path);
        } else if (it->value.IsObject() && Member(it->value, "routepatterns")) {
            if (route_path.empty() || route_path[0] != '/') Fail(path, "a route path must start with /");
            route = ParseRoutedRoute(route_path, it->value, path, config.models);
        } else {
            route = ParseRoute(route_path, it->value, path, config.models);
        }
        if (!Member(it->value, "rate_limit")) route.endpoint.rate_limit = default_limit;
        config.routes.push_back(std::move(route));
    }
    // A browser sends its cookies with a handshake whichever site's page opens it: cookie tokens need an origin
    // allow-list on every route, or any site could open an authenticated socket as its visitor.
    const rapidjson::Value* auth_json = Member(doc, "auth");
    const rapidjson::Value* cookie = auth_json ? Member(*auth_json, "cookie") : nullptr;
    if (cookie && cookie->IsString() && cookie->GetStringLength() > 0) {
        for (const auto& route : config.routes) {
            if (!RestrictsOrigins(route.endpoint.allowed_origins ? route.endpoint.allowed_origins
                                                                 : config.allowed_origins)) {
                Fail("auth.cookie", "cookie authentication requires allowed_origins (the sites whose pages may "
                                    "connect, without \"*\"), at the top level or on every route; route " +
                                        route.path + " has none");
            }
        }
    }
    // A stream names another route of this config that serves requests itself (not a multiplexer).
    std::vector<std::string> consumer_routes;
    for (const auto& route : config.routes) {
        if (route.streams.empty()) consumer_routes.push_back(route.path);
    }
    for (const auto& route : config.routes) {
        for (const auto& [stream, target] : route.streams) {
            if (std::find(consumer_routes.begin(), consumer_routes.end(), target) == consumer_routes.end()) {
                Fail("routes." + route.path + ".streams." + stream,
                     "unknown route \"" + target + "\"; valid routes: " + Join(consumer_routes));
            }
        }
    }
    return config;
}

}  // namespace syncline
