// Routed action handlers (docs/protocol.md §10) at the consumer level, through a ConsumerEndpoint session and a fake
// socket, over a real database file: exact frames for every action of rest_framework_channels' handler classes,
// named groups as arguments, match order and search semantics, and every error reply.

#include <syncline/core/protocol/routed.hpp>
#include <syncline/test_support/same_json.hpp>

#include <syncline/core/protocol/consumer_endpoint.hpp>
#include <syncline/core/consumer/permissions.hpp>
#include <syncline/storage/database.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <mutex>

#include "../storage/test_db.hpp"
#include "recording_outbox.hpp"

namespace syncline {
namespace {

using ::testing::HasSubstr;

using FakeOutbox = testing::RecordingOutbox;

class DenyAll final : public Permission {
public:
    bool HasPermission(const ActionRequest& request, const GenericConsumer& consumer) const override {
        (void)request;
        (void)consumer;
        return false;
    }
};

using test_support::SameJson;

ConsumerOptions PostOptions() {
    ConsumerOptions o;
    o.model = "posts";
    o.serializer.fields = {"id", "title", "author"};
    o.serializer.read_only = {"id"};
    return o;
}

class RoutedTest : public ::testing::Test {
protected:
    void SetUp() override {
        storage::DatabaseOptions options;
        options.path = dir_.File("blog.db");
        db_ = storage::Database::Open(options, {testing::PostsSchema(), testing::TagsSchema()});
        db_->Insert("posts", {{"title", "First"}, {"author", "alice"}});
        db_->Insert("posts", {{"title", "Second"}, {"author", "bob"}});
        db_->Insert("tags", {{"slug", "cpp"}, {"label", "C++"}});
        ConsumerOptions tags;
        tags.model = "tags";
        tags.lookup_url_kwarg = "slug";
        ConsumerOptions denied = PostOptions();
        denied.permissions = {std::make_shared<DenyAll>()};
        consumer_ = std::make_shared<RoutedConsumer>(std::vector<RoutePattern>{
            {"posts/(?P<pk>[^/]+)/$", std::make_shared<RetrieveUpdateDestroyAPIActionHandler>(PostOptions())},
            {"^posts/$", std::make_shared<ListCreateAPIActionHandler>(PostOptions())},
            {"^readonly/(?P<pk>\\d+)/$", std::make_shared<RetrieveAPIActionHandler>(PostOptions())},
            {"^tags/(?P<slug>[-\\w]+)/$", std::make_shared<RetrieveAPIActionHandler>(tags)},
            {"^denied/$", std::make_shared<ListAPIActionHandler>(denied)},
            {"^dcrf/(?P<pk>\\d+)/$", std::make_shared<ModelConsumer>(PostOptions())}});
        consumer_->Bind(*db_);
        endpoint_ = std::make_shared<ConsumerEndpoint>(consumer_);
        session_ = endpoint_->Open(request_, outbox_);
    }
    std::string Send(const std::string& frame) {
        session_->OnText(frame);
        return outbox_->frames.empty() ? "" : outbox_->frames.back();
    }

