// The DCRF request/reply protocol (docs/protocol.md §1-§5) at the consumer level: exact reply frames for every action,
// status and error case. The same cases run over real sockets in tests/transport.

#include <syncline/core/consumer/consumer.hpp>
#include <syncline/test_support/same_json.hpp>
#include <syncline/core/protocol/consumer_endpoint.hpp>
#include <syncline/core/consumer/permissions.hpp>
#include <syncline/storage/database.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <limits>
#include <mutex>

#include "../storage/test_db.hpp"
#include "recording_outbox.hpp"

namespace syncline {
namespace {

using ::testing::HasSubstr;

// Collects what a session sends.
using FakeOutbox = testing::RecordingOutbox;

std::string JsonOf(const rapidjson::Value& v) {
    rapidjson::StringBuffer b;
    rapidjson::Writer<rapidjson::StringBuffer> w(b);
    v.Accept(w);
    return b.GetString();
}

// Parses a reply and compares it with the expected JSON text, ignoring key order.
using test_support::SameJson;

class ConsumerTest : public ::testing::Test {
protected:
    void SetUp() override {
        storage::DatabaseOptions options;
        options.path = dir_.File("blog.db");
        db_ = storage::Database::Open(options, {testing::PostsSchema(), testing::TagsSchema(), KindsSchema()});
        db_->Insert("posts", {{"title", "First"}, {"author", "alice"}});
        db_->Insert("posts", {{"title", "Second"}, {"author", "bob"}});
        ConsumerOptions o;
        o.model = "posts";
        o.serializer.fields = {"id", "title", "body", "author"};
        o.serializer.read_only = {"id"};
        consumer_ = Make<ModelConsumer>(std::move(o));
    }
    static Schema KindsSchema() {
        return Schema::FromJson("kinds", R"({"fields": {
            "n": {"type": "integer", "max_value": 10, "min_value": -10},
            "r": {"type": "real", "null": true},
            "b": {"type": "boolean", "default": false},
            "t": {"type": "text", "max_length": 5},
            "d": {"type": "datetime", "null": true},
            "j": {"type": "json", "null": true},
            "c": {"type": "text", "choices": ["x", "y"], "default": "x"}}})");
    }
    template <class C>
    std::shared_ptr<GenericConsumer> Make(ConsumerOptions o) {
        auto c = std::make_shared<C>(std::move(o));
        c->Bind(*db_);
        return c;
    }
    std::string Send(const std::string& frame, GenericConsumer* consumer = nullptr) {
        return HandleTextFrame(consumer ? *consumer : *consumer_, context_, frame);
    }
    testing::TempDir dir_;
    std::unique_ptr<storage::Database> db_;
    std::shared_ptr<GenericConsumer> consumer_;
    std::shared_ptr<FakeOutbox> outbox_ = std::make_shared<FakeOutbox>();
    ConnectionContext context_{HandshakeRequest{"/ws/posts/", "", {}, "127.0.0.1:1"}, outbox_};
};

