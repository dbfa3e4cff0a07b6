#include <syncline/core/config.hpp>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

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

RouteConfig ParseRoute(const std::string& route_path, const rapidjson::Value& v, const std::string& path,
                       const std::vector<Schema>& models) {
    if (route_path.empty() || route_path[0] != '/') Fail(path, "a route path must start with /");
    if (!v.IsObject()) Fail(path, "expected an object such as {\"model\": \"posts\", \"mixins\": [\"list\"]}");
    CheckKeys(v, path,
              {"model", "fields", "read_only", "write_only", "mixins", "lookup_field", "lookup_url_kwarg", "queryset",
               "rate_limit", "group_by", "filter_fields", "ordering_fields", "pagination", "page_size",
               "max_page_size"});
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
    if (const auto* p = Member(v, "rate_limit")) route.endpoint.rate_limit = ParseRateLimit(*p, path + ".rate_limit");
    route.consumer.filter_fields = field_list("filter_fields");
    route.consumer.ordering_fields = field_list("ordering_fields");
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

ServerConfig ParseConfig(std::string_view json_text) {
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseValidateEncodingFlag | rapidjson::kParseCommentsFlag>(json_text.data(),
                                                                                       json_text.size());
    if (doc.HasParseError()) {
        throw ConfigError("config: invalid JSON at offset " + std::to_string(doc.GetErrorOffset()) + ": " +
                          rapidjson::GetParseError_En(doc.GetParseError()));
    }
    if (!doc.IsObject()) throw ConfigError("config: expected a JSON object");
    CheckKeys(doc, "",
              {"database", "listen", "workers", "max_message_bytes", "ping_interval_ms", "pong_timeout_ms",
               "synchronous", "models", "routes", "rate_limit", "bus", "trim_horizon_s", "max_queue_bytes",
               "slow_reader_timeout_ms", "action_threads"});
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
    RateLimit default_limit;
    if (const auto* p = Member(doc, "rate_limit")) default_limit = ParseRateLimit(*p, "rate_limit");

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
        RouteConfig route = ParseRoute(route_path, it->value, "routes." + route_path, config.models);
        if (!Member(it->value, "rate_limit")) route.endpoint.rate_limit = default_limit;
        config.routes.push_back(std::move(route));
    }
    return config;
}

}  // namespace syncline