    testing::TempDir dir_;
    std::unique_ptr<storage::Database> db_;
    std::shared_ptr<RoutedConsumer> consumer_;
    std::shared_ptr<ConsumerEndpoint> endpoint_;
    HandshakeRequest request_{"/ws/api/", "", {}, "127.0.0.1:1"};
    std::shared_ptr<FakeOutbox> outbox_ = std::make_shared<FakeOutbox>();
    std::unique_ptr<Session> session_;
};

TEST_F(RoutedTest, EveryActionOfTheHandlerClassesWithRouteAndStatus) {
    EXPECT_TRUE(SameJson(Send(R"({"action": "list", "route": "posts/"})"),
                         R"({"errors": [], "data": [{"id": 1, "title": "First", "author": "alice"},
                             {"id": 2, "title": "Second", "author": "bob"}], "action": "list", "route": "posts/",
                             "status": 200})"));
    EXPECT_TRUE(SameJson(Send(R"({"action": "create", "route": "posts/", "data": {"title": "Third"}})"),
                         R"({"errors": [], "data": {"id": 3, "title": "Third", "author": ""}, "action": "create",
                             "route": "posts/", "status": 201})"));
    EXPECT_TRUE(SameJson(Send(R"({"action": "retrieve", "route": "posts/1/"})"),
                         R"({"errors": [], "data": {"id": 1, "title": "First", "author": "alice"},
                             "action": "retrieve", "route": "posts/1/", "status": 200})"));
    EXPECT_TRUE(SameJson(Send(R"({"action": "update", "route": "posts/3/", "data": {"title": "Third v2"}})"),
                         R"({"errors": [], "data": {"id": 3, "title": "Third v2", "author": ""}, "action": "update",
                             "route": "posts/3/", "status": 200})"));
    EXPECT_TRUE(SameJson(Send(R"({"action": "partial_update", "route": "posts/3/", "data": {"author": "carol"}})"),
                         R"({"errors": [], "data": {"id": 3, "title": "Third v2", "author": "carol"},
                             "action": "partial_update", "route": "posts/3/", "status": 200})"));
    EXPECT_TRUE(SameJson(Send(R"({"action": "remove", "route": "posts/3/"})"),
                         R"({"errors": [], "data": null, "action": "remove", "route": "posts/3/", "status": 204})"));
    EXPECT_TRUE(SameJson(Send(R"({"action": "remove", "route": "posts/3/"})"),
                         R"({"errors": ["Not found"], "data": null, "action": "remove", "route": "posts/3/",
                             "status": 404})"));
    EXPECT_FALSE(db_->Get("posts", "id", Value(3)));
}

TEST_F(RoutedTest, RequestIdIsEchoedOnlyWhenSent) {
    EXPECT_EQ(Send(R"({"action": "retrieve", "route": "posts/2/", "request_id": {"n": 1}})"),
              R"({"errors":[],"data":{"id":2,"title":"Second","author":"bob"},"action":"retrieve",)"
              R"("route":"posts/2/","status":200,"request_id":{"n":1}})");
    EXPECT_EQ(Send(R"({"action": "retrieve", "route": "posts/2/"})"),
              R"({"errors":[],"data":{"id":2,"title":"Second","author":"bob"},"action":"retrieve",)"
              R"("route":"posts/2/","status":200})");
}

TEST_F(RoutedTest, NamedGroupsBecomeArgumentsOverTheClientsOwn) {
    EXPECT_TRUE(SameJson(Send(R"({"action": "retrieve", "route": "tags/cpp/"})"),
                         R"({"errors": [], "data": {"slug": "cpp", "label": "C++"}, "action": "retrieve",
                             "route": "tags/cpp/", "status": 200})"));
    // The route says which row: a pk the client also sent does not win.
    EXPECT_TRUE(SameJson(Send(R"({"action": "retrieve", "route": "posts/1/", "pk": 2})"),
                         R"({"errors": [], "data": {"id": 1, "title": "First", "author": "alice"},
                             "action": "retrieve", "route": "posts/1/", "status": 200})"));
    EXPECT_TRUE(SameJson(Send(R"({"action": "retrieve", "route": "posts/abc/"})"),
                         R"({"errors": ["Not found"], "data": null, "action": "retrieve", "route": "posts/abc/",
                             "status": 404})"));
}

TEST_F(RoutedTest, PatternsAreSearchedInOrderAsDjangosRePath) {
    // Unanchored: the first pattern matches anywhere in the route (Django's re_path searches).
    EXPECT_THAT(Send(R"({"action": "retrieve", "route": "v1/posts/2/"})"), HasSubstr(R"("title":"Second")"));
    // Anchored with ^: "x/posts/" is no match for "^posts/$".
    EXPECT_TRUE(SameJson(Send(R"({"action": "list", "route": "x/posts/"})"),
                         R"({"errors": ["No route matches \"x/posts/\"."], "data": null, "action": "list",
                             "route": "x/posts/", "status": 404})"));
    // "$" anchors the end: a trailing segment is no match.
    EXPECT_THAT(Send(R"({"action": "retrieve", "route": "readonly/1/x"})"), HasSubstr(R"("status":404)"));
}