TEST_F(ConsumerTest, CrudActionsAndStatuses) {
    EXPECT_TRUE(SameJson(Send(R"({"action": "list", "request_id": 1})"),
                         R"({"errors": [], "data": [{"id": 1, "title": "First", "body": "", "author": "alice"},
                             {"id": 2, "title": "Second", "body": "", "author": "bob"}],
                             "action": "list", "response_status": 200, "request_id": 1})"));
    EXPECT_TRUE(SameJson(Send(R"({"action": "retrieve", "request_id": 42, "pk": 1})"),
                         R"({"errors": [], "data": {"id": 1, "title": "First", "body": "", "author": "alice"},
                             "action": "retrieve", "response_status": 200, "request_id": 42})"));
    EXPECT_TRUE(SameJson(Send(R"({"action": "create", "request_id": "c", "data": {"title": " Third ", "id": 99, "bogus": 1}})"),
                         R"({"errors": [], "data": {"id": 3, "title": "Third", "body": "", "author": ""},
                             "action": "create", "response_status": 201, "request_id": "c"})"));
    EXPECT_TRUE(SameJson(Send(R"({"action": "update", "pk": 3, "data": {"title": "Third v2"}})"),
                         R"({"errors": [], "data": {"id": 3, "title": "Third v2", "body": "", "author": ""},
                             "action": "update", "response_status": 200, "request_id": null})"));
    EXPECT_TRUE(SameJson(Send(R"({"action": "patch", "pk": "3", "data": {"author": "carol"}})"),
                         R"({"errors": [], "data": {"id": 3, "title": "Third v2", "body": "", "author": "carol"},
                             "action": "patch", "response_status": 200, "request_id": null})"));
    // A full update keeps omitted optional fields (DRF's PUT semantics), and requires the required ones.
    EXPECT_TRUE(SameJson(Send(R"({"action": "update", "pk": 3, "data": {"title": "T3"}})"),
                         R"({"errors": [], "data": {"id": 3, "title": "T3", "body": "", "author": "carol"},
                             "action": "update", "response_status": 200, "request_id": null})"));
    EXPECT_TRUE(SameJson(Send(R"({"action": "update", "pk": 3, "data": {"author": "x"}})"),
                         R"({"errors": [{"title": ["This field is required."]}], "data": null,
                             "action": "update", "response_status": 400, "request_id": null})"));
    EXPECT_TRUE(SameJson(Send(R"({"action": "delete", "pk": 3, "request_id": 7})"),
                         R"({"errors": [], "data": null, "action": "delete", "response_status": 204, "request_id": 7})"));
    EXPECT_TRUE(SameJson(Send(R"({"action": "delete", "pk": 3, "request_id": 8})"),
                         R"({"errors": ["Not found"], "data": null, "action": "delete", "response_status": 404,
                             "request_id": 8})"));
}

TEST_F(ConsumerTest, MalformedFramesGetA400AndNothingBreaks) {
    for (const char* frame : {"not json", "{\"action\": ", "[1, 2]", "42", "\"str\"", "null"}) {
        std::string reply = Send(frame);
        rapidjson::Document d;
        d.Parse(reply.c_str());
        ASSERT_TRUE(d.IsObject()) << frame;
        EXPECT_EQ(d["response_status"].GetInt(), 400) << frame;
        EXPECT_THAT(std::string(d["errors"][0].GetString()), HasSubstr("Malformed message: ")) << frame;
        EXPECT_TRUE(d["action"].IsNull());
        EXPECT_TRUE(d["request_id"].IsNull());
        EXPECT_TRUE(d["data"].IsNull());
    }
    EXPECT_TRUE(SameJson(Send(""), R"({"errors": ["Malformed message: empty frame"], "data": null, "action": null,
                                       "response_status": 400, "request_id": null})"));
    EXPECT_THAT(Send("[1]"), HasSubstr("expected a JSON object, got list"));
    EXPECT_THAT(Send("{\"action\": \"list\", \"x\": \"\xff\xfe\"}"), HasSubstr("Malformed message: Invalid encoding"));
    ConsumerEndpoint endpoint(consumer_);
    auto session = endpoint.Open(context_.request(), outbox_);
    session->OnBinary("\x01\x02");
    ASSERT_EQ(outbox_->frames.size(), 1u);
    EXPECT_TRUE(SameJson(outbox_->frames[0],
                         R"({"errors": ["Malformed message: binary frames are not supported"], "data": null,
                             "action": null, "response_status": 400, "request_id": null})"));
    EXPECT_EQ(outbox_->close_code, 0);
}

TEST_F(ConsumerTest, ActionErrors) {
    EXPECT_TRUE(SameJson(Send(R"({"request_id": 5})"),
                         R"({"errors": ["Unable to find action in message body."], "data": null, "action": null,
                             "response_status": 405, "request_id": 5})"));
    EXPECT_TRUE(SameJson(Send(R"({"action": "explode", "request_id": 5})"),
                         R"({"errors": ["Method \"explode\" not allowed."], "data": null, "action": "explode",
                             "response_status": 405, "request_id": 5})"));
    EXPECT_TRUE(SameJson(Send(R"({"action": 12})"),
                         R"({"errors": ["Method \"12\" not allowed."], "data": null, "action": 12,
                             "response_status": 405, "request_id": null})"));
    EXPECT_TRUE(SameJson(Send(R"({"action": ["list"]})"),
                         R"({"errors": ["Method \"[\"list\"]\" not allowed."], "data": null, "action": ["list"],
                             "response_status": 405, "request_id": null})"));
}

