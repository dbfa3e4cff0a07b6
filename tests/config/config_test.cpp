#include <syncline/config/config.hpp>

#include <syncline/auth/jwt_authenticator.hpp>
#include <syncline/auth/token_authenticator.hpp>
#include <syncline/core/consumer/permissions.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace syncline::config {
namespace {

// The authenticators that verify tokens: the auth module.
using auth::JwtAuthenticator;
using auth::StaticTokenAuthenticator;

using ::testing::HasSubstr;

std::string Error(const std::string& json) {
    try {
        ParseConfig(json);
    } catch (const ConfigError& e) {
        std::string message = e.what();
        EXPECT_EQ(message.find('\n'), std::string::npos) << "one line: " << message;
        return message;
    }
    return "";
}

// A minimal valid config with one substitution point for the part under test.
std::string With(const std::string& route, const std::string& extra_top = "") {
    return R"({"database": "t.db", )" + extra_top +
           R"("models": {"posts": {"fields": {"title": {"type": "text"}, "author": {"type": "text", "blank": true}}}},
              "routes": {"/ws/posts/": )" + route + "}}";
}

TEST(ConfigTest, TheBlogExampleParses) {
    std::ifstream file(std::string(SYNCLINE_SOURCE_DIR) + "/examples/blog/config.json");
    ASSERT_TRUE(file) << "examples/blog/config.json";
    std::stringstream text;
    text << file.rdbuf();
    Config config = ParseConfig(text.str());
    EXPECT_EQ(config.server.database, "blog.db");
    EXPECT_EQ(config.server.host, "127.0.0.1");
    EXPECT_EQ(config.server.port, 8000);
    EXPECT_EQ(config.server.workers, 2u);
    ASSERT_EQ(config.models.size(), 1u);
    EXPECT_EQ(config.models[0].table(), "posts");
    ASSERT_EQ(config.routes.size(), 1u);
    const RouteConfig& route = config.routes[0];
    EXPECT_EQ(route.path, "/ws/posts/");
    EXPECT_EQ(route.consumer.model, "posts");
    EXPECT_EQ(route.consumer.serializer.fields, (std::vector<std::string>{"id", "title", "body", "author"}));
    EXPECT_EQ(route.consumer.serializer.read_only, (std::vector<std::string>{"id"}));
    EXPECT_EQ(route.mixins, (std::vector<std::string>{"list", "retrieve", "create", "update", "patch", "delete",
                                                      "observe_instance", "observe_list"}));
    // The demo page (examples/blog/web/) and the JavaScript client it imports, from the config's folder.
    ASSERT_EQ(config.server.static_mounts.size(), 2u);
    EXPECT_EQ(config.server.static_mounts[0].prefix, "/");
    EXPECT_EQ(config.server.static_mounts[0].folder, "web");
    EXPECT_EQ(config.server.static_mounts[1].prefix, "/client/");
    EXPECT_EQ(config.server.static_mounts[1].folder, "../../clients/js");
}

TEST(ConfigTest, StaticFoldersByUrlPrefix) {
    const std::string route = R"({"model": "posts", "mixins": ["list"]})";
    Config defaults = ParseConfig(With(route));
    EXPECT_TRUE(defaults.server.static_mounts.empty());
    EXPECT_EQ(defaults.server.static_max_file_bytes, 4u * 1024 * 1024);

    Config config =
        ParseConfig(With(route, R"("static": {"/": "web", "/js/": "/srv/js"}, "static_max_file_bytes": 1000, )"));
    ASSERT_EQ(config.server.static_mounts.size(), 2u);
    EXPECT_EQ(config.server.static_mounts[0].prefix, "/");
    EXPECT_EQ(config.server.static_mounts[0].folder, "web");
    EXPECT_EQ(config.server.static_mounts[1].prefix, "/js/");
    EXPECT_EQ(config.server.static_mounts[1].folder, "/srv/js");
    EXPECT_EQ(config.server.static_max_file_bytes, 1000u);

    EXPECT_THAT(Error(With(route, R"("static": "web", )")), HasSubstr("static: expected an object"));
    EXPECT_THAT(Error(With(route, R"("static": {"web": "web"}, )")), HasSubstr("static.web: a URL prefix must start"));
    EXPECT_THAT(Error(With(route, R"("static": {"/a%2e": "web"}, )")), HasSubstr("static./a%2e: a URL prefix is"));
    EXPECT_THAT(Error(With(route, R"("static": {"/": ""}, )")), HasSubstr("static./: empty folder"));
    EXPECT_THAT(Error(With(route, R"("static": {"/": 1}, )")), HasSubstr("static./:"));
    EXPECT_THAT(Error(With(route, R"("static_max_file_bytes": 0, )")), HasSubstr("static_max_file_bytes"));
}

TEST(ConfigTest, RouteOptions) {
    Config config = ParseConfig(With(
        R"({"model": "posts", "mixins": ["list", "retrieve"], "lookup_field": "title", "lookup_url_kwarg": "t",
            "queryset": {"author": "alice", "title__startswith": "A", "id__in": [1, 2]}, "write_only": ["author"],
            "rate_limit": {"per_second": 5, "burst": 10, "close_after": 0}})",
        R"("rate_limit": {"per_second": 100}, "synchronous": "full", "workers": 0, "listen": {"port": 0},)"));
    const auto& route = config.routes[0];
    EXPECT_EQ(route.consumer.lookup_field, "title");
    EXPECT_EQ(route.consumer.lookup_url_kwarg, "t");
    ASSERT_EQ(route.consumer.queryset.size(), 3u);
    EXPECT_EQ(route.consumer.queryset[1].op, FilterOp::kStartsWith);
    EXPECT_EQ(route.consumer.queryset[2].values, (std::vector<Value>{Value(1), Value(2)}));
    EXPECT_EQ(route.endpoint.rate_limit.per_second, 5);
    EXPECT_EQ(route.endpoint.rate_limit.close_after, 0);
    EXPECT_EQ(config.server.synchronous, storage::Synchronous::kFull);
    EXPECT_EQ(config.server.port, 0);
}

