#include <syncline/core/config.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace syncline {
namespace {

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
    ServerConfig config = ParseConfig(text.str());
    EXPECT_EQ(config.database, "blog.db");
    EXPECT_EQ(config.host, "127.0.0.1");
    EXPECT_EQ(config.port, 8000);
    EXPECT_EQ(config.workers, 2u);
    ASSERT_EQ(config.models.size(), 1u);
    EXPECT_EQ(config.models[0].table(), "posts");
    ASSERT_EQ(config.routes.size(), 1u);
    const RouteConfig& route = config.routes[0];
    EXPECT_EQ(route.path, "/ws/posts/");
    EXPECT_EQ(route.consumer.model, "posts");
    EXPECT_EQ(route.consumer.serializer.fields, (std::vector<std::string>{"id", "title", "body", "author"}));
    EXPECT_EQ(route.consumer.serializer.read_only, (std::vector<std::string>{"id"}));
    EXPECT_EQ(route.consumer.mixins.size(), 6u);
}

TEST(ConfigTest, RouteOptions) {
    ServerConfig config = ParseConfig(With(
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
    EXPECT_EQ(config.synchronous, "full");
    EXPECT_EQ(config.port, 0);
}

TEST(ConfigTest, StreamedPaginationInstallsADetachedListAndListCancel) {
    ServerConfig config = ParseConfig(With(R"({"model": "posts", "mixins": ["retrieve"], "pagination": "streamed",
                                                "page_size": 25, "max_page_size": 50})",
                                           R"("action_threads": 3,)"));
    EXPECT_EQ(config.action_threads, 3u);
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
    EXPECT_EQ(ParseConfig(With(R"({"model": "posts", "mixins": ["list"]})")).action_threads, 0u);
    EXPECT_EQ(Error(With(R"({"model": "posts", "mixins": ["list"], "pagination": "cursor"})")),
              "routes./ws/posts/.pagination: unknown pagination \"cursor\"; valid values: limit_offset, streamed");
    EXPECT_EQ(Error(With(R"({"model": "posts", "mixins": ["list"]})", R"("action_threads": -1,)")),
              "action_threads: expected an integer from 0 to 256");
}

TEST(ConfigTest, ErrorsNameTheKeyPathAndTheValidChoices) {
    EXPECT_EQ(Error(With(R"({"model": "post", "mixins": ["list"]})")),
              "routes./ws/posts/.model: unknown model \"post\"; valid models: posts");
    EXPECT_EQ(Error(With(R"({"model": "posts", "mixins": ["list", "lst"]})")),
              "routes./ws/posts/.mixins[1]: unknown mixin \"lst\"; valid mixins: list, retrieve, create, update, "
              "patch, delete, observe_instance, observe_list");
    EXPECT_EQ(Error(With(R"({"model": "posts", "fields": ["id", "titel"], "mixins": ["list"]})")),
              "routes./ws/posts/.fields[1]: unknown field \"titel\"; valid fields: id, title, author");
    EXPECT_EQ(Error(With(R"({"model": "posts", "mixins": ["list"], "colour": 1})")),
              "routes./ws/posts/.colour: unknown key; valid keys: model, fields, read_only, write_only, mixins, "
              "lookup_field, lookup_url_kwarg, queryset, rate_limit, group_by, filter_fields, ordering_fields, "
              "pagination, page_size, max_page_size");
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
    EXPECT_EQ(Error(R"({"models": {}})"), "database: missing (the SQLite file, e.g. \"app.db\")");
    EXPECT_THAT(Error("{oops"), HasSubstr("config: invalid JSON at offset 1"));
    EXPECT_EQ(Error(R"({"database": "t.db", "models": {"posts": {"fields": {"t": {"type": "text"}}}},
                         "routes": {"ws": {"model": "posts", "mixins": ["list"]}}})"),
              "routes.ws: a route path must start with /");
}

}  // namespace
}  // namespace syncline