TEST_F(ConsumerTest, RequestIdIsEchoedVerbatim) {
    for (const char* id : {"\"abc\"", "17", "1.5", "{\"nested\": [1, \"x\"]}", "[1,2]", "true", "null", "\"ü🚀\""}) {
        std::string reply = Send(std::string(R"({"action": "retrieve", "pk": 1, "request_id": )") + id + "}");
        rapidjson::Document d, expected;
        d.Parse(reply.c_str());
        expected.Parse(id);
        EXPECT_TRUE(d["request_id"] == expected) << id << " -> " << reply;
    }
}

TEST_F(ConsumerTest, LookupErrors) {
    EXPECT_TRUE(SameJson(Send(R"({"action": "retrieve"})"),
                         R"({"errors": ["Missing lookup argument \"pk\"."], "data": null, "action": "retrieve",
                             "response_status": 400, "request_id": null})"));
    for (const char* pk : {"\"abc\"", "{}", "[]", "true", "1.5", "null", "99", "\"\""}) {
        EXPECT_TRUE(SameJson(Send(std::string(R"({"action": "retrieve", "pk": )") + pk + "}"),
                             R"({"errors": ["Not found"], "data": null, "action": "retrieve", "response_status": 404,
                                 "request_id": null})"))
            << pk;
    }
    EXPECT_THAT(Send(R"({"action": "retrieve", "pk": "2"})"), HasSubstr("\"Second\""));
    EXPECT_THAT(Send(R"({"action": "retrieve", "pk": 2.0})"), HasSubstr("\"Second\""));
    EXPECT_THAT(Send(R"({"action": "patch", "data": {}})"), HasSubstr("Missing lookup argument"));
    EXPECT_THAT(Send(R"({"action": "delete"})"), HasSubstr("Missing lookup argument"));
}