// Existing tables (issue 12): "table" names the database table, "fields": "from_database" defers the fields to the
// server's start (field names in routes are checked then, by the consumers); keys that need the fields' types now are
// refused.
TEST(ConfigTest, ExistingTableKeys) {
    const std::string models =
        R"("models": {"post": {"table": "blog_post", "fields": "from_database"},
                      "tag": {"table": "blog_tag", "fields": {"name": {"type": "text"}}}},)";
    Config config = ParseConfig(R"({"database": "t.db", )" + models + R"(
        "routes": {"/ws/posts/": {"model": "post", "mixins": ["list", "patch"], "fields": ["id", "title"],
                                  "filter_fields": ["published"], "ordering_fields": ["created"],
                                  "lookup_field": "slug", "owner_field": "author_id"}}})");
    ASSERT_EQ(config.models.size(), 2u);
    EXPECT_EQ(config.models[0].table(), "post");
    EXPECT_EQ(config.models[0].storage_table(), "blog_post");
    EXPECT_TRUE(config.models[0].from_database());
    EXPECT_EQ(config.models[1].storage_table(), "blog_tag");
    EXPECT_FALSE(config.models[1].from_database());
    EXPECT_EQ(config.routes[0].consumer.filter_fields, std::vector<std::string>{"published"});
    EXPECT_EQ(config.routes[0].consumer.lookup_field, "slug");

    auto route_error = [&](const std::string& route) {
        return Error(R"({"database": "t.db", )" + models + R"("routes": {"/ws/posts/": )" + route + "}}");
    };
    EXPECT_THAT(route_error(R"({"model": "post", "mixins": ["list"], "queryset": {"published": true}})"),
                HasSubstr("routes./ws/posts/.queryset: not available on model \"post\", whose fields are read from "
                          "the database"));
    EXPECT_THAT(route_error(R"({"model": "post", "mixins": ["list"], "group_by": "author"})"),
                HasSubstr("routes./ws/posts/.group_by: not available on model \"post\""));
    // A declared model's fields are still checked at once.
    EXPECT_THAT(route_error(R"({"model": "tag", "mixins": ["list"], "fields": ["nope"]})"),
                HasSubstr("unknown field \"nope\""));
    EXPECT_THAT(Error(R"({"database": "t.db", "models": {"post": {"table": "blog-post", "fields": "from_database"}},
                         "routes": {"/ws/": {"model": "post", "mixins": ["list"]}}})"),
                HasSubstr("models.post.table: \"blog-post\" is not a valid table name"));
    EXPECT_THAT(Error(R"({"database": "t.db", "models": {"post": {"table": "_syncline_x", "fields": "from_database"}},
                         "routes": {"/ws/": {"model": "post", "mixins": ["list"]}}})"),
                HasSubstr("models.post.table: \"_syncline_x\" is not a valid table name"));
    EXPECT_THAT(Error(R"({"database": "t.db", "models": {"post": {"fields": "from_db"}},
                         "routes": {"/ws/": {"model": "post", "mixins": ["list"]}}})"),
                HasSubstr("models.post.fields: expected an object of field declarations or \"from_database\""));
}

// "pk" in a serializer's lists is the primary key whatever its column (issue 11): in fields and read_only, not as
// input (write_only) nor in filters or ordering, which name the model's columns.
TEST(ConfigTest, PkIsASerializerFieldName) {
    Config config = ParseConfig(With(R"({"model": "posts", "mixins": ["retrieve"], "fields": ["pk", "id", "title"],
                                         "read_only": ["pk"]})"));
    EXPECT_EQ(config.routes[0].consumer.serializer.fields, (std::vector<std::string>{"pk", "id", "title"}));
    EXPECT_EQ(config.routes[0].consumer.serializer.read_only, (std::vector<std::string>{"pk"}));
    EXPECT_EQ(Error(With(R"({"model": "posts", "mixins": ["list"], "write_only": ["pk"]})")),
              "routes./ws/posts/.write_only[0]: unknown field \"pk\"; valid fields: id, title, author");
    EXPECT_EQ(Error(With(R"({"model": "posts", "mixins": ["list"], "filter_fields": ["pk"]})")),
              "routes./ws/posts/.filter_fields[0]: unknown field \"pk\"; valid fields: id, title, author");
}

TEST(ConfigTest, StreamedPaginationInstallsADetachedListAndListCancel) {
    Config config = ParseConfig(With(R"({"model": "posts", "mixins": ["retrieve"], "pagination": "streamed",
                                                "page_size": 25, "max_page_size": 50})",
                                           R"("action_threads": 3,)"));
    EXPECT_EQ(config.server.action_threads, 3u);
    GenericConsumer consumer(config.routes[0].consumer);
    ASSERT_NE(consumer.FindAction("list"), nullptr);
    EXPECT_TRUE(consumer.FindAction("list")->detached);
    ASSERT_NE(consumer.FindAction("list_cancel"), nullptr);
    EXPECT_FALSE(consumer.FindAction("list_cancel")->detached);
    EXPECT_EQ(consumer.options().page_size, 25);
    EXPECT_EQ(consumer.options().max_page_size, 50);
    GenericConsumer paged(ParseConfig(With(R"({"model": "posts", "mixins": ["list"], "pagination": "limit_offset"})"))
                              .routes[0]
                              .consumer);
    EXPECT_FALSE(paged.FindAction("list")->detached);
    EXPECT_EQ(paged.FindAction("list_cancel"), nullptr);
    EXPECT_EQ(ParseConfig(With(R"({"model": "posts", "mixins": ["list"]})")).server.action_threads, 0u);
    EXPECT_EQ(Error(With(R"({"model": "posts", "mixins": ["list"], "pagination": "cursor"})")),
              "routes./ws/posts/.pagination: unknown pagination \"cursor\"; valid values: limit_offset, streamed");
    EXPECT_EQ(Error(With(R"({"model": "posts", "mixins": ["list"]})", R"("action_threads": -1,)")),
              "action_threads: expected an integer from 0 to 256");
}

TEST(ConfigTest, ConnectionLimitsHaveDefaultsAndBounds) {
    const std::string route = R"({"model": "posts", "mixins": ["list"]})";
    Config defaults = ParseConfig(With(route));
    EXPECT_EQ(defaults.server.limits.max_json_depth, 64u);
    EXPECT_EQ(defaults.server.limits.max_request_id_bytes, 256u);
    EXPECT_EQ(defaults.server.limits.max_subscriptions, 1000u);
    EXPECT_EQ(defaults.server.limits.max_filter_values, 1000u);
    EXPECT_EQ(defaults.server.limits.max_list_filter_values, 10000u);
    Config set = ParseConfig(With(route, R"("max_json_depth": 8, "max_request_id_bytes": 64,
                                                  "max_subscriptions_per_socket": 5, "max_filter_values": 10,
                                                  "max_list_filter_values_per_socket": 40,)"));
    EXPECT_EQ(set.server.limits.max_json_depth, 8u);
    EXPECT_EQ(set.server.limits.max_request_id_bytes, 64u);
    EXPECT_EQ(set.server.limits.max_subscriptions, 5u);
    EXPECT_EQ(set.server.limits.max_filter_values, 10u);
    EXPECT_EQ(set.server.limits.max_list_filter_values, 40u);
    EXPECT_EQ(Error(With(route, R"("max_list_filter_values_per_socket": 0,)")),
              "max_list_filter_values_per_socket: expected an integer from 1 to 100000000");
    EXPECT_EQ(Error(With(route, R"("max_json_depth": 100000,)")), "max_json_depth: expected an integer from 2 to 1000");
    EXPECT_EQ(Error(With(route, R"("max_subscriptions_per_socket": 0,)")),
              "max_subscriptions_per_socket: expected an integer from 1 to 1000000");
    // The config itself is parsed with a depth limit (1000), so a hostile file cannot crash the parser either.
    EXPECT_EQ(Error(std::string(5000, '[') + std::string(5000, ']')),
              "config: invalid JSON at offset 0: nesting too deep");
}

TEST(ConfigTest, DetachedActionsPerSocketAndStatementCacheLimits) {
    Config defaults = ParseConfig(With(R"({"model": "posts", "mixins": ["list"]})"));
    EXPECT_EQ(defaults.server.limits.max_pending_actions, 16u);
    EXPECT_EQ(defaults.server.statement_cache_bytes, 4u * 1024 * 1024);
    Config config = ParseConfig(
        R"({"database": "t.db", "max_pending_actions": 3, "statement_cache_bytes": 65536,
            "models": {"posts": {"fields": {"title": {"type": "text"}}}},
            "routes": {"/ws/a/": {"model": "posts", "mixins": ["list"], "pagination": "streamed"},
                       "/ws/b/": {"model": "posts", "mixins": ["list"], "rate_limit": {"per_second": 5}},
                       "/ws/m/": {"streams": {"a": "/ws/a/"}}}})");
    EXPECT_EQ(config.server.limits.max_pending_actions, 3u);
    EXPECT_EQ(config.server.statement_cache_bytes, 65536u);
    EXPECT_EQ(ParseConfig(With(R"({"model": "posts", "mixins": ["list"]})", R"("max_pending_actions": 0,)"))
                  .server.limits.max_pending_actions,
              0u);  // no limit
    EXPECT_EQ(Error(With(R"({"model": "posts", "mixins": ["list"]})", R"("max_pending_actions": -1,)")),
              "max_pending_actions: expected an integer from 0 to 1048576");
    EXPECT_EQ(Error(With(R"({"model": "posts", "mixins": ["list"]})", R"("statement_cache_bytes": "big",)")),
              "statement_cache_bytes: expected an integer from 0 to 17179869184");
}