TEST_F(RoutedTest, ErrorReplies) {
    struct Case {
        std::string frame;
        std::string reply;
    };
    const std::vector<Case> cases = {
        {R"({"action": "retrieve", "route": "nothing/1/"})",
         R"({"errors": ["No route matches \"nothing/1/\"."], "data": null, "action": "retrieve",
             "route": "nothing/1/", "status": 404})"},
        {R"({"action": "list"})",
         R"({"errors": ["No route matches \"\"."], "data": null, "action": "list", "route": "", "status": 404})"},
        {R"({"action": "list", "route": 5, "request_id": 1})",
         R"({"errors": ["route must be a string."], "data": null, "action": "list", "route": 5, "status": 400,
             "request_id": 1})"},
        {R"({"route": "posts/"})",
         R"({"errors": ["Unable to find action in message body."], "data": null, "action": null, "route": "posts/",
             "status": 404})"},
        {R"({"action": 3, "route": "posts/"})",
         R"({"errors": ["Method \"3\" not allowed."], "data": null, "action": 3, "route": "posts/", "status": 405})"},
        {R"({"action": "remove", "route": "readonly/1/"})",
         R"({"errors": ["Method \"remove\" not allowed."], "data": null, "action": "remove", "route": "readonly/1/",
             "status": 405})"},
        // DCRF's names are not those of rest_framework_channels' handler classes.
        {R"({"action": "patch", "route": "posts/1/", "data": {}})",
         R"({"errors": ["Method \"patch\" not allowed."], "data": null, "action": "patch", "route": "posts/1/",
             "status": 405})"},
        {R"({"action": "create", "route": "posts/", "data": {"title": "", "author": true}})",
         R"({"errors": [{"title": ["This field may not be blank."], "author": ["Not a valid string."]}],
             "data": null, "action": "create", "route": "posts/", "status": 400})"},
        {R"({"action": "create", "route": "posts/"})",
         R"({"errors": [{"non_field_errors": ["No data provided"]}], "data": null, "action": "create",
             "route": "posts/", "status": 400})"},
        // Permission before the action lookup: an unknown action on a denied handler is 403.
        {R"({"action": "list", "route": "denied/"})",
         R"({"errors": ["You do not have permission to perform this action."], "data": null, "action": "list",
             "route": "denied/", "status": 403})"},
        {R"({"action": "fly", "route": "denied/"})",
         R"({"errors": ["You do not have permission to perform this action."], "data": null, "action": "fly",
             "route": "denied/", "status": 403})"},
        {"[1]",
         R"({"errors": ["Malformed message: expected a JSON object, got list"], "data": null, "action": null,
             "route": null, "status": 400})"},
        {"",
         R"({"errors": ["Malformed message: empty frame"], "data": null, "action": null, "route": null,
             "status": 400})"},
    };
    for (const auto& c : cases) EXPECT_TRUE(SameJson(Send(c.frame), c.reply)) << c.frame;
    session_->OnBinary("x");
    EXPECT_TRUE(SameJson(outbox_->frames.back(),
                         R"({"errors": ["Malformed message: binary frames are not supported"], "data": null,
                             "action": null, "route": null, "status": 400})"));
    EXPECT_THAT(Send("{oops"), HasSubstr("Malformed message: Missing a name for object member."));
    EXPECT_EQ(outbox_->close_code, 0);
    // A plain DCRF consumer may be a handler too: it answers its own action names, in the routed envelope.
    EXPECT_TRUE(SameJson(Send(R"({"action": "patch", "route": "dcrf/1/", "data": {"author": "ann"}})"),
                         R"({"errors": [], "data": {"id": 1, "title": "First", "author": "ann"}, "action": "patch",
                             "route": "dcrf/1/", "status": 200})"));
}