// Lookup values out of range or with junk are of the wrong type: 404, never 500 (issue 9, item 13: std::stoll threw
// out_of_range on "9999999999999999999").
TEST_F(ConsumerTest, LookupValuesOutOfRangeOrWithJunkAre404) {
    for (const char* pk : {"\"9999999999999999999\"", "\"9223372036854775808\"", "\"-9223372036854775809\"",
                           "\"99999999999999999999999999999999\"", "9999999999999999999", "1e300", "\"1e3\"", "\"12a\"",
                           "\" 1\"", "\"1 \"", "\"+1\"", "\"-\"", "\"0x1\"", "\"1.0\"", "\"\u0661\"", "\"1\\u0000\""}) {
        for (const char* action : {"retrieve", "patch", "delete"}) {
            EXPECT_TRUE(SameJson(Send(std::string(R"({"action": ")") + action + R"(", "data": {}, "pk": )" + pk + "}"),
                                 std::string(R"({"errors": ["Not found"], "data": null, "action": ")") + action +
                                     R"(", "response_status": 404, "request_id": null})"))
                << action << " " << pk;
        }
    }
    EXPECT_THAT(Send(R"({"action": "retrieve", "pk": "0002"})"), HasSubstr("\"Second\""));
    EXPECT_THAT(Send(R"({"action": "retrieve", "pk": "-0"})"), HasSubstr(R"("response_status":404)"));
    FieldSpec integer;
    integer.type = FieldType::kInteger;
    rapidjson::Document doc;
    doc.Parse(R"(["9223372036854775807", "-9223372036854775808", "9223372036854775808", 9223372036854775807])");
    EXPECT_EQ(LookupValue(integer, doc[0]), Value(std::numeric_limits<std::int64_t>::max()));
    EXPECT_EQ(LookupValue(integer, doc[1]), Value(std::numeric_limits<std::int64_t>::min()));
    EXPECT_EQ(LookupValue(integer, doc[2]), std::nullopt);
    EXPECT_EQ(LookupValue(integer, doc[3]), Value(std::numeric_limits<std::int64_t>::max()));
}

// The same for the other integer inputs of a request: data values (400 with DRF's message) and limit/offset.
TEST_F(ConsumerTest, IntegersOutOfRangeInDataAnswer400) {
    auto kinds = [&] {
        ConsumerOptions o;
        o.model = "kinds";
        return Make<ModelConsumer>(std::move(o));
    }();
    for (const char* n : {"\"9999999999999999999\"", "9999999999999999999", "1e300", "\"-99999999999999999999\""}) {
        EXPECT_TRUE(
            SameJson(Send(std::string(R"({"action": "create", "data": {"t": "x", "n": )") + n + "}}", kinds.get()),
                     R"({"errors": [{"n": ["A valid integer is required."]}], "data": null,
                                 "action": "create", "response_status": 400, "request_id": null})"))
            << n;
    }
}

TEST_F(ConsumerTest, DataErrors) {
    for (const char* action : {"create", "update", "patch"}) {
        std::string base = std::string(R"({"action": ")") + action + R"(", "pk": 1)";
        EXPECT_TRUE(SameJson(Send(base + "}"), std::string(R"({"errors": [{"non_field_errors": ["No data provided"]}],
            "data": null, "action": ")") + action + R"(", "response_status": 400, "request_id": null})"))
            << action;
        EXPECT_THAT(Send(base + R"(, "data": null})"), HasSubstr("No data provided"));
        for (auto [json, type] : {std::pair{"\"s\"", "str"}, {"3", "int"}, {"2.5", "float"}, {"[1]", "list"},
                                  {"true", "bool"}}) {
            EXPECT_THAT(Send(base + R"(, "data": )" + json + "}"),
                        HasSubstr(std::string("Invalid data. Expected a dictionary, but got ") + type + "."))
                << action << " " << json;
        }
    }
}

TEST_F(ConsumerTest, ValidationReportsEveryField) {
    EXPECT_TRUE(SameJson(Send(R"({"action": "create", "data": {"author": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "body": 5}})"),
                         R"({"errors": [{"title": ["This field is required."],
                                         "author": ["Ensure this field has no more than 50 characters."]}],
                             "data": null, "action": "create", "response_status": 400, "request_id": null})"));
    EXPECT_EQ(db_->Count("posts", {}), 2);
}

TEST_F(ConsumerTest, DrfMessagesPerFieldType) {
    ConsumerOptions o;
    o.model = "kinds";
    auto kinds = Make<ModelConsumer>(std::move(o));
    auto errors = [&](const std::string& data) {
        std::string reply = Send(R"({"action": "create", "data": )" + data + "}", kinds.get());
        rapidjson::Document d;
        d.Parse(reply.c_str());
        return JsonOf(d["errors"]);
    };
    EXPECT_EQ(errors(R"({"n": "x", "r": "y", "b": "maybe", "t": true, "d": "yesterday", "c": "z"})"),
              R"([{"n":["A valid integer is required."],"r":["A valid number is required."],)"
              R"("b":["Must be a valid boolean."],"t":["Not a valid string."],)"
              R"("d":["Datetime has wrong format. Use one of these formats instead: )"
              R"(YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."],"c":["\"z\" is not a valid choice."]}])");
    EXPECT_EQ(errors(R"({"n": 11, "t": "toolong"})"),
              R"([{"n":["Ensure this value is less than or equal to 10."],)"
              R"("t":["Ensure this field has no more than 5 characters."]}])");
    EXPECT_EQ(errors(R"({"n": -11, "t": ""})"),
              R"([{"n":["Ensure this value is greater than or equal to -10."],"t":["This field may not be blank."]}])");
    EXPECT_EQ(errors(R"({"n": null, "t": null})"),
              R"([{"n":["This field may not be null."],"t":["This field may not be null."]}])");
    EXPECT_EQ(errors(R"({"n": 1.5, "t": {}})"),
              R"([{"n":["A valid integer is required."],"t":["Not a valid string."]}])");
    // DRF's coercions: "7" and 7.0 are integers, "yes"/"on"/1 booleans, numbers are text, any JSON is json.
    std::string ok = Send(R"({"action": "create", "data": {"n": "7", "r": "2.5", "b": "on", "t": 123,
                               "d": "2024-05-01T12:00:00Z", "j": {"a": [1, null]}, "c": "y"}})",
                          kinds.get());
    EXPECT_TRUE(SameJson(ok, R"({"errors": [], "data": {"id": 1, "n": 7, "r": 2.5, "b": true, "t": "123",
                                 "d": "2024-05-01T12:00:00Z", "j": {"a": [1, null]}, "c": "y"},
                                 "action": "create", "response_status": 201, "request_id": null})"));
    EXPECT_THAT(Send(R"({"action": "patch", "pk": 1, "data": {"n": 7.0, "b": 0}})", kinds.get()),
                HasSubstr(R"("n":7,"r":2.5,"b":false)"));
}