TEST(ConfigTest, WriteThreadsAndWaitingRequestBytes) {
    // The server settings, or the error, of a list route's config with `extra` members.
    auto server = [](const char* extra) {
        return ParseConfig(With(R"({"model": "posts", "mixins": ["list"]})", extra)).server;
    };
    auto error = [](const char* extra) { return Error(With(R"({"model": "posts", "mixins": ["list"]})", extra)); };
    Config defaults = ParseConfig(With(R"({"model": "posts", "mixins": ["list"]})"));
    EXPECT_EQ(defaults.server.write_threads, 32u);
    EXPECT_EQ(defaults.server.ready_max_relay_lag, std::chrono::milliseconds(10000));
    EXPECT_EQ(server(R"("ready_max_relay_lag_ms": 0,)").ready_max_relay_lag, std::chrono::milliseconds(0));
    EXPECT_EQ(error(R"("ready_max_relay_lag_ms": -5,)"),
              "ready_max_relay_lag_ms: expected an integer from 0 to 2147483648");
    EXPECT_EQ(defaults.server.limits.max_waiting_request_bytes, 1024u * 1024);
    Config config = ParseConfig(
        With(R"({"model": "posts", "mixins": ["list"]})", R"("write_threads": 0, "max_waiting_request_bytes": 4096,)"));
    EXPECT_EQ(config.server.write_threads, 0u);  // writes on the network threads
    EXPECT_EQ(config.server.limits.max_waiting_request_bytes, 4096u);
    EXPECT_EQ(error(R"("write_threads": 1025,)"), "write_threads: expected an integer from 0 to 1024");
    EXPECT_EQ(error(R"("max_waiting_request_bytes": -1,)"),
              "max_waiting_request_bytes: expected an integer from 0 to 1073741824");
    EXPECT_TRUE(defaults.server.batch_writes);
    EXPECT_EQ(defaults.server.max_queued_rows, 100000u);
    EXPECT_EQ(server(R"("max_queued_rows": 500,)").max_queued_rows, 500u);
    EXPECT_EQ(error(R"("max_queued_rows": 0,)"), "max_queued_rows: expected an integer from 1 to 1073741824");
    EXPECT_FALSE(server(R"("batch_writes": false,)").batch_writes);
    EXPECT_EQ(error(R"("batch_writes": 1,)"),
              "batch_writes: expected true or false (whether write requests run in batches)");
    EXPECT_EQ(defaults.server.coalesce_after, std::chrono::milliseconds(20));
    EXPECT_EQ(server(R"("coalesce_after_ms": 0,)").coalesce_after, std::chrono::milliseconds(0));
    EXPECT_EQ(error(R"("coalesce_after_ms": 60001,)"), "coalesce_after_ms: expected an integer from 0 to 60000");
}

TEST(ConfigTest, ErrorsNameTheKeyPathAndTheValidChoices) {
    EXPECT_EQ(Error(With(R"({"model": "post", "mixins": ["list"]})")),
              "routes./ws/posts/.model: unknown model \"post\"; valid models: posts");
    EXPECT_EQ(Error(With(R"({"model": "posts", "mixins": ["list", "lst"]})")),
              "routes./ws/posts/.mixins[1]: unknown mixin \"lst\"; valid mixins: list, retrieve, create, update, "
              "patch, delete, observe_instance, observe_list");
    EXPECT_EQ(Error(With(R"({"model": "posts", "fields": ["id", "titel"], "mixins": ["list"]})")),
              "routes./ws/posts/.fields[1]: unknown field \"titel\"; valid fields: pk, id, title, author");
    EXPECT_EQ(Error(With(R"({"model": "posts", "mixins": ["list"], "colour": 1})")),
              "routes./ws/posts/.colour: unknown key; valid keys: model, fields, read_only, write_only, mixins, "
              "lookup_field, lookup_url_kwarg, queryset, rate_limit, group_by, filter_fields, ordering_fields, "
              "pagination, page_size, max_page_size, permissions, owner_field, allowed_origins");
    EXPECT_EQ(Error(With(R"({"model": "posts", "mixins": "list"})")), "routes./ws/posts/.mixins: expected a list of strings");
    EXPECT_EQ(Error(With(R"({"model": "posts"})")),
              "routes./ws/posts/.mixins: missing; valid mixins: list, retrieve, create, update, patch, delete, "
              "observe_instance, observe_list");
    EXPECT_EQ(Error(With(R"({"model": "posts", "mixins": ["list"]})", R"("workers": "two",)")),
              "workers: expected an integer from 0 to 256");
    EXPECT_EQ(Error(With(R"({"model": "posts", "mixins": ["list"]})", R"("listen": {"port": 70000},)")),
              "listen.port: expected an integer from 0 to 65535");
    EXPECT_EQ(Error(With(R"({"model": "posts", "mixins": ["list"]})", R"("synchronous": "sometimes",)")),
              "synchronous: unknown value \"sometimes\"; valid values: normal, full, off");
    EXPECT_THAT(Error(With(R"({"model": "posts", "mixins": ["list"]})", R"("lisen": {},)")),
                HasSubstr("lisen: unknown key; valid keys: database, listen"));
    EXPECT_EQ(Error(With(R"({"model": "posts", "mixins": ["list"], "queryset": {"nope": 1}})")),
              "routes./ws/posts/.queryset.nope: unknown field \"nope\" of model \"posts\"");
    EXPECT_EQ(Error(R"({"database": "t.db", "models": {"posts": {"fields": {"t": {"type": "str"}}}},
                         "routes": {"/x": {"model": "posts", "mixins": ["list"]}}})"),
              "models.posts.fields.t.type: unknown type \"str\"; valid types: integer, real, text, boolean, datetime, "
              "json");
    EXPECT_EQ(Error(R"({"models": {}})"),
              "database: missing (the SQLite file, e.g. \"app.db\", or a postgresql:// URL)");
    EXPECT_THAT(Error("{oops"), HasSubstr("config: invalid JSON at offset 1"));
    EXPECT_EQ(Error(R"({"database": "t.db", "models": {"posts": {"fields": {"t": {"type": "text"}}}},
                         "routes": {"ws": {"model": "posts", "mixins": ["list"]}}})"),
              "routes.ws: a route path must start with /");
}