TEST_F(RoutedTest, OwnPermissionsComeBeforeRouting) {
    auto guarded = std::make_shared<RoutedConsumer>(
        std::vector<RoutePattern>{{"^posts/$", std::make_shared<ListAPIActionHandler>(PostOptions())}},
        std::vector<std::shared_ptr<const Permission>>{std::make_shared<DenyAll>()});
    guarded->Bind(*db_);
    ConnectionContext context(request_, outbox_);
    EXPECT_TRUE(SameJson(guarded->HandleText(context, R"({"action": "list", "route": "nowhere/"})"),
                         R"({"errors": ["You do not have permission to perform this action."], "data": null,
                             "action": "list", "route": "nowhere/", "status": 403})"));
}

TEST_F(RoutedTest, PythonSyntaxIsTranslatedAndBadPatternsAreNamed) {
    EXPECT_EQ(RoutePatternError("posts/(?P<pk>[^/]+)/$"), std::nullopt);
    EXPECT_EQ(RoutePatternError("a/(?<pk>\\d+)/[(?P<x>]"), std::nullopt);  // in a class it is just characters
    EXPECT_TRUE(RoutePatternError("posts/("));
    EXPECT_EQ(RoutePatternError("(?P<a>x)(?P<a>y)"), "group name \"a\" is used twice");
    EXPECT_EQ(RoutePatternError("(?P<1a>x)"), "bad group name \"1a\"");
    EXPECT_THROW(RoutedConsumer({{"posts/(", std::make_shared<ListAPIActionHandler>(PostOptions())}}),
                 std::invalid_argument);
    try {
        RoutedConsumer({{"(?P<x", std::make_shared<ListAPIActionHandler>(PostOptions())}});
        ADD_FAILURE() << "no exception";
    } catch (const std::invalid_argument& e) {
        EXPECT_THAT(e.what(), HasSubstr("invalid route pattern \"(?P<x\""));
    }
    // (?P=name) refers back to a named group.
    auto echo = std::make_shared<RoutedConsumer>(std::vector<RoutePattern>{
        {"^(?P<pk>\\d+)-(?P=pk)$", std::make_shared<RetrieveAPIActionHandler>(PostOptions())}});
    echo->Bind(*db_);
    ConnectionContext context(request_, outbox_);
    EXPECT_THAT(echo->HandleText(context, R"({"action": "retrieve", "route": "1-1"})"), HasSubstr(R"("status":200)"));
    EXPECT_THAT(echo->HandleText(context, R"({"action": "retrieve", "route": "1-2"})"), HasSubstr(R"("status":404)"));
}

TEST_F(RoutedTest, HandlerTablesAndBindErrorsNameThePattern) {
    EXPECT_EQ(RoutedHandlerNames().size(), 9u);
    auto names = [](const std::vector<Mixin>& mixins) {
        std::vector<std::string> out;
        for (const auto& m : mixins) {
            for (const auto& a : m.actions) out.push_back(a.name);
        }
        return out;
    };
    EXPECT_EQ(names(RoutedHandlerMixins("RetrieveUpdateDestroyAPIActionHandler")),
              (std::vector<std::string>{"retrieve", "update", "partial_update", "remove"}));
    EXPECT_EQ(names(RoutedHandlerMixins("UpdateAPIActionHandler")),
              (std::vector<std::string>{"update", "partial_update"}));
    EXPECT_EQ(names(RoutedHandlerMixins("DestroyAPIActionHandler")), (std::vector<std::string>{"remove"}));
    EXPECT_THROW(RoutedHandlerMixins("ModelViewSet"), std::out_of_range);
    ConsumerOptions bad = PostOptions();
    bad.model = "nope";
    RoutedConsumer unbound({{"^x/$", std::make_shared<ListAPIActionHandler>(bad)}});
    try {
        unbound.Bind(*db_);
        ADD_FAILURE() << "no exception";
    } catch (const std::invalid_argument& e) {
        EXPECT_THAT(e.what(), HasSubstr("route pattern \"^x/$\": consumer: unknown model \"nope\""));
    }
}

}  // namespace
}  // namespace syncline