TEST_F(ConsumerTest, UnicodeRoundTrip) {
    std::string title = "Grüße 世界 🚀 \\\"q\\\" \\u00e9";
    std::string reply = Send(R"({"action": "create", "data": {"title": ")" + title + R"("}})");
    rapidjson::Document d;
    d.Parse(reply.c_str());
    ASSERT_EQ(d["response_status"].GetInt(), 201) << reply;
    EXPECT_EQ(std::string(d["data"]["title"].GetString()), "Grüße 世界 🚀 \"q\" é");
    EXPECT_THAT(reply, HasSubstr("Grüße 世界 🚀"));  // non-ASCII goes out as UTF-8, not \u escapes
    std::string again = Send(R"({"action": "retrieve", "pk": )" + std::to_string(d["data"]["id"].GetInt()) + "}");
    EXPECT_THAT(again, HasSubstr("Grüße 世界 🚀 \\\"q\\\" é"));
}

TEST_F(ConsumerTest, UniqueViolationIsAFieldError) {
    ConsumerOptions o;
    o.model = "tags";
    auto tags = Make<ModelConsumer>(std::move(o));
    EXPECT_THAT(Send(R"({"action": "create", "data": {"slug": "a", "label": "A"}})", tags.get()),
                HasSubstr("\"response_status\":201"));
    EXPECT_TRUE(SameJson(Send(R"({"action": "create", "data": {"slug": "b", "label": "A"}})", tags.get()),
                         R"({"errors": [{"label": ["tags with this label already exists."]}], "data": null,
                             "action": "create", "response_status": 400, "request_id": null})"));
    EXPECT_THAT(Send(R"({"action": "retrieve", "pk": "a"})", tags.get()), HasSubstr("\"label\":\"A\""));
}

TEST_F(ConsumerTest, LookupFieldQuerysetAndWriteOnly) {
    ConsumerOptions o;
    o.model = "posts";
    o.lookup_field = "title";
    o.lookup_url_kwarg = "name";
    o.queryset = {Filter{"author", FilterOp::kExact, "alice", {}}};
    o.serializer.fields = {"id", "title", "author", "body"};
    o.serializer.write_only = {"body"};
    auto c = Make<ModelConsumer>(std::move(o));
    EXPECT_TRUE(SameJson(Send(R"({"action": "retrieve", "name": "First"})", c.get()),
                         R"({"errors": [], "data": {"id": 1, "title": "First", "author": "alice"},
                             "action": "retrieve", "response_status": 200, "request_id": null})"));
    EXPECT_THAT(Send(R"({"action": "retrieve", "name": "Second"})", c.get()), HasSubstr("Not found"));  // bob's
    EXPECT_THAT(Send(R"({"action": "retrieve", "pk": 1})", c.get()), HasSubstr("Missing lookup argument \\\"name\\\""));
    EXPECT_THAT(Send(R"({"action": "list"})", c.get()), ::testing::Not(::testing::HasSubstr("Second")));
}