// Two models and a consumer route per model, plus the routes under test.
std::string WithRoutes(const std::string& routes) {
    return R"({"database": "t.db",
               "models": {"posts": {"fields": {"title": {"type": "text"}}},
                          "comments": {"fields": {"text": {"type": "text"}}}},
               "routes": {"/ws/posts/": {"model": "posts", "mixins": ["list"]},
                          "/ws/comments/": {"model": "comments", "mixins": ["list"]}, )" +
           routes + "}}";
}

std::vector<std::string> ActionNames(const ConsumerOptions& options) {
    std::vector<std::string> names;
    for (const auto& mixin : options.mixins) {
        for (const auto& action : mixin.actions) names.push_back(action.name);
    }
    return names;
}

TEST(ConfigTest, MultiplexerAndRoutedRoutes) {
    Config config = ParseConfig(WithRoutes(R"(
        "/ws/": {"streams": {"posts": "/ws/posts/", "comments": "/ws/comments/", "api": "/ws/api/"}},
        "/ws/api/": {"rate_limit": {"per_second": 3},
                     "routepatterns": {
                         "posts/(?P<pk>[^/]+)/$": {"model": "posts", "handler": "RetrieveUpdateDestroyAPIActionHandler",
                                                   "fields": ["id", "title"], "read_only": ["id"]},
                         "^posts/$": {"model": "posts", "handler": "ListCreateAPIActionHandler",
                                      "queryset": {"title__startswith": "A"}},
                         "^comments/(?P<c>\\d+)/$": {"model": "comments", "handler": "DestroyAPIActionHandler",
                                                     "lookup_url_kwarg": "c"}}})"));
    ASSERT_EQ(config.routes.size(), 4u);
    const RouteConfig& mux = config.routes[2];
    EXPECT_EQ(mux.path, "/ws/");
    EXPECT_EQ(mux.streams, (std::vector<std::pair<std::string, std::string>>{
                               {"posts", "/ws/posts/"}, {"comments", "/ws/comments/"}, {"api", "/ws/api/"}}));
    EXPECT_TRUE(mux.routepatterns.empty());
    const RouteConfig& api = config.routes[3];
    EXPECT_TRUE(api.streams.empty());
    EXPECT_EQ(api.endpoint.rate_limit.per_second, 3);
    ASSERT_EQ(api.routepatterns.size(), 3u);  // in the order written: the match order
    EXPECT_EQ(api.routepatterns[0].pattern, "posts/(?P<pk>[^/]+)/$");
    EXPECT_EQ(api.routepatterns[0].handler, "RetrieveUpdateDestroyAPIActionHandler");
    EXPECT_EQ(api.routepatterns[0].consumer.model, "posts");
    EXPECT_EQ(api.routepatterns[0].consumer.serializer.fields, (std::vector<std::string>{"id", "title"}));
    EXPECT_EQ(ActionNames(api.routepatterns[0].consumer),
              (std::vector<std::string>{"retrieve", "update", "partial_update", "remove"}));
    EXPECT_EQ(api.routepatterns[1].pattern, "^posts/$");
    EXPECT_EQ(ActionNames(api.routepatterns[1].consumer), (std::vector<std::string>{"list", "create"}));
    ASSERT_EQ(api.routepatterns[1].consumer.queryset.size(), 1u);
    EXPECT_EQ(api.routepatterns[2].consumer.lookup_url_kwarg, "c");
    EXPECT_EQ(ActionNames(api.routepatterns[2].consumer), (std::vector<std::string>{"remove"}));
}

TEST(ConfigTest, MultiplexerAndRoutedErrorsNameTheKeyPath) {
    EXPECT_EQ(Error(WithRoutes(R"("/ws/": {"streams": {"posts": "/ws/post/"}})")),
              "routes./ws/.streams.posts: unknown route \"/ws/post/\"; valid routes: /ws/posts/, /ws/comments/");
    EXPECT_EQ(Error(WithRoutes(R"("/ws/": {"streams": {"posts": "/ws/posts/"}},
                                 "/ws/2/": {"streams": {"inner": "/ws/"}})")),
              "routes./ws/2/.streams.inner: unknown route \"/ws/\"; valid routes: /ws/posts/, /ws/comments/");
    EXPECT_EQ(Error(WithRoutes(R"("/ws/": {"streams": {}})")),
              "routes./ws/.streams: expected a non-empty object of stream names to route paths such as "
              "{\"posts\": \"/ws/posts/\"}");
    EXPECT_EQ(Error(WithRoutes(R"("/ws/": {"streams": {"posts": 1}})")),
              "routes./ws/.streams.posts: expected a string");
    EXPECT_EQ(Error(WithRoutes(R"("/ws/": {"streams": {"posts": "/ws/posts/"}, "model": "posts"})")),
              "routes./ws/.model: unknown key; valid keys: streams, allowed_origins");
    EXPECT_EQ(Error(WithRoutes(R"("ws": {"streams": {"posts": "/ws/posts/"}})")),
              "routes.ws: a route path must start with /");
    EXPECT_THAT(Error(WithRoutes(R"("/ws/api/": {"routepatterns": {"posts/(": {"model": "posts",
                                                   "handler": "ListAPIActionHandler"}}})")),
                HasSubstr("routes./ws/api/.routepatterns.posts/(: invalid regular expression: "));
    EXPECT_EQ(Error(WithRoutes(R"x("/ws/api/": {"routepatterns": {"(?P<a>x)(?P<a>y)": {"model": "posts",
                                                   "handler": "ListAPIActionHandler"}}})x")),
              "routes./ws/api/.routepatterns.(?P<a>x)(?P<a>y): invalid regular expression: group name \"a\" is "
              "used twice");
    EXPECT_EQ(Error(WithRoutes(R"("/ws/api/": {"routepatterns": {"^p/$": {"model": "posts",
                                                   "handler": "ListView"}}})")),
              "routes./ws/api/.routepatterns.^p/$.handler: unknown handler \"ListView\"; valid handlers: "
              "CreateAPIActionHandler, ListAPIActionHandler, RetrieveAPIActionHandler, UpdateAPIActionHandler, "
              "DestroyAPIActionHandler, ListCreateAPIActionHandler, RetrieveUpdateAPIActionHandler, "
              "RetrieveDestroyAPIActionHandler, RetrieveUpdateDestroyAPIActionHandler");
    EXPECT_THAT(Error(WithRoutes(R"("/ws/api/": {"routepatterns": {"^p/$": {"model": "posts"}}})")),
                HasSubstr("routes./ws/api/.routepatterns.^p/$.handler: missing; valid handlers: "
                          "CreateAPIActionHandler"));
    EXPECT_EQ(Error(WithRoutes(R"("/ws/api/": {"routepatterns": {"^p/$": {"model": "posts", "mixins": ["list"],
                                                   "handler": "ListAPIActionHandler"}}})")),
              "routes./ws/api/.routepatterns.^p/$.mixins: unknown key; valid keys: model, fields, read_only, "
              "write_only, handler, lookup_field, lookup_url_kwarg, queryset, group_by, filter_fields, "
              "ordering_fields, pagination, page_size, max_page_size, permissions, owner_field");
    EXPECT_EQ(Error(WithRoutes(R"("/ws/api/": {"routepatterns": {"^p/$": {"model": "post",
                                                   "handler": "ListAPIActionHandler"}}})")),
              "routes./ws/api/.routepatterns.^p/$.model: unknown model \"post\"; valid models: posts, comments");
    EXPECT_EQ(Error(WithRoutes(R"("/ws/api/": {"routepatterns": {}})")),
              "routes./ws/api/.routepatterns: expected a non-empty object of patterns to handlers such as "
              "{\"posts/(?P<pk>[^/]+)/$\": {\"model\": \"posts\", \"handler\": \"RetrieveAPIActionHandler\"}}");
    EXPECT_EQ(Error(WithRoutes(R"("/ws/api/": {"routepatterns": {"^p/$": {"model": "posts",
                                 "handler": "ListAPIActionHandler"}}, "mixins": ["list"]})")),
              "routes./ws/api/.mixins: unknown key; valid keys: routepatterns, rate_limit, allowed_origins");
}

