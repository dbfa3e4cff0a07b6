// Permissions at the consumer level: the combinators' four answers (can_connect, action, object, SQL form), the owner
// rule's typing, in-memory list filtering with limit/offset, and authentication at ConsumerEndpoint::Open.

#include <syncline/core/consumer/permissions.hpp>

#include <syncline/auth/token_authenticator.hpp>
#include <syncline/core/auth/auth.hpp>
#include <syncline/core/consumer/subscriptions.hpp>
#include <syncline/core/protocol/consumer_endpoint.hpp>
#include <syncline/storage/database.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <set>
#include <stdexcept>

#include "../storage/test_db.hpp"
#include "recording_outbox.hpp"

namespace syncline {
namespace {

// The authenticators that verify tokens: the auth module.
using auth::StaticTokenAuthenticator;

using NullOutbox = testing::RecordingOutbox;

// Refuses every handshake; allows every request.
class NoConnect final : public Permission {
public:
    bool CanConnect(const ConnectionContext&) const override { return false; }
    bool HasPermission(const ActionRequest&, const GenericConsumer&) const override { return true; }
};

// An object rule with no SQL form: rows with an even id.
class EvenIds final : public Permission {
public:
    bool HasPermission(const ActionRequest&, const GenericConsumer&) const override { return true; }
    bool HasObjectPermission(const ActionRequest&, const GenericConsumer& consumer, const Row& row) const override {
        return row.at(consumer.schema().pk_index()).AsInteger() % 2 == 0;
    }
};

class PermissionsTest : public ::testing::Test {
protected:
    void SetUp() override {
        storage::DatabaseOptions options;
        options.path = dir_.File("perm.db");
        db_ = storage::Database::Open(options, {testing::PostsSchema()});
        for (int i = 1; i <= 9; ++i) {
            db_->Insert("posts", {{"title", "t" + std::to_string(i)}, {"likes", Value(i % 3 == 0 ? 1 : 2)}});
        }
        message_.Parse(R"({"action": "list"})");
    }
    std::shared_ptr<GenericConsumer> Consumer(std::vector<PermissionPtr> permissions) {
        ConsumerOptions o;
        o.model = "posts";
        o.permissions = std::move(permissions);
        o.mixins = {ListModelMixin(), RetrieveModelMixin()};
        auto c = std::make_shared<GenericConsumer>(o);
        c->Bind(*db_);
        return c;
    }
    ConnectionContext Context(User user) {
        return ConnectionContext(HandshakeRequest{"/ws/posts/", "", {}, "127.0.0.1:1"}, outbox_, std::move(user));
    }
    static User Named(const std::string& id, std::vector<std::string> groups = {}) {
        User u;
        u.authenticated = true;
        u.id = id;
        u.name = id;
        u.groups = std::move(groups);
        return u;
    }
    testing::TempDir dir_;
    std::unique_ptr<storage::Database> db_;
    std::shared_ptr<NullOutbox> outbox_ = std::make_shared<NullOutbox>();
    rapidjson::Document message_;
};

TEST_F(PermissionsTest, AllOfConcatenatesFiltersAndNeedsEverySqlForm) {
    auto owner = std::make_shared<IsOwner>("likes");
    auto consumer = Consumer({});
    ConnectionContext user2 = Context(Named("2"));
    ActionRequest request(user2, "list", message_);
    auto sql = AllOf({owner, std::make_shared<AllowAny>(), std::make_shared<IsAuthenticated>()})
                   ->ObjectFilter(request, *consumer);
    ASSERT_TRUE(sql);
    ASSERT_EQ(sql->size(), 1u);
    EXPECT_EQ((*sql)[0].field, "likes");
    EXPECT_EQ((*sql)[0].value, Value(2));  // the id "2", read as the integer field's value
    EXPECT_FALSE(And(owner, std::make_shared<EvenIds>())->ObjectFilter(request, *consumer));
    EXPECT_THROW(AllOf({}), std::invalid_argument);
    EXPECT_THROW(And(owner, nullptr), std::invalid_argument);
}

TEST_F(PermissionsTest, AnyOfObjectLevelNeedsThePartToAllowTheRequestToo) {
    auto consumer = Consumer({});
    auto owner = std::make_shared<IsOwner>("likes");
    auto editors = std::make_shared<InGroup>("editors");
    PermissionPtr either = Or(editors, owner);
    const Row liked_once = *db_->Get("posts", "id", Value(3));  // likes 1
    ConnectionContext editor = Context(Named("2", {"editors"}));
    ConnectionContext writer = Context(Named("2"));
    ActionRequest as_editor(editor, "retrieve", message_);
    ActionRequest as_writer(writer, "retrieve", message_);
    EXPECT_TRUE(either->HasObjectPermission(as_editor, *consumer, liked_once));
    // InGroup has no object rule (every row), but it refused the writer's request: that must not lend "every row".
    EXPECT_FALSE(either->HasObjectPermission(as_writer, *consumer, liked_once));
    EXPECT_EQ(either->ObjectFilter(as_editor, *consumer)->size(), 0u);  // every row
    auto writer_sql = either->ObjectFilter(as_writer, *consumer);
    ASSERT_TRUE(writer_sql);
    EXPECT_EQ(writer_sql->size(), 1u);  // only the owner part allows: its filter
    EXPECT_FALSE(Or(owner, std::make_shared<EvenIds>())->ObjectFilter(as_writer, *consumer));  // two rules: in memory
}

TEST_F(PermissionsTest, NotNegatesRequestsAndObjectsButNeverRefusesAHandshake) {
    auto consumer = Consumer({});
    ConnectionContext context = Context(Named("1"));
    ActionRequest request(context, "list", message_);
    PermissionPtr not_read_only = Not(std::make_shared<ReadOnly>());
    EXPECT_FALSE(not_read_only->HasPermission(request, *consumer));
    EXPECT_TRUE(Not(std::make_shared<NoConnect>())->CanConnect(context));
    const Row even = *db_->Get("posts", "id", Value(2));
    EXPECT_FALSE(Not(std::make_shared<EvenIds>())->HasObjectPermission(request, *consumer, even));
    EXPECT_FALSE(not_read_only->ObjectFilter(request, *consumer));
    EXPECT_FALSE(Or(std::make_shared<NoConnect>(), std::make_shared<NoConnect>())->CanConnect(context));
    EXPECT_TRUE(Or(std::make_shared<NoConnect>(), std::make_shared<AllowAny>())->CanConnect(context));
    EXPECT_FALSE(And(std::make_shared<NoConnect>(), std::make_shared<AllowAny>())->CanConnect(context));
}

TEST_F(PermissionsTest, OwnerReadsTheIdAsTheFieldsTypeAndAnonymousOwnsNothing) {
    auto consumer = Consumer({std::make_shared<IsOwner>("likes")});
    const Row row = *db_->Get("posts", "id", Value(1));  // likes 2
    for (const auto& [user, owns] : std::vector<std::pair<User, bool>>{
             {Named("2"), true}, {Named("1"), false}, {Named("two"), false}, {Named("2.0"), false}, {User{}, false}}) {
        ConnectionContext context = Context(user);
        ActionRequest request(context, "retrieve", message_);
        EXPECT_EQ(consumer->HasObjectPermission(request, row), owns) << user.id;
        // The SQL form agrees with the in-memory check.
        Query query;
        query.filters = *consumer->ObjectFilter(request);
        query.filters.push_back(Filter{"id", FilterOp::kExact, Value(1), {}});
        EXPECT_EQ(db_->List("posts", query).size(), owns ? 1u : 0u) << user.id;
    }
    auto text_owner = Consumer({std::make_shared<IsOwner>("title")});
    ConnectionContext t1 = Context(Named("t1"));
    ActionRequest request(t1, "retrieve", message_);
    EXPECT_TRUE(text_owner->HasObjectPermission(request, row));
    auto broken = Consumer({std::make_shared<IsOwner>("nope")});
    EXPECT_THROW(broken->HasObjectPermission(request, row), std::invalid_argument);
}

// Issue 9, item 12: a token whose id is "01" must not own the rows of owner 1. Ids compare exactly, by type: an
// integer field only with a canonical integer id, a text field only with the exact text; the SQL form (lists) and
// the in-memory form (retrieve, writes, pushes) agree for every id.
TEST_F(PermissionsTest, OwnerIdsCompareExactlyByTypeInSqlAndInMemory) {
    db_->Patch("posts", Value(1), {{"author", "1"}});   // likes 2
    db_->Patch("posts", Value(2), {{"author", "01"}});  // likes 2
    db_->Patch("posts", Value(3), {{"author", "-0"}});  // likes 1
    auto by_likes = Consumer({std::make_shared<IsOwner>("likes")});
    auto by_author = Consumer({std::make_shared<IsOwner>("author")});
    // The rows each user owns, by the in-memory check (every row) and by the SQL form (list): they must agree.
    auto owned = [&](const GenericConsumer& consumer, const User& user) {
        ConnectionContext context = Context(user);
        ActionRequest request(context, "list", message_);
        std::set<std::int64_t> in_memory;
        for (const Row& row : db_->List("posts", Query{})) {
            if (consumer.HasObjectPermission(request, row)) in_memory.insert(row.at(0).AsInteger());
            EXPECT_EQ(consumer.CanSee(request, row), consumer.HasObjectPermission(request, row));  // pushes
        }
        std::set<std::int64_t> in_sql;
        for (const Row& row : consumer.ListObjects(request, Query{}, false).rows) in_sql.insert(row.at(0).AsInteger());
        EXPECT_EQ(in_memory, in_sql) << "user id \"" << user.id << "\"";
        return in_sql;
    };
    const std::set<std::int64_t> likes_one = {3, 6, 9};
    const std::set<std::int64_t> likes_two = {1, 2, 4, 5, 7, 8};
    EXPECT_EQ(owned(*by_likes, Named("1")), likes_one);
    EXPECT_EQ(owned(*by_likes, Named("2")), likes_two);
    for (const char* id : {"01", "001", " 1", "1 ", "+1", "1.0", "1e0", "0x1", "1\n", "02", "-0", "２"}) {
        EXPECT_TRUE(owned(*by_likes, Named(id)).empty()) << "\"" << id << "\" owns integer rows";
    }
    // A text owner field compares the exact text: "1" owns "1", "01" owns "01", neither owns the other's row.
    EXPECT_EQ(owned(*by_author, Named("1")), std::set<std::int64_t>{1});
    EXPECT_EQ(owned(*by_author, Named("01")), std::set<std::int64_t>{2});
    EXPECT_EQ(owned(*by_author, Named("-0")), std::set<std::int64_t>{3});
    EXPECT_TRUE(owned(*by_author, Named(" 1")).empty());
    EXPECT_TRUE(owned(*by_author, User{}).empty());
}

TEST_F(PermissionsTest, OwnerValueIsTheTypedIdOrNothing) {
    const Schema& schema = db_->Model("posts");
    const FieldSpec& likes = schema.field(*schema.FieldIndex("likes"));
    const FieldSpec& author = schema.field(*schema.FieldIndex("author"));
    EXPECT_EQ(OwnerValue(likes, Named("42")), Value(42));
    EXPECT_EQ(OwnerValue(likes, Named("-7")), Value(-7));
    EXPECT_EQ(OwnerValue(likes, Named("0")), Value(0));
    EXPECT_EQ(OwnerValue(likes, Named("9223372036854775807")), Value(std::int64_t{9223372036854775807}));
    for (const char* id : {"042", "+42", " 42", "42 ", "42.0", "4e1", "-0", "9223372036854775808", "alice", ""}) {
        EXPECT_FALSE(OwnerValue(likes, Named(id))) << id;
    }
    EXPECT_EQ(OwnerValue(author, Named("042")), Value("042"));
    EXPECT_FALSE(OwnerValue(author, User{}));  // anonymous
    User unauthenticated = Named("42");
    unauthenticated.authenticated = false;
    EXPECT_FALSE(OwnerValue(likes, unauthenticated));
    // A field that cannot hold a user id is a programmer's error, named.
    EXPECT_THROW(OwnerValue(schema.field(*schema.FieldIndex("public")), Named("1")), std::invalid_argument);
}

// Over the actions: a user whose id is "01" neither lists, retrieves, changes nor deletes the rows of user 1.
TEST_F(PermissionsTest, AnIdThatLooksLikeAnotherUsersNeverReachesTheirRows) {
    ConsumerOptions o;
    o.model = "posts";
    o.permissions = {std::make_shared<IsOwner>("likes")};
    o.filter_fields = {"title"};
    auto consumer = std::make_shared<ModelConsumer>(o);
    consumer->Bind(*db_);
    ConnectionContext impostor = Context(Named("01"));
    auto send = [&](const std::string& frame) { return HandleTextFrame(*consumer, impostor, frame); };
    EXPECT_THAT(send(R"({"action": "list"})"), ::testing::HasSubstr("\"data\":[]"));
    EXPECT_THAT(send(R"({"action": "list", "filter": {"title": "t3"}})"), ::testing::HasSubstr("\"data\":[]"));
    for (const char* frame :
         {R"({"action": "retrieve", "pk": 3})", R"({"action": "patch", "pk": 3, "data": {"title": "x"}})",
          R"({"action": "update", "pk": 3, "data": {"title": "x"}})", R"({"action": "delete", "pk": 3})"}) {
        EXPECT_THAT(send(frame), ::testing::HasSubstr("\"response_status\":403")) << frame;
    }
    EXPECT_EQ(db_->Get("posts", "id", Value(3))->at(1), Value("t3"));  // untouched
    ConnectionContext owner = Context(Named("1"));
    EXPECT_THAT(HandleTextFrame(*consumer, owner, R"({"action": "retrieve", "pk": 3})"),
                ::testing::HasSubstr("\"response_status\":200"));
}

// DRF's perform_create(serializer.save(owner=request.user)): the owner field is set from the user on create and is
// read-only for the client on create, update and patch.
TEST_F(PermissionsTest, OwnerFieldIsSetFromTheUserOnCreateAndNeverFromTheClient) {
    ConsumerOptions o;
    o.model = "posts";
    o.owner_field = "likes";
    o.permissions = {std::make_shared<IsOwner>("likes")};
    auto consumer = std::make_shared<ModelConsumer>(o);
    consumer->Bind(*db_);
    ConnectionContext bob = Context(Named("2"));
    auto send = [&](ConnectionContext& who, const std::string& frame) {
        rapidjson::Document reply;
        reply.Parse(HandleTextFrame(*consumer, who, frame).c_str());
        return reply;
    };
    rapidjson::Document created = send(bob, R"({"action": "create", "data": {"title": "mine", "likes": 1}})");
    ASSERT_EQ(created["response_status"].GetInt(), 201);
    EXPECT_EQ(created["data"]["likes"].GetInt(), 2);  // the user's id, not the client's 1
    const std::int64_t id = created["data"]["id"].GetInt64();
    EXPECT_EQ(db_->Get("posts", "id", Value(id))->at(4), Value(2));
    // Update and patch ignore it (read-only), whatever else they change.
    rapidjson::Document patched = send(bob, R"({"action": "patch", "pk": )" + std::to_string(id) +
                                                R"(, "data": {"likes": 1, "title": "still mine"}})");
    EXPECT_EQ(patched["response_status"].GetInt(), 200);
    EXPECT_EQ(patched["data"]["likes"].GetInt(), 2);
    rapidjson::Document only_owner =
        send(bob, R"({"action": "patch", "pk": )" + std::to_string(id) + R"(, "data": {"likes": 1}})");
    EXPECT_EQ(only_owner["data"]["likes"].GetInt(), 2);
    rapidjson::Document updated =
        send(bob, R"({"action": "update", "pk": )" + std::to_string(id) + R"(, "data": {"title": "t", "likes": 1}})");
    EXPECT_EQ(updated["response_status"].GetInt(), 200);
    EXPECT_EQ(updated["data"]["likes"].GetInt(), 2);
    EXPECT_EQ(db_->Get("posts", "id", Value(id))->at(4), Value(2));
    // Nobody to own the row: anonymous, or an id the integer field cannot hold ("02" is not 2). 403, nothing stored.
    const std::size_t rows = db_->List("posts", Query{}).size();
    for (const User& user : {User{}, Named("02"), Named("alice")}) {
        ConnectionContext who = Context(user);
        rapidjson::Document refused = send(who, R"({"action": "create", "data": {"title": "x", "likes": 2}})");
        EXPECT_EQ(refused["response_status"].GetInt(), 403) << user.id;
        EXPECT_STREQ(refused["errors"][0].GetString(), "You do not have permission to perform this action.");
        // 403 before validation: no data at all is still 403.
        EXPECT_EQ(send(who, R"({"action": "create"})")["response_status"].GetInt(), 403) << user.id;
    }
    EXPECT_EQ(db_->List("posts", Query{}).size(), rows);
    // A text owner field holds the id's exact text.
    ConsumerOptions t;
    t.model = "posts";
    t.owner_field = "author";
    auto by_author = std::make_shared<ListCreateAPIConsumer>(t);
    by_author->Bind(*db_);
    ConnectionContext zero_one = Context(Named("01"));
    rapidjson::Document text_created;
    text_created.Parse(
        HandleTextFrame(*by_author, zero_one, R"({"action": "create", "data": {"title": "x", "author": "1"}})")
            .c_str());
    ASSERT_EQ(text_created["response_status"].GetInt(), 201);
    EXPECT_STREQ(text_created["data"]["author"].GetString(), "01");
}

// PerformCreate overrides see the owner among the validated values; a bad owner_field fails at Bind, naming it.
TEST_F(PermissionsTest, OwnerFieldReachesPerformCreateAndIsCheckedAtBind) {
    class Recording final : public CreateAPIConsumer {
    public:
        using CreateAPIConsumer::CreateAPIConsumer;
        Row PerformCreate(const ActionRequest& request, const Assignments& values) override {
            seen = values;
            return CreateAPIConsumer::PerformCreate(request, values);
        }
        Assignments seen;
    };
    ConsumerOptions o;
    o.model = "posts";
    o.owner_field = "likes";
    auto consumer = std::make_shared<Recording>(o);
    consumer->Bind(*db_);
    ConnectionContext carol = Context(Named("3"));
    HandleTextFrame(*consumer, carol, R"({"action": "create", "data": {"title": "x"}})");
    EXPECT_NE(std::find(consumer->seen.begin(), consumer->seen.end(), std::make_pair(std::string("likes"), Value(3))),
              consumer->seen.end());
    for (const char* field : {"nope", "public"}) {
        ConsumerOptions bad;
        bad.model = "posts";
        bad.owner_field = field;
        auto c = std::make_shared<CreateAPIConsumer>(bad);
        try {
            c->Bind(*db_);
            ADD_FAILURE() << field;
        } catch (const std::invalid_argument& e) {
            EXPECT_THAT(e.what(), ::testing::HasSubstr(std::string("owner_field \"") + field + "\""));
        }
    }
}

TEST_F(PermissionsTest, InMemoryListsApplyLimitAndOffsetToTheVisibleRows) {
    auto consumer = Consumer({std::make_shared<EvenIds>()});
    ConnectionContext context = Context(Named("1"));
    ActionRequest request(context, "list", message_);
    auto page = [&](std::optional<std::int64_t> limit, std::int64_t offset, bool count) {
        Query q;
        q.limit = limit;
        q.offset = offset;
        GenericConsumer::ObjectPage p = consumer->ListObjects(request, q, count);
        std::vector<std::int64_t> ids;
        for (const Row& r : p.rows) ids.push_back(r.at(0).AsInteger());
        return std::make_pair(ids, p.count);
    };
    EXPECT_EQ(page(std::nullopt, 0, true), std::make_pair(std::vector<std::int64_t>{2, 4, 6, 8}, std::int64_t{4}));
    EXPECT_EQ(page(2, 1, true), std::make_pair(std::vector<std::int64_t>{4, 6}, std::int64_t{4}));
    EXPECT_EQ(page(2, 3, false), std::make_pair(std::vector<std::int64_t>{8}, std::int64_t{-1}));
    EXPECT_EQ(page(5, 10, true), std::make_pair(std::vector<std::int64_t>{}, std::int64_t{4}));
    // With a SQL form the same page comes from the store.
    auto sql = Consumer({std::make_shared<IsOwner>("likes")});
    ConnectionContext liker = Context(Named("1"));
    ActionRequest liked(liker, "list", message_);
    Query q;
    q.limit = 2;
    q.offset = 1;
    GenericConsumer::ObjectPage p = sql->ListObjects(liked, q, true);
    EXPECT_EQ(p.count, 3);  // ids 3, 6, 9 have likes 1
    ASSERT_EQ(p.rows.size(), 2u);
    EXPECT_EQ(p.rows[0].at(0).AsInteger(), 6);
}

TEST_F(PermissionsTest, OpenRefusesWhenAuthenticationNoLongerPassesAndIgnoresFrames) {
    EndpointOptions options;
    AuthOptions auth;
    auth.authenticator = std::make_shared<StaticTokenAuthenticator>(std::map<std::string, User>{{"tok", Named("1")}});
    auth.anonymous = AnonymousPolicy::kRefuse;
    options.auth = auth;
    ConsumerEndpoint endpoint(Consumer({std::make_shared<IsAuthenticated>()}), options);
    HandshakeRequest anonymous{"/ws/posts/", "", {}, "127.0.0.1:1"};
    EXPECT_EQ(endpoint.Admit(anonymous), 401);
    // Admit accepted a token that Open no longer does (e.g. it expired in between): closed with 1008, frames ignored.
    auto session = endpoint.Open(anonymous, outbox_);
    EXPECT_EQ(outbox_->close_code, 1008);
    session->OnText(R"({"action": "list"})");
    EXPECT_TRUE(outbox_->frames.empty());
    session->OnClose();
    // With the token, the user reaches the permissions.
    HandshakeRequest with_token{"/ws/posts/", "token=tok", {}, "127.0.0.1:2"};
    EXPECT_EQ(endpoint.Admit(with_token), 101);
    auto ok_outbox = std::make_shared<NullOutbox>();
    auto ok = endpoint.Open(with_token, ok_outbox);
    ok->OnText(R"({"action": "list"})");
    ASSERT_EQ(ok_outbox->frames.size(), 1u);
    EXPECT_THAT(ok_outbox->frames[0], ::testing::HasSubstr("\"response_status\":200"));
    EXPECT_EQ(ok_outbox->close_code, 0);
    ok->OnClose();
    // Without auth options (a bare endpoint), everyone is anonymous.
    ConsumerEndpoint bare(Consumer({std::make_shared<IsAuthenticated>()}));
    EXPECT_EQ(bare.Admit(with_token), 101);
    EXPECT_EQ(ConsumerEndpoint(Consumer({std::make_shared<NoConnect>()})).Admit(with_token), 403);
    // A user authenticated elsewhere (a multiplexer authenticates once for all its streams).
    EXPECT_EQ(bare.AdmitUser(anonymous, Named("7")), 101);
    auto as_user_outbox = std::make_shared<NullOutbox>();
    auto as_user = bare.OpenUser(anonymous, as_user_outbox, Named("7"));
    as_user->OnText(R"({"action": "list"})");
    ASSERT_EQ(as_user_outbox->frames.size(), 1u);
    EXPECT_THAT(as_user_outbox->frames[0], ::testing::HasSubstr("\"response_status\":200"));
    as_user->OnClose();
}

// Records the handshake headers its connection keeps.
class RecordsHeaders final : public Permission {
public:
    bool HasPermission(const ActionRequest& request, const GenericConsumer&) const override {
        seen = request.connection().request().headers;
        return true;
    }
    mutable std::vector<std::pair<std::string, std::string>> seen;
};

TEST_F(PermissionsTest, ASessionKeepsTheHandshakeHeadersButThoseOfTheWebsocketHandshakeItself) {
    auto records = std::make_shared<RecordsHeaders>();
    ConsumerEndpoint endpoint(Consumer({records}));
    HandshakeRequest request{"/ws/posts/", "x=1", {}, "127.0.0.1:1"};
    request.headers = {{"host", "example.com"},
                       {"connection", "Upgrade"},
                       {"upgrade", "websocket"},
                       {"sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="},
                       {"sec-websocket-version", "13"},
                       {"sec-websocket-extensions", "permessage-deflate"},
                       {"origin", "https://app.example.com"},
                       {"cookie", "sessionid=abc"},
                       {"sec-websocket-protocol", "chat"},
                       {"user-agent", "test"}};
    for (bool as_user : {false, true}) {
        auto outbox = std::make_shared<NullOutbox>();
        auto session = as_user ? endpoint.OpenUser(request, outbox, Named("7")) : endpoint.Open(request, outbox);
        session->OnText(R"({"action": "list"})");
        ASSERT_EQ(outbox->frames.size(), 1u);
        const std::vector<std::pair<std::string, std::string>> expected = {{"host", "example.com"},
                                                                           {"origin", "https://app.example.com"},
                                                                           {"cookie", "sessionid=abc"},
                                                                           {"sec-websocket-protocol", "chat"},
                                                                           {"user-agent", "test"}};
        EXPECT_EQ(records->seen, expected) << (as_user ? "OpenUser" : "Open");
        session->OnClose();
    }
}

// Records what a push check shows a permission, and allows or refuses by the user's name.
class RecordsPushes final : public Permission {
public:
    bool HasPermission(const ActionRequest& request, const GenericConsumer&) const override {
        seen_action = request.action();
        const rapidjson::Value* pk = request.Arg("pk");
        seen_pk = pk == nullptr   ? "absent"
                  : pk->IsInt64() ? std::to_string(pk->GetInt64())
                                  : std::string(pk->GetString(), pk->GetStringLength());
        const rapidjson::Value* action = request.Arg("action");
        seen_action_argument = action != nullptr && action->IsString() ? action->GetString() : "absent";
        seen_request_id = request.request_id() != nullptr;
        if (request.connection().user().name == "thrower") throw std::runtime_error("push permission threw");
        return request.connection().user().name != "refused";
    }
    mutable std::string seen_action, seen_pk, seen_action_argument;
    mutable bool seen_request_id = true;
};

TEST_F(PermissionsTest, APushIsCheckedAsItsSubscribeActionWithThePkAndNoRequestId) {
    auto records = std::make_shared<RecordsPushes>();
    auto consumer = Consumer({records});
    ConnectionContext ann = Context(Named("ann"));
    ConnectionContext refused = Context(Named("refused"));
    ConnectionContext thrower = Context(Named("thrower"));

    const PushCheck instance("subscribe_instance", Value(7));
    EXPECT_EQ(instance.action(), "subscribe_instance");
    EXPECT_TRUE(instance.Allowed(*consumer, ann));
    EXPECT_EQ(records->seen_action, "subscribe_instance");
    EXPECT_EQ(records->seen_action_argument, "subscribe_instance");
    EXPECT_EQ(records->seen_pk, "7");
    EXPECT_FALSE(records->seen_request_id);
    EXPECT_FALSE(instance.Allowed(*consumer, refused));
    EXPECT_THROW(instance.Allowed(*consumer, thrower), std::runtime_error);

    const std::string key("key\0with\0nuls", 13);
    const PushCheck list("subscribe_list", Value(key));
    EXPECT_TRUE(list.Allowed(*consumer, ann));
    EXPECT_EQ(records->seen_action, "subscribe_list");
    EXPECT_EQ(records->seen_action_argument, "subscribe_list");
    EXPECT_EQ(records->seen_pk, key);  // the whole text key, NULs included

    const PushCheck no_key("subscribe_instance", Value());
    EXPECT_TRUE(no_key.Allowed(*consumer, ann));
    EXPECT_EQ(records->seen_pk, "absent");
}

TEST_F(PermissionsTest, APushCanSeeOnlyRowsInTheQuerysetThatObjectPermissionsAllow) {
    ConsumerOptions o;
    o.model = "posts";
    o.queryset = {Filter{"likes", FilterOp::kExact, Value(2), {}}};
    o.permissions = {std::make_shared<EvenIds>()};
    auto consumer = std::make_shared<GenericConsumer>(o);
    consumer->Bind(*db_);
    ConnectionContext ann = Context(Named("ann"));
    const PushCheck check("subscribe_list", Value(1));
    // Rows 1..9: likes is 1 for multiples of 3, else 2; EvenIds allows even ids.
    std::vector<std::int64_t> visible;
    for (std::int64_t id = 1; id <= 9; ++id) {
        std::optional<Row> row = db_->Get("posts", "id", Value(id));
        ASSERT_TRUE(row);
        if (check.CanSee(*consumer, ann, *row)) visible.push_back(id);
    }
    EXPECT_EQ(visible, (std::vector<std::int64_t>{2, 4, 8}));
}

}  // namespace
}  // namespace syncline