// DRF serializers may list "pk": the primary key under that name, whatever its column is called (issue 11; what
// dcrf-client's default pkField expects). Read-only like the auto primary key, and the default lookup still finds
// rows by it.
TEST_F(ConsumerTest, PkAsASerializerFieldIsThePrimaryKeyReadOnly) {
    ConsumerOptions o;
    o.model = "posts";
    o.serializer.fields = {"pk", "title"};
    auto c = Make<ModelConsumer>(std::move(o));
    EXPECT_TRUE(SameJson(Send(R"({"action": "retrieve", "request_id": 1, "pk": 2})", c.get()),
                         R"({"errors": [], "data": {"pk": 2, "title": "Second"}, "action": "retrieve",
                             "response_status": 200, "request_id": 1})"));
    EXPECT_TRUE(SameJson(Send(R"({"action": "list", "request_id": 2})", c.get()),
                         R"({"errors": [], "data": [{"pk": 1, "title": "First"}, {"pk": 2, "title": "Second"}],
                             "action": "list", "response_status": 200, "request_id": 2})"));
    // A "pk" (or "id") in input is ignored, as every read-only key.
    EXPECT_TRUE(SameJson(
        Send(R"({"action": "create", "request_id": 3, "data": {"title": "Third", "pk": 99, "id": 98}})", c.get()),
        R"({"errors": [], "data": {"pk": 3, "title": "Third"}, "action": "create",
                             "response_status": 201, "request_id": 3})"));
    EXPECT_TRUE(
        SameJson(Send(R"({"action": "patch", "request_id": 4, "pk": 3, "data": {"title": "T3", "pk": 7}})", c.get()),
                 R"({"errors": [], "data": {"pk": 3, "title": "T3"}, "action": "patch",
                             "response_status": 200, "request_id": 4})"));
    EXPECT_TRUE(SameJson(Send(R"({"action": "update", "request_id": 5, "pk": 3, "data": {"title": "T4"}})", c.get()),
                         R"({"errors": [], "data": {"pk": 3, "title": "T4"}, "action": "update",
                             "response_status": 200, "request_id": 5})"));
    EXPECT_TRUE(db_->Get("posts", "id", Value(3)).has_value());
    EXPECT_FALSE(db_->Get("posts", "id", Value(7)).has_value());
    EXPECT_TRUE(SameJson(Send(R"({"action": "delete", "request_id": 6, "pk": 3})", c.get()),
                         R"({"errors": [], "data": null, "action": "delete", "response_status": 204,
                             "request_id": 6})"));

    // Next to the column itself, in the order listed; "pk" may also be listed read-only.
    ConsumerOptions both;
    both.model = "posts";
    both.serializer.fields = {"id", "pk", "title"};
    both.serializer.read_only = {"pk"};
    auto b = Make<ModelConsumer>(std::move(both));
    EXPECT_TRUE(SameJson(Send(R"({"action": "retrieve", "request_id": 7, "pk": 1})", b.get()),
                         R"({"errors": [], "data": {"id": 1, "pk": 1, "title": "First"}, "action": "retrieve",
                             "response_status": 200, "request_id": 7})"));

    // Never input: it cannot be write-only nor validated.
    ConsumerOptions write_only;
    write_only.model = "posts";
    write_only.serializer.fields = {"pk", "title"};
    write_only.serializer.write_only = {"pk"};
    EXPECT_THROW(Make<ModelConsumer>(std::move(write_only)), std::invalid_argument);
}

// A text primary key under another name: "pk" shows it, and a create sets it through its own column.
TEST_F(ConsumerTest, PkAliasOfATextPrimaryKey) {
    ConsumerOptions o;
    o.model = "tags";
    o.serializer.fields = {"pk", "slug", "label"};
    auto c = Make<ModelConsumer>(std::move(o));
    EXPECT_TRUE(SameJson(Send(R"({"action": "create", "request_id": 1, "data": {"slug": "news", "label": "News",
                                  "pk": "x"}})",
                              c.get()),
                         R"({"errors": [], "data": {"pk": "news", "slug": "news", "label": "News"}, "action": "create",
                             "response_status": 201, "request_id": 1})"));
    EXPECT_TRUE(
        SameJson(Send(R"({"action": "retrieve", "request_id": 2, "pk": "news"})", c.get()),
                 R"({"errors": [], "data": {"pk": "news", "slug": "news", "label": "News"}, "action": "retrieve",
                             "response_status": 200, "request_id": 2})"));
}