TEST(ConfigTest, RoutePermissions) {
    Config config = ParseConfig(With(R"({"model": "posts", "mixins": ["list"], "permissions": [
        "allow_any", "is_authenticated", "read_only", {"owner": "author"}, {"group": "editors"},
        {"and": ["is_authenticated", {"not": "read_only"}]}, {"or": [{"owner": "author"}, {"group": "staff"}]}]})"));
    const auto& permissions = config.routes.at(0).consumer.permissions;
    ASSERT_EQ(permissions.size(), 7u);
    EXPECT_TRUE(dynamic_cast<const AllowAny*>(permissions[0].get()));
    EXPECT_TRUE(dynamic_cast<const IsAuthenticated*>(permissions[1].get()));
    EXPECT_TRUE(dynamic_cast<const ReadOnly*>(permissions[2].get()));
    ASSERT_TRUE(dynamic_cast<const IsOwner*>(permissions[3].get()));
    EXPECT_EQ(dynamic_cast<const IsOwner*>(permissions[3].get())->field(), "author");
    EXPECT_TRUE(dynamic_cast<const InGroup*>(permissions[4].get()));
    EXPECT_TRUE(permissions[5] && permissions[6]);
    EXPECT_TRUE(ParseConfig(With(R"({"model": "posts", "mixins": ["list"]})")).routes[0].consumer.permissions.empty());
}

TEST(ConfigTest, PermissionErrorsNameThePathAndTheForms) {
    const std::string forms =
        "allow_any, is_authenticated, read_only, {\"owner\": \"<field>\"}, {\"group\": \"<name>\"}, "
        "{\"and\": [...]}, {\"or\": [...]}, {\"not\": <permission>}";
    auto with = [](const std::string& permissions) {
        return Error(With(R"({"model": "posts", "mixins": ["list"], "permissions": )" + permissions + "}"));
    };
    EXPECT_EQ(with(R"(["allow_all"])"),
              "routes./ws/posts/.permissions[0]: unknown permission \"allow_all\"; valid permissions: " + forms);
    EXPECT_EQ(with(R"("read_only")"), "routes./ws/posts/.permissions: expected a list; valid permissions: " + forms);
    EXPECT_EQ(with(R"(["read_only", 5])"),
              "routes./ws/posts/.permissions[1]: expected a permission name or an object with one key; valid "
              "permissions: " + forms);
    EXPECT_EQ(with(R"([{"owner": "author", "group": "x"}])"),
              "routes./ws/posts/.permissions[0]: expected a permission name or an object with one key; valid "
              "permissions: " + forms);
    EXPECT_EQ(with(R"([{"xor": []}])"),
              "routes./ws/posts/.permissions[0].xor: unknown permission form; valid permissions: " + forms);
    EXPECT_EQ(with(R"([{"owner": "writer"}])"),
              "routes./ws/posts/.permissions[0].owner: unknown field \"writer\" of model \"posts\"; valid fields: "
              "id, title, author");
    EXPECT_EQ(with(R"([{"owner": 1}])"), "routes./ws/posts/.permissions[0].owner: expected a string");
    EXPECT_EQ(with(R"([{"group": ""}])"), "routes./ws/posts/.permissions[0].group: empty group name");
    EXPECT_EQ(with(R"([{"and": []}])"),
              "routes./ws/posts/.permissions[0].and: expected a non-empty list of permissions");
    EXPECT_EQ(with(R"([{"or": ["read_only", {"not": "nope"}]}])"),
              "routes./ws/posts/.permissions[0].or[1].not: unknown permission \"nope\"; valid permissions: " + forms);
}

TEST(ConfigTest, OwnerFieldAndOwnerRulesNeedAFieldThatCanHoldAUserId) {
    auto config = [](const std::string& route) {
        return R"({"database": "t.db", "models": {"posts": {"fields": {"title": {"type": "text"},
                   "author_id": {"type": "integer"}, "score": {"type": "real", "default": 0},
                   "public": {"type": "boolean", "default": false}}}},
                   "routes": {"/ws/posts/": )" +
               route + "}}";
    };
    Config parsed = ParseConfig(config(R"({"model": "posts", "mixins": ["list", "create"],
        "owner_field": "author_id", "permissions": [{"owner": "author_id"}]})"));
    EXPECT_EQ(parsed.routes.at(0).consumer.owner_field, "author_id");
    EXPECT_EQ(ParseConfig(config(R"({"model": "posts", "mixins": ["list"]})")).routes.at(0).consumer.owner_field, "");
    // Routed handlers take the key too.
    Config routed = ParseConfig(config(R"({"routepatterns": {"^posts/$": {"model": "posts",
        "handler": "ListCreateAPIActionHandler", "owner_field": "title"}}})"));
    EXPECT_EQ(routed.routes.at(0).routepatterns.at(0).consumer.owner_field, "title");
    EXPECT_EQ(Error(config(R"({"model": "posts", "mixins": ["create"], "owner_field": "writer"})")),
              "routes./ws/posts/.owner_field: unknown field \"writer\" of model \"posts\"; valid fields: id, title, "
              "author_id");
    EXPECT_EQ(Error(config(R"({"model": "posts", "mixins": ["create"], "owner_field": "public"})")),
              "routes./ws/posts/.owner_field: field \"public\" is a boolean field and cannot hold a user id; valid "
              "fields: id, title, author_id");
    EXPECT_EQ(Error(config(R"({"model": "posts", "mixins": ["create"], "owner_field": 1})")),
              "routes./ws/posts/.owner_field: expected a string");
    EXPECT_EQ(Error(config(R"({"model": "posts", "mixins": ["list"], "permissions": [{"owner": "score"}]})")),
              "routes./ws/posts/.permissions[0].owner: field \"score\" is a real field and cannot hold a user id; "
              "valid fields: id, title, author_id");
}

