// Fuzz target "config": config::ParseConfig (config/config.hpp) on arbitrary text. The only exception that may leave
// it is config::ConfigError, whose message is one line; anything else (another exception, a crash, a sanitizer report)
// is a bug.
// A configuration that parses is also checked for what the server relies on: every route path starts with '/', a
// stream names a consumer route of the config, and every route's consumer (and routed handler), built as
// config::BuildServer builds it, binds to the config's models (a parsed config never fails at start-up).

#include <syncline/config/config.hpp>
#include <syncline/core/protocol/routed.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <typeinfo>
#include <vector>

namespace {

[[noreturn]] void Fail(const std::string& what) {
    std::fprintf(stderr, "config fuzzer: %s\n", what.c_str());
    std::abort();
}

// The models of a config, as a store that only answers Model (Bind asks nothing else).
class SchemaStore final : public syncline::ModelStore {
public:
    explicit SchemaStore(const std::vector<syncline::Schema>& models) : models_(models) {}
    const syncline::Schema& Model(std::string_view table) const override {
        for (const auto& schema : models_) {
            if (schema.table() == table) return schema;
        }
        throw syncline::StoreError(syncline::StoreError::Kind::kSchema, "unknown model");
    }
    std::optional<syncline::Row> Get(std::string_view, std::string_view, const syncline::Value&) const override {
        Fail("Get");
    }
    std::vector<syncline::Row> List(std::string_view, const syncline::Query&) const override { Fail("List"); }
    std::int64_t Count(std::string_view, const std::vector<syncline::Filter>&) const override { Fail("Count"); }
    syncline::Row Insert(std::string_view, const syncline::Assignments&) override { Fail("Insert"); }
    std::optional<syncline::Row> Patch(std::string_view, const syncline::Value&,
                                       const syncline::Assignments&) override {
        Fail("Patch");
    }
    bool Delete(std::string_view, const syncline::Value&) override { Fail("Delete"); }
    std::int64_t RowVersion(std::string_view, const syncline::Value&) const override { Fail("RowVersion"); }
    std::optional<LastChangeInfo> LastChange(std::string_view, const syncline::Value&) const override {
        Fail("LastChange");
    }
    std::string Epoch() const override { Fail("Epoch"); }
    std::unique_ptr<ReadScope> ReadSnapshot() const override { Fail("ReadSnapshot"); }
    std::optional<std::vector<ChangedRow>> ChangedSince(std::string_view, std::int64_t) const override {
        Fail("ChangedSince");
    }

private:
    const std::vector<syncline::Schema>& models_;
};

void CheckParsed(const syncline::config::Config& config) {
    SchemaStore store(config.models);
    if (config.server.database.empty()) Fail("a config without a database parsed");
    if (config.models.empty() || config.routes.empty()) Fail("a config without models or routes parsed");
    for (const auto& route : config.routes) {
        if (route.path.empty() || route.path[0] != '/') Fail("a route path that does not start with / parsed");
        for (const auto& stream : route.streams) {
            const std::string& target = stream.second;
            auto it = std::find_if(
                config.routes.begin(), config.routes.end(),
                [&](const syncline::config::RouteConfig& r) { return r.path == target && r.streams.empty(); });
            if (it == config.routes.end()) Fail("a stream naming no consumer route parsed");
        }
        // As config::BuildServer builds them: a routed consumer checks its patterns again, a consumer its mixins.
        if (!route.routepatterns.empty()) {
            std::vector<syncline::RoutePattern> patterns;
            for (const auto& pattern : route.routepatterns) {
                patterns.push_back(syncline::RoutePattern{
                    pattern.pattern, std::make_shared<syncline::GenericConsumer>(pattern.consumer)});
            }
            syncline::RoutedConsumer consumer(std::move(patterns));
            consumer.Bind(store);
        } else if (route.streams.empty()) {
            syncline::GenericConsumer consumer(route.consumer);
            consumer.Bind(store);
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    syncline::config::Config config;
    try {
        config = syncline::config::ParseConfig(text);
    } catch (const syncline::config::ConfigError& e) {
        if (std::string_view(e.what()).empty()) Fail("a config::ConfigError without a message");
        return 0;
    } catch (const std::exception& e) {
        Fail(std::string("config::ParseConfig let ") + typeid(e).name() + " escape: " + e.what());
    } catch (...) {
        Fail("config::ParseConfig let an unknown exception escape");
    }
    try {
        CheckParsed(config);
    } catch (const std::exception& e) {
        Fail(std::string("a parsed config does not build: ") + typeid(e).name() + ": " + e.what());
    }
    return 0;
}