class ExplodingConsumer : public ListCreateAPIConsumer {
public:
    using ListCreateAPIConsumer::ListCreateAPIConsumer;
    Row PerformCreate(const ActionRequest&, const Assignments&) override { throw std::runtime_error("disk on fire"); }
};

TEST_F(ConsumerTest, UnexpectedExceptionIs500AndTheSessionGoesOn) {
    ConsumerOptions o;
    o.model = "posts";
    auto c = Make<ExplodingConsumer>(std::move(o));
    EXPECT_TRUE(SameJson(Send(R"({"action": "create", "data": {"title": "x"}, "request_id": 1})", c.get()),
                         R"({"errors": ["Internal server error"], "data": null, "action": "create",
                             "response_status": 500, "request_id": 1})"));
    EXPECT_THAT(Send(R"({"action": "list"})", c.get()), HasSubstr("\"response_status\":200"));
    EXPECT_THAT(Send(R"({"action": "retrieve", "pk": 1})", c.get()), HasSubstr("not allowed"));  // not installed
}

class DenyAll final : public Permission {
public:
    bool HasPermission(const ActionRequest&, const GenericConsumer&) const override { return false; }
};

TEST_F(ConsumerTest, PermissionIsCheckedBeforeTheActionLookup) {
    ConsumerOptions o;
    o.model = "posts";
    o.permissions = {std::make_shared<DenyAll>()};
    auto c = Make<ModelConsumer>(std::move(o));
    const char* denied = R"({"errors": ["You do not have permission to perform this action."], "data": null,
                             "action": "no_such_action", "response_status": 403, "request_id": null})";
    EXPECT_TRUE(SameJson(Send(R"({"action": "no_such_action"})", c.get()), denied));
    EXPECT_THAT(Send(R"({"action": 5})", c.get()), HasSubstr("\"response_status\":403"));
    EXPECT_THAT(Send(R"({"action": "list"})", c.get()), HasSubstr("\"response_status\":403"));
}

TEST_F(ConsumerTest, ThrottlingAnswers429ThenCloses1008) {
    EndpointOptions options;
    options.rate_limit.per_second = 0.001;  // one token, refilled after ~17 minutes
    options.rate_limit.burst = 1;
    options.rate_limit.close_after = 3;
    ConsumerEndpoint endpoint(consumer_, options);
    auto session = endpoint.Open(context_.request(), outbox_);
    for (int i = 0; i < 6; ++i) session->OnText(R"({"action": "list"})");
    ASSERT_EQ(outbox_->frames.size(), 4u);  // one served, three throttled, then closed
    EXPECT_THAT(outbox_->frames[0], HasSubstr("\"response_status\":200"));
    for (int i = 1; i < 4; ++i) {
        EXPECT_THAT(outbox_->frames[i], HasSubstr("\"response_status\":429"));
        EXPECT_THAT(outbox_->frames[i], HasSubstr("Request was throttled. Expected available in 1000 seconds."));
    }
    EXPECT_EQ(outbox_->close_code, 1008);
}

}  // namespace
}  // namespace syncline