TEST(ConfigTest, AuthTokensJwtAndPolicies) {
    const std::string route = R"({"model": "posts", "mixins": ["list"]})";
    EXPECT_FALSE(ParseConfig(With(route)).server.auth.authenticator);
    Config tokens = ParseConfig(With(route, R"("auth": {"tokens": {
        "t-alice": {"user": "alice", "id": 1, "groups": ["editors"]}, "t-bob": {"id": "bob-id"}}},)"));
    auto* table = dynamic_cast<const StaticTokenAuthenticator*>(tokens.server.auth.authenticator.get());
    ASSERT_TRUE(table);
    AuthResult alice = table->VerifyToken("t-alice");
    ASSERT_EQ(alice.kind, AuthResult::Kind::kUser);
    EXPECT_EQ(alice.user.id, "1");
    EXPECT_EQ(alice.user.name, "alice");
    EXPECT_EQ(alice.user.groups, std::vector<std::string>{"editors"});
    EXPECT_EQ(table->VerifyToken("t-bob").user.name, "bob-id");  // the name defaults to the id
    EXPECT_EQ(table->VerifyToken("t-carol").kind, AuthResult::Kind::kInvalid);
    EXPECT_EQ(tokens.server.auth.anonymous, AnonymousPolicy::kAllow);
    EXPECT_EQ(tokens.server.auth.invalid_credential, InvalidCredentialPolicy::kAnonymous);
    EXPECT_TRUE(table->sources().bearer_header);
    EXPECT_EQ(table->sources().query_param, "token");
    EXPECT_EQ(table->sources().cookie, "");  // off unless configured (it requires allowed_origins)

    Config jwt = ParseConfig(With(route, R"("auth": {"jwt": {"secret": "s3cret", "leeway_s": 30},
        "anonymous": "refuse", "invalid_token": "refuse", "query_param": "access_token", "cookie": "",
        "bearer_header": false},)"));
    auto* verifier = dynamic_cast<const JwtAuthenticator*>(jwt.server.auth.authenticator.get());
    ASSERT_TRUE(verifier);
    EXPECT_EQ(verifier->sources().query_param, "access_token");
    EXPECT_EQ(verifier->sources().cookie, "");
    EXPECT_FALSE(verifier->sources().bearer_header);
    EXPECT_EQ(jwt.server.auth.anonymous, AnonymousPolicy::kRefuse);
    EXPECT_EQ(jwt.server.auth.invalid_credential, InvalidCredentialPolicy::kRefuse);

    Config both =
        ParseConfig(With(route, R"("auth": {"tokens": {"t": {"user": "u"}}, "jwt": {"secret": "s"}},)"));
    EXPECT_TRUE(dynamic_cast<const ChainAuthenticator*>(both.server.auth.authenticator.get()));
}

TEST(ConfigTest, AuthErrorsNameTheKeyAndNeverTheToken) {
    auto with = [](const std::string& auth) {
        return Error(With(R"({"model": "posts", "mixins": ["list"]})", R"("auth": )" + auth + ","));
    };
    EXPECT_EQ(with(R"("on")"),
              "auth: expected an object such as {\"jwt\": {\"secret\": \"...\"}, \"anonymous\": \"allow\"}");
    EXPECT_EQ(with(R"({"anonymous": "refuse"})"), "auth: expected \"tokens\" and/or \"jwt\"");
    EXPECT_EQ(with(R"({"jwt": {"secret": "s"}, "realm": 1})"),
              "auth.realm: unknown key; valid keys: tokens, jwt, anonymous, invalid_token, bearer_header, "
              "query_param, cookie");
    EXPECT_EQ(with(R"({"jwt": {"secret": "s"}, "anonymous": "deny"})"),
              "auth.anonymous: unknown value \"deny\"; valid values: allow, refuse");
    EXPECT_EQ(with(R"({"jwt": {"secret": "s"}, "invalid_token": "allow"})"),
              "auth.invalid_token: unknown value \"allow\"; valid values: anonymous, refuse");
    EXPECT_EQ(with(R"({"jwt": {"secret": "s"}, "bearer_header": "yes"})"),
              "auth.bearer_header: expected true or false");
    EXPECT_EQ(with(R"({"jwt": {}})"), "auth.jwt.secret: missing (the HS256 key your backend signs tokens with)");
    EXPECT_EQ(with(R"({"jwt": {"secret": ""}})"), "auth.jwt.secret: empty");
    EXPECT_EQ(with(R"({"jwt": {"secret": "s", "leeway_s": -1}})"),
              "auth.jwt.leeway_s: expected an integer from 0 to 86400");
    EXPECT_EQ(with(R"({"jwt": {"secret": "s", "alg": "HS512"}})"),
              "auth.jwt.alg: unknown key; valid keys: secret, leeway_s");
    EXPECT_EQ(with(R"({"tokens": {}})"),
              "auth.tokens: expected a non-empty object such as {\"<token>\": {\"user\": \"alice\", \"id\": 1}}");
    // Token entries are named by position: a config error line never shows a token.
    EXPECT_EQ(with(R"({"tokens": {"sekrit-1": {"user": "a"}, "sekrit-2": {"id": [1]}}})"),
              "auth.tokens[1].id: expected an integer or a non-empty string");
    EXPECT_EQ(with(R"({"tokens": {"sekrit-1": {}}})"), "auth.tokens[0]: expected \"user\" and/or \"id\"");
    EXPECT_EQ(with(R"({"tokens": {"sekrit-1": "alice"}})"),
              "auth.tokens[0]: expected an object such as {\"user\": \"alice\", \"id\": 1}");
    EXPECT_EQ(with(R"({"tokens": {"sekrit-1": {"user": "a", "role": "x"}}})"),
              "auth.tokens[0].role: unknown key; valid keys: user, id, groups, token");
    EXPECT_EQ(with(R"({"tokens": {"": {"user": "a"}}})"), "auth.tokens[0]: empty token");
}

}  // namespace
}  // namespace syncline::config

namespace syncline::config {
namespace {

// Cross-site websocket hijacking: "allowed_origins" at the top level, overridden by a route's own (consumer, routed
// and multiplexer routes alike).
TEST(ConfigTest, AllowedOriginsTopLevelAndPerRoute) {
    Config none = ParseConfig(With(R"({"model": "posts", "mixins": ["list"]})"));
    EXPECT_FALSE(none.server.allowed_origins);
    EXPECT_FALSE(none.routes[0].endpoint.allowed_origins);

    Config config = ParseConfig(With(R"({"model": "posts", "mixins": ["list"],
                                               "allowed_origins": ["https://posts.example.com", "*"]})",
                                           R"("allowed_origins": ["https://app.example.com",
                                                                  "http://localhost:3000", "http://[::1]:8080"],)"));
    EXPECT_EQ(config.server.allowed_origins,
              (std::vector<std::string>{"https://app.example.com", "http://localhost:3000", "http://[::1]:8080"}));
    EXPECT_EQ(config.routes[0].endpoint.allowed_origins, (std::vector<std::string>{"https://posts.example.com", "*"}));

