// Routed action handlers (docs/protocol.md §10): route patterns dispatching to consumers, rest_framework_channels
// style.

#include <syncline/core/protocol/routed.hpp>

#include <syncline/core/protocol/envelope.hpp>
#include <syncline/core/support/log.hpp>
#include <syncline/core/consumer/permissions.hpp>

#include <boost/regex.hpp>

#include <algorithm>
#include <cctype>
#include <map>
#include <stdexcept>

#include "json_util.hpp"

namespace syncline {
namespace {

Mixin Renamed(Mixin mixin, const std::string& from, const std::string& to) {
    for (auto& action : mixin.actions) {
        if (action.name == from) action.name = to;
    }
    return mixin;
}

bool ValidGroupName(const std::string& name) {
    if (name.empty() || !(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_')) return false;
    return std::all_of(name.begin(), name.end(),
                       [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

// A Python pattern as Boost.Regex (1.74) reads it, and its named groups. Boost's Perl syntax spells named groups
// (?<name>...) and back references \k<name>; Python's (?P<name>...) and (?P=name) are rewritten, outside character
// classes and escapes. Throws std::invalid_argument with the reason.
struct Translation {
    std::string pattern;
    std::vector<std::string> names;
};

Translation Translate(const std::string& p) {
    Translation t;
    bool in_class = false;
    auto read_name = [&](std::size_t start, char end) {
        std::size_t close = p.find(end, start);
        if (close == std::string::npos) throw std::invalid_argument("unterminated group name");
        std::string name = p.substr(start, close - start);
        if (!ValidGroupName(name)) throw std::invalid_argument("bad group name \"" + name + "\"");
        return std::make_pair(name, close);
    };
    auto define = [&](const std::string& name) {
        if (std::find(t.names.begin(), t.names.end(), name) != t.names.end()) {
            throw std::invalid_argument("group name \"" + name + "\" is used twice");
        }
        t.names.push_back(name);
    };
    for (std::size_t i = 0; i < p.size(); ++i) {
        char c = p[i];
        if (c == '\\') {
            t.pattern += c;
            if (i + 1 < p.size()) t.pattern += p[++i];
            continue;
        }
        if (in_class) {
            if (c == ']') in_class = false;
            t.pattern += c;
            continue;
        }
        if (c == '[') {
            in_class = true;
            t.pattern += c;
            // A ']' first in a class (after an optional '^') is a literal, as in Python.
            if (i + 1 < p.size() && p[i + 1] == '^') t.pattern += p[++i];
            if (i + 1 < p.size() && p[i + 1] == ']') t.pattern += p[++i];
            continue;
        }
        if (c == '(' && p.compare(i, 4, "(?P<") == 0) {
            auto [name, close] = read_name(i + 4, '>');
            define(name);
            t.pattern += "(?<" + name + ">";
            i = close;
            continue;
        }
        if (c == '(' && p.compare(i, 4, "(?P=") == 0) {
            auto [name, close] = read_name(i + 4, ')');
            t.pattern += "\\k<" + name + ">";
            i = close;
            continue;
        }
        if (c == '(' && p.compare(i, 3, "(?<") == 0 && i + 3 < p.size() && p[i + 3] != '=' && p[i + 3] != '!') {
            auto [name, close] = read_name(i + 3, '>');
            define(name);
            t.pattern += "(?<" + name + ">";
            i = close;
            continue;
        }
        t.pattern += c;
    }
    return t;
}

// Python's defaults: '^' and '$' anchor the whole route (not lines), '.' does not match a newline.
constexpr boost::regex::flag_type kRegexFlags = boost::regex::perl | boost::regex::no_mod_m | boost::regex::no_mod_s;

ActionResult Message(int status, std::string_view text) { return ActionResult::Message(status, text); }

}  // namespace

struct RoutedConsumer::Compiled {
    boost::regex regex;
    std::vector<std::string> names;
};

Mixin PartialUpdateModelMixin() { return Renamed(PatchModelMixin(), "patch", "partial_update"); }
Mixin RemoveModelMixin() { return Renamed(DeleteModelMixin(), "delete", "remove"); }

const std::vector<std::string>& RoutedHandlerNames() {
    static const std::vector<std::string> names = {"CreateAPIActionHandler",
                                                   "ListAPIActionHandler",
                                                   "RetrieveAPIActionHandler",
                                                   "UpdateAPIActionHandler",
                                                   "DestroyAPIActionHandler",
                                                   "ListCreateAPIActionHandler",
                                                   "RetrieveUpdateAPIActionHandler",
                                                   "RetrieveDestroyAPIActionHandler",
                                                   "RetrieveUpdateDestroyAPIActionHandler"};
    return names;
}

std::vector<Mixin> RoutedHandlerMixins(const std::string& name) {
    static const std::map<std::string, std::vector<Mixin (*)()>> table = {
        {"CreateAPIActionHandler", {CreateModelMixin}},
        {"ListAPIActionHandler", {ListModelMixin}},
        {"RetrieveAPIActionHandler", {RetrieveModelMixin}},
        {"UpdateAPIActionHandler", {UpdateModelMixin, PartialUpdateModelMixin}},
        {"DestroyAPIActionHandler", {RemoveModelMixin}},
        {"ListCreateAPIActionHandler", {ListModelMixin, CreateModelMixin}},
        {"RetrieveUpdateAPIActionHandler", {RetrieveModelMixin, UpdateModelMixin, PartialUpdateModelMixin}},
        {"RetrieveDestroyAPIActionHandler", {RetrieveModelMixin, RemoveModelMixin}},
        {"RetrieveUpdateDestroyAPIActionHandler",
         {RetrieveModelMixin, UpdateModelMixin, PartialUpdateModelMixin, RemoveModelMixin}}};
    std::vector<Mixin> mixins;
    for (auto factory : table.at(name)) mixins.push_back(factory());
    return mixins;
}

std::optional<std::string> RoutePatternError(const std::string& pattern) {
    try {
        Translation t = Translate(pattern);
        boost::regex regex(t.pattern, kRegexFlags);
    } catch (const std::exception& e) {
        return std::string(e.what());
    }
    return std::nullopt;
}

RoutedConsumer::RoutedConsumer(std::vector<RoutePattern> routes,
                               std::vector<std::shared_ptr<const Permission>> permissions)
    : GenericConsumer([&] {
          ConsumerOptions options;
          options.permissions = std::move(permissions);
          options.envelope = &RoutedEnvelope();
          return options;
      }()),
      routes_(std::move(routes)) {
    SetDefaultAction(CustomAction("route", [this](GenericConsumer&, ActionRequest& request) { return Route(request); }));
    for (const auto& route : routes_) {
        if (!route.handler) throw std::invalid_argument("route pattern \"" + route.pattern + "\" has no handler");
        auto compiled = std::make_unique<Compiled>();
        try {
            Translation t = Translate(route.pattern);
            compiled->regex.assign(t.pattern, kRegexFlags);
            compiled->names = std::move(t.names);
        } catch (const std::exception& e) {
            throw std::invalid_argument("invalid route pattern \"" + route.pattern + "\": " + e.what());
        }
        compiled_.push_back(std::move(compiled));
    }
}

RoutedConsumer::~RoutedConsumer() = default;

void RoutedConsumer::Bind(ModelStore& store, SubscriptionRegistry* registry) {
    for (const auto& route : routes_) {
        try {
            route.handler->Bind(store, registry);
        } catch (const std::invalid_argument& e) {
            throw std::invalid_argument("route pattern \"" + route.pattern + "\": " + e.what());
        }
    }
}

void RoutedConsumer::OnDisconnect(ConnectionContext& connection) {
    for (const auto& route : routes_) route.handler->OnDisconnect(connection);
}

ActionResult RoutedConsumer::Route(ActionRequest& request) const {
    const std::string& name = request.action();
    try {
        // The envelope let only a string route (or none, read as "") through.
        const rapidjson::Value* route = request.Arg("route");
        std::string path = route ? std::string(route->GetString(), route->GetStringLength()) : std::string();
        for (std::size_t i = 0; i < compiled_.size(); ++i) {
            boost::smatch match;
            if (!boost::regex_search(path, match, compiled_[i]->regex)) continue;
            // The named groups become top-level arguments, over any key of the same name the client sent.
            rapidjson::Document args;
            args.CopyFrom(request.message(), args.GetAllocator());
            for (const auto& group : compiled_[i]->names) {
                const auto& sub = match[group.c_str()];
                if (!sub.matched) continue;  // an optional group that took no part, as Django drops it
                std::string text = sub.str();
                rapidjson::Value value(text.c_str(), static_cast<rapidjson::SizeType>(text.size()),
                                       args.GetAllocator());
                auto it = args.FindMember(group.c_str());
                if (it != args.MemberEnd()) {
                    it->value = value;
                } else {
                    args.AddMember(rapidjson::Value(group.c_str(), args.GetAllocator()), value, args.GetAllocator());
                }
            }
            ActionRequest routed(request.connection(), name, args);
            ActionResult result = routes_[i].handler->Dispatch(routed);
            // A streamed list sent its pages itself; its end is still answered with one routed reply.
            result.streamed = false;
            return result;
        }
        return Message(404, "No route matches " + JsonString(path) + ".");
    } catch (const std::exception& e) {
        // A pattern too complex for the route (Boost.Regex gives up).
        Log(LogLevel::kError, "routed request \"" + name + "\" failed: " + e.what());
    } catch (...) {
        Log(LogLevel::kError, "routed request \"" + name + "\" failed");
    }
    return Message(500, "Internal server error");
}

}  // namespace syncline