namespace syncline {
namespace {

class ListFeaturesTest : public ConsumerTest {
protected:
    void SetUp() override {
        ConsumerTest::SetUp();
        for (const char* author : {"carol", "alice", "bob"}) db_->Insert("posts", {{"title", "More"}, {"author", author}});
        ConsumerOptions o;
        o.model = "posts";
        o.serializer.fields = {"id", "author"};
        o.filter_fields = {"author", "id"};
        o.ordering_fields = {"id", "author"};
        o.page_size = 2;
        o.max_page_size = 3;
        list_ = Make<ModelConsumer>(o);
        o.mixins = {PaginatedModelListMixin()};
        paged_ = Make<GenericConsumer>(o);
    }
    std::shared_ptr<GenericConsumer> list_, paged_;
};

TEST_F(ListFeaturesTest, FilterAndOrderingOnDeclaredFieldsOnly) {
    EXPECT_THAT(Send(R"({"action": "list", "filter": {"author": "alice"}, "ordering": "-id"})", list_.get()),
                HasSubstr(R"("data":[{"id":4,"author":"alice"},{"id":1,"author":"alice"}])"));
    EXPECT_THAT(Send(R"({"action": "list", "filter": {"id__gte": 4}, "ordering": ["author", "-id"]})", list_.get()),
                HasSubstr(R"("data":[{"id":4,"author":"alice"},{"id":5,"author":"bob"}])"));
    EXPECT_TRUE(SameJson(Send(R"({"action": "list", "filter": {"title": "x"}})", list_.get()),
                         R"({"errors": ["Filtering on \"title\" is not allowed."], "data": null, "action": "list",
                             "response_status": 400, "request_id": null})"));
    EXPECT_THAT(Send(R"({"action": "list", "ordering": "body"})", list_.get()),
                HasSubstr(R"(Ordering by \"body\" is not allowed.)"));
    EXPECT_THAT(Send(R"({"action": "list", "ordering": 5})", list_.get()), HasSubstr("\"response_status\":400"));
    EXPECT_THAT(Send(R"({"action": "list", "filter": "alice"})", list_.get()), HasSubstr("\"response_status\":400"));
}

TEST_F(ListFeaturesTest, LimitOffsetPaginationAndFallbacks) {
    EXPECT_TRUE(SameJson(Send(R"({"action": "list", "limit": 2, "offset": 1})", paged_.get()),
                         R"({"errors": [], "data": {"count": 5, "results": [{"id": 2, "author": "bob"},
                             {"id": 3, "author": "carol"}], "limit": 2, "offset": 1}, "action": "list",
                             "response_status": 200, "request_id": null})"));
    for (const char* bad : {R"("limit": 0)", R"("limit": -3)", R"("limit": null)", R"("limit": "x")",
                            R"("limit": [1])", R"("limit": 1.5)"}) {
        EXPECT_THAT(Send(std::string(R"({"action": "list", )") + bad + "}", paged_.get()),
                    HasSubstr(R"("limit":2,"offset":0)"))
            << bad;  // falls back to the page size
    }
    EXPECT_THAT(Send(R"({"action": "list", "limit": 50})", paged_.get()), HasSubstr(R"("limit":3)"));  // capped
    EXPECT_THAT(Send(R"({"action": "list", "offset": -1})", paged_.get()), HasSubstr(R"("offset":0)"));
    EXPECT_THAT(Send(R"({"action": "list", "offset": "4"})", paged_.get()),
                HasSubstr(R"("results":[{"id":5,"author":"bob"}],"limit":2,"offset":4)"));
    EXPECT_THAT(Send(R"({"action": "list", "offset": 99})", paged_.get()), HasSubstr(R"("count":5,"results":[])"));
    EXPECT_THAT(Send(R"({"action": "list", "filter": {"author": "alice"}})", paged_.get()),
                HasSubstr(R"("count":2)"));
}

// A reply that no websocket text frame could carry (an action answering bytes that are not UTF-8) is never dropped:
// it becomes a 500 with the request's action and request_id, and the session goes on.
TEST_F(ConsumerTest, AReplyThatIsNotUtf8Answers500InsteadOfVanishing) {
    ConsumerOptions o;
    o.model = "posts";
    o.mixins = {Mixin{{CustomAction("bad", [](GenericConsumer&, ActionRequest&) {
        return ActionResult::Ok(200, "\"\xED\xB0\x80\"");
    })}}};
    auto consumer = Make<GenericConsumer>(std::move(o));
    EXPECT_TRUE(SameJson(Send(R"({"action": "bad", "request_id": 9})", consumer.get()),
                         R"({"errors": ["Internal server error"], "data": null, "action": "bad",
                             "response_status": 500, "request_id": 9})"));
    EXPECT_THAT(Send(R"({"action": "retrieve", "request_id": 10, "pk": 1})"), HasSubstr(R"("response_status":200)"));
}

}  // namespace
}  // namespace syncline