    Config routes = ParseConfig(WithRoutes(R"(
        "/ws/": {"streams": {"posts": "/ws/posts/"}, "allowed_origins": ["https://mux.example.com"]},
        "/ws/api/": {"allowed_origins": [],
                     "routepatterns": {"^posts/$": {"model": "posts", "handler": "ListAPIActionHandler"}}})"));
    EXPECT_EQ(routes.routes[2].endpoint.allowed_origins, (std::vector<std::string>{"https://mux.example.com"}));
    EXPECT_EQ(routes.routes[3].endpoint.allowed_origins, std::vector<std::string>{});  // browsers: none
}

TEST(ConfigTest, AllowedOriginsEntriesAreOriginsAsBrowsersSendThem) {
    auto top = [](const std::string& list) {
        return Error(With(R"({"model": "posts", "mixins": ["list"]})", R"("allowed_origins": )" + list + ","));
    };
    EXPECT_EQ(top(R"("https://app.example.com")"),
              "allowed_origins: expected a list of origins such as [\"https://app.example.com\"]");
    EXPECT_EQ(top(R"(["https://app.example.com/"])"),
              "allowed_origins[0]: expected scheme://host[:port] with no path, query, fragment or user info "
              "(\"app.example.com/\" is not a host)");
    EXPECT_EQ(top(R"(["https://a.example", "app.example.com"])"),
              "allowed_origins[1]: expected scheme://host[:port], e.g. https://example.com");
    EXPECT_EQ(top(R"(["https://user@app.example.com"])"),
              "allowed_origins[0]: expected scheme://host[:port] with no path, query, fragment or user info "
              "(\"user@app.example.com\" is not a host)");
    EXPECT_EQ(top(R"(["https://app.example.com:0"])"), "allowed_origins[0]: port out of range");
    EXPECT_EQ(top(R"(["https://app.example.com:http"])"),
              "allowed_origins[0]: invalid port (expected scheme://host[:port] with no path)");
    EXPECT_EQ(top(R"(["null"])"), "allowed_origins[0]: expected scheme://host[:port], e.g. https://example.com");
    EXPECT_EQ(top(R"([1])"), "allowed_origins[0]: expected a string");
    EXPECT_EQ(Error(With(R"({"model": "posts", "mixins": ["list"], "allowed_origins": ["ftp//x"]})")),
              "routes./ws/posts/.allowed_origins[0]: expected scheme://host[:port], e.g. https://example.com");
    EXPECT_EQ(Error(WithRoutes(R"("/ws/api/": {"routepatterns": {"^p/$": {"model": "posts", "allowed_origins": [],
                                                   "handler": "ListAPIActionHandler"}}})")),
              "routes./ws/api/.routepatterns.^p/$.allowed_origins: unknown key; valid keys: model, fields, "
              "read_only, write_only, handler, lookup_field, lookup_url_kwarg, queryset, group_by, filter_fields, "
              "ordering_fields, pagination, page_size, max_page_size, permissions, owner_field");
}

// A browser sends its cookies with a handshake whichever site's page opens it: a cookie token source requires an
// origin allow-list (without "*") on every route.
TEST(ConfigTest, CookieAuthenticationRequiresAllowedOrigins) {
    const std::string auth = R"("auth": {"tokens": {"t": {"user": "u"}}, "cookie": "session"},)";
    const std::string rule =
        "auth.cookie: cookie authentication requires allowed_origins (the sites whose pages may connect, without "
        "\"*\"), at the top level or on every route; route /ws/posts/ has none";
    EXPECT_EQ(Error(With(R"({"model": "posts", "mixins": ["list"]})", auth)), rule);
    EXPECT_EQ(Error(With(R"({"model": "posts", "mixins": ["list"]})", auth + R"("allowed_origins": ["*"],)")), rule);
    EXPECT_EQ(Error(With(R"({"model": "posts", "mixins": ["list"], "allowed_origins": ["*"]})",
                         auth + R"("allowed_origins": ["https://app.example.com"],)")),
              rule);
    Config top = ParseConfig(
        With(R"({"model": "posts", "mixins": ["list"]})", auth + R"("allowed_origins": ["https://app.example.com"],)"));
    auto* table = dynamic_cast<const StaticTokenAuthenticator*>(top.server.auth.authenticator.get());
    ASSERT_TRUE(table);
    EXPECT_EQ(table->sources().cookie, "session");
    EXPECT_TRUE(ReadsCookies(*top.server.auth.authenticator));
    // Every route of its own, a multiplexer included.
    const std::string every_route = R"({"database": "t.db", )" + auth + R"(
        "models": {"posts": {"fields": {"title": {"type": "text"}}}},
        "routes": {"/ws/posts/": {"model": "posts", "mixins": ["list"], "allowed_origins": ["https://a.example"]},
                   "/ws/": {"streams": {"posts": "/ws/posts/"}, "allowed_origins": []}}})";
    EXPECT_NO_THROW(ParseConfig(every_route));
    std::string mux_without = every_route;
    mux_without.replace(mux_without.find(R"(, "allowed_origins": []})"), 24, "}");
    EXPECT_EQ(Error(mux_without),
              "auth.cookie: cookie authentication requires allowed_origins (the sites whose pages may connect, "
              "without \"*\"), at the top level or on every route; route /ws/ has none");
    // An empty cookie name is "off": no allow-list needed.
    EXPECT_NO_THROW(ParseConfig(With(R"({"model": "posts", "mixins": ["list"]})",
                                     R"("auth": {"tokens": {"t": {"user": "u"}}, "cookie": ""},)")));
}

TEST(ConfigTest, MaxConnectionsAndMaxHandshakes) {
    Config defaults = ParseConfig(With(R"({"model": "posts", "mixins": ["list"]})"));
    EXPECT_EQ(defaults.server.max_connections, 0u);  // derived from the open-file limit by the server
    EXPECT_EQ(defaults.server.max_handshakes, 128u);
    Config set = ParseConfig(
        With(R"({"model": "posts", "mixins": ["list"]})", R"("max_connections": 5, "max_handshakes": 16,)"));
    EXPECT_EQ(set.server.max_connections, 5u);
    EXPECT_EQ(set.server.max_handshakes, 16u);
    EXPECT_EQ(Error(With(R"({"model": "posts", "mixins": ["list"]})", R"("max_connections": 0,)")),
              "max_connections: expected an integer from 1 to 10000000");
    EXPECT_EQ(Error(With(R"({"model": "posts", "mixins": ["list"]})", R"("max_handshakes": "many",)")),
              "max_handshakes: expected an integer from 1 to 1000000");
}

}  // namespace
}  // namespace syncline::config

namespace syncline::config {
namespace {

// Sets an environment variable for the life of the object (the config tests run on one thread).
class ScopedEnv {
public:
    ScopedEnv(const char* name, const char* value) : name_(name) {
        if (value) {
            ::setenv(name, value, 1);
        } else {
            ::unsetenv(name);
        }
    }
    ~ScopedEnv() { ::unsetenv(name_); }
    ScopedEnv(const ScopedEnv&) = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;

private:
    const char* name_;
};

// A handshake on /ws/posts/ with `token` in its query string, as a chain of authenticators sees it.
AuthResult Auth(const Authenticator& authenticator, const std::string& token) {
    HandshakeRequest request;
    request.path = "/ws/posts/";
    request.query = "token=" + token;
    return authenticator.Authenticate(request);
}

// Issue 14: every secret may name an environment variable instead of being written in the file.
TEST(ConfigTest, SecretsMayComeFromTheEnvironment) {
    ScopedEnv database("SYNCLINE_TEST_DATABASE", "postgresql://app:pg-pw-91b3@db.internal:5432/app");
    ScopedEnv redis("SYNCLINE_TEST_REDIS", "redis://default:redis-pw-77e2@127.0.0.1:6379/0");
    ScopedEnv secret("SYNCLINE_TEST_JWT", "jwt-from-env-5c1");
    ScopedEnv token("SYNCLINE_TEST_TOKEN", "tok-from-env-3a9");
    Config config = ParseConfig(R"({"database": {"env": "SYNCLINE_TEST_DATABASE"},
        "bus": {"redis": {"env": "SYNCLINE_TEST_REDIS"}},
        "auth": {"tokens": {"alice": {"token": {"env": "SYNCLINE_TEST_TOKEN"}, "user": "alice", "id": 1},
                            "tok-literal": {"user": "bob"}},
                 "jwt": {"secret": {"env": "SYNCLINE_TEST_JWT"}}},
        "models": {"posts": {"fields": {"title": {"type": "text"}}}},
        "routes": {"/ws/posts/": {"model": "posts", "mixins": ["list"]}}})");
    EXPECT_EQ(config.server.database, "postgresql://app:pg-pw-91b3@db.internal:5432/app");
    EXPECT_EQ(config.server.redis_url, "redis://default:redis-pw-77e2@127.0.0.1:6379/0");
    auto* chain = dynamic_cast<const ChainAuthenticator*>(config.server.auth.authenticator.get());
    ASSERT_TRUE(chain);
    // The token from the environment is the token; the entry's key only names it. A literal key still works.
    AuthResult alice = Auth(*chain, "tok-from-env-3a9");
    EXPECT_EQ(alice.kind, AuthResult::Kind::kUser);
    EXPECT_EQ(alice.user.name, "alice");
    EXPECT_EQ(Auth(*chain, "alice").kind, AuthResult::Kind::kInvalid);
    EXPECT_EQ(Auth(*chain, "tok-literal").user.name, "bob");
    // An HS256 token signed with the secret of the environment ({"sub": "7", "name": "eve", exp 2100-01-01}).
    AuthResult eve = Auth(*chain,
                          "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
                          "eyJzdWIiOiI3IiwibmFtZSI6ImV2ZSIsImV4cCI6NDEwMjQ0NDgwMH0.5kgkVqkQkwd6ZAhAMUUuuzkbNsoGK24KRLUhXdAc_N4");
    EXPECT_EQ(eve.kind, AuthResult::Kind::kUser);
    EXPECT_EQ(eve.user.id, "7");
}

TEST(ConfigTest, AMissingOrEmptySecretVariableNamesTheVariableNeverAValue) {
    ScopedEnv unset("SYNCLINE_TEST_UNSET", nullptr);
    ScopedEnv empty("SYNCLINE_TEST_EMPTY", "");
    ScopedEnv dup("SYNCLINE_TEST_DUP", "tok-dup-0e4c");
    const std::string route = R"({"model": "posts", "mixins": ["list"]})";
    auto top = [&](const std::string& database, const std::string& extra = "") {
        return Error(R"({"database": )" + database + ", " + extra +
                     R"("models": {"posts": {"fields": {"title": {"type": "text"}}}},
                        "routes": {"/ws/posts/": )" + route + "}}");
    };
    EXPECT_EQ(top(R"({"env": "SYNCLINE_TEST_UNSET"})"),
              "database: environment variable SYNCLINE_TEST_UNSET is not set");
    EXPECT_EQ(top(R"({"env": "SYNCLINE_TEST_EMPTY"})"), "database: environment variable SYNCLINE_TEST_EMPTY is empty");
    EXPECT_EQ(top(R"({"file": "x"})"), "database.file: unknown key; valid keys: env");
    EXPECT_EQ(top(R"({})"), "database: expected a string or {\"env\": \"NAME\"} (an environment variable)");
    EXPECT_EQ(top(R"({"env": ""})"), "database.env: not a variable name");
    EXPECT_EQ(top(R"(["t.db"])"), "database: expected a string or {\"env\": \"NAME\"} (an environment variable)");
    EXPECT_EQ(top(R"("t.db")", R"("bus": {"redis": {"env": "SYNCLINE_TEST_UNSET"}},)"),
              "bus.redis: environment variable SYNCLINE_TEST_UNSET is not set");
    // A value that is not a Redis URL is refused without quoting it (it may be a password put in the wrong place).
    EXPECT_EQ(top(R"("t.db")", R"("bus": {"redis": {"env": "SYNCLINE_TEST_DUP"}},)"),
              "bus.redis: expected a redis://host:port/db URL");
    EXPECT_EQ(top(R"("t.db")", R"("auth": {"jwt": {"secret": {"env": "SYNCLINE_TEST_EMPTY"}}},)"),
              "auth.jwt.secret: environment variable SYNCLINE_TEST_EMPTY is empty");
    EXPECT_EQ(top(R"("t.db")", R"("auth": {"tokens": {"a": {"token": {"env": "SYNCLINE_TEST_UNSET"}, "user": "a"}}},)"),
              "auth.tokens[0].token: environment variable SYNCLINE_TEST_UNSET is not set");
    // Two entries with one token: refused (which user would it be?), without the token.
    EXPECT_EQ(top(R"("t.db")", R"("auth": {"tokens": {"tok-dup-0e4c": {"user": "a"},
                                                       "b": {"token": {"env": "SYNCLINE_TEST_DUP"}, "user": "b"}}},)"),
              "auth.tokens[1]: the same token as an earlier entry");
}

TEST(ConfigTest, LogFormat) {
    const std::string route = R"({"model": "posts", "mixins": ["list"]})";
    EXPECT_EQ(ParseConfig(With(route)).log_format, "text");
    EXPECT_EQ(ParseConfig(With(route, R"("log_format": "json",)")).log_format, "json");
    EXPECT_EQ(ParseConfig(With(route, R"("log_format": "text",)")).log_format, "text");
    EXPECT_EQ(Error(With(route, R"("log_format": "xml",)")),
              "log_format: unknown value \"xml\"; valid values: text, json");
    EXPECT_EQ(Error(With(route, R"("log_format": 1,)")), "log_format: expected a string");
}

}  // namespace
}  // namespace syncline::config
