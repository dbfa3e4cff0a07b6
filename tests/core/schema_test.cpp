#include <syncline/core/model/schema.hpp>

#include <syncline/core/consumer/serializer.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

namespace syncline {
namespace {

using ::testing::HasSubstr;

FieldSpec Spec(std::string name, FieldType type) {
    FieldSpec f;
    f.name = std::move(name);
    f.type = type;
    return f;
}

FieldSpec Text(std::string name, std::size_t max_length = 0) {
    FieldSpec f;
    f.name = std::move(name);
    f.type = FieldType::kText;
    if (max_length) f.max_length = max_length;
    return f;
}

std::string BuildError(std::string table, std::vector<FieldSpec> fields) {
    try {
        Schema::Build(std::move(table), std::move(fields));
    } catch (const SchemaError& e) {
        return e.what();
    }
    return "";
}

std::string JsonError(std::string_view json) {
    try {
        Schema::FromJson("posts", json);
    } catch (const SchemaError& e) {
        return e.what();
    }
    return "";
}

TEST(SchemaTest, BuildAddsIntegerIdWhenNoPrimaryKey) {
    Schema s = Schema::Build("posts", {Text("title", 100)});
    ASSERT_EQ(s.size(), 2u);
    EXPECT_EQ(s.pk().name, "id");
    EXPECT_EQ(s.pk().type, FieldType::kInteger);
    EXPECT_TRUE(s.pk_auto());
    EXPECT_EQ(s.FieldIndex("title"), 1u);
    EXPECT_FALSE(s.FieldIndex("nope"));
}

TEST(SchemaTest, TextPrimaryKey) {
    FieldSpec key = Text("uuid");
    key.primary_key = true;
    Schema s = Schema::Build("things", {key, Text("name")});
    EXPECT_EQ(s.pk().name, "uuid");
    EXPECT_FALSE(s.pk_auto());
    EXPECT_EQ(s.size(), 2u);
}

TEST(SchemaTest, RefusesBadDeclarationsNamingTheProblem) {
    EXPECT_THAT(BuildError("posts", {Text("title"), Text("title")}), HasSubstr("\"title\": duplicate field"));
    EXPECT_THAT(BuildError("posts", {Text("Title"), Text("title")}), HasSubstr("duplicate field"));
    EXPECT_THAT(BuildError("posts", {Text("select")}), HasSubstr("\"select\": the field name is reserved"));
    EXPECT_THAT(BuildError("posts", {Text("rowid")}), HasSubstr("reserved"));
    EXPECT_THAT(BuildError("posts", {Text("_syncline_x")}), HasSubstr("reserved"));
    EXPECT_THAT(BuildError("posts", {Text("has space")}), HasSubstr("invalid field name"));
    EXPECT_THAT(BuildError("posts", {Text("1st")}), HasSubstr("invalid field name"));
    EXPECT_THAT(BuildError("posts", {Text(std::string(64, 'a'))}), HasSubstr("invalid field name"));
    EXPECT_THAT(BuildError("order", {Text("title")}), HasSubstr("table name is reserved"));
    EXPECT_THAT(BuildError("bad-name", {Text("title")}), HasSubstr("invalid table name"));
    EXPECT_THAT(BuildError("posts", {Text("id")}), HasSubstr("\"id\": a field named id must be the primary key"));

    FieldSpec a = Text("a"), b = Text("b");
    a.primary_key = b.primary_key = true;
    EXPECT_THAT(BuildError("posts", {a, b}), HasSubstr("a second primary key"));
    FieldSpec nullable_pk = Text("k");
    nullable_pk.primary_key = nullable_pk.nullable = true;
    EXPECT_THAT(BuildError("posts", {nullable_pk}), HasSubstr("cannot be null"));
    FieldSpec real_pk = Spec("k", FieldType::kReal);
    real_pk.primary_key = true;
    EXPECT_THAT(BuildError("posts", {real_pk}), HasSubstr("integer or text"));
    FieldSpec int_with_length = Spec("n", FieldType::kInteger);
    int_with_length.max_length = 3;
    EXPECT_THAT(BuildError("posts", {int_with_length}), HasSubstr("max_length applies to text"));
}

TEST(SchemaTest, RefusesDefaultsThatViolateTheField) {
    FieldSpec title = Text("title", 5);
    title.default_value = Value("toolong");
    EXPECT_THAT(BuildError("posts", {title}),
                HasSubstr("\"title\": default \"toolong\" violates the field: Ensure this field has no more than 5"));
    FieldSpec count = Spec("count", FieldType::kInteger);
    count.default_value = Value("three");
    EXPECT_THAT(BuildError("posts", {count}), HasSubstr("A valid integer is required."));
    FieldSpec flag = Spec("flag", FieldType::kBoolean);
    flag.default_value = Value();
    EXPECT_THAT(BuildError("posts", {flag}), HasSubstr("This field may not be null."));
    FieldSpec status = Text("status");
    status.choices = {Value("draft"), Value("published")};
    status.default_value = Value("gone");
    EXPECT_THAT(BuildError("posts", {status}), HasSubstr("\"gone\" is not a valid choice"));
    FieldSpec blank = Text("body");
    blank.default_value = Value("");
    EXPECT_THAT(BuildError("posts", {blank}), HasSubstr("This field may not be blank."));
    FieldSpec when = Spec("happened_at", FieldType::kDateTime);
    when.default_value = Value("yesterday");
    EXPECT_THAT(BuildError("posts", {when}), HasSubstr("Datetime has wrong format"));
    FieldSpec doc = Spec("doc", FieldType::kJson);
    doc.default_value = Value("{not json");
    EXPECT_THAT(BuildError("posts", {doc}), HasSubstr("Value must be valid JSON."));
    FieldSpec bounded = Spec("n", FieldType::kInteger);
    bounded.min_value = 1;
    bounded.default_value = Value(0);
    EXPECT_THAT(BuildError("posts", {bounded}), HasSubstr("greater than or equal to 1."));
}

TEST(SchemaTest, FromJsonMatchesTheBlogExample) {
    Schema s = Schema::FromJson("posts", R"({"fields": {
        "id":     {"type": "integer", "primary_key": true},
        "title":  {"type": "text", "max_length": 100},
        "body":   {"type": "text", "blank": true, "default": ""},
        "author": {"type": "text", "max_length": 50, "blank": true, "default": ""},
        "score":  {"type": "real", "null": true, "min_value": 0, "max_value": 10},
        "public": {"type": "boolean", "default": true},
        "at":     {"type": "datetime", "null": true},
        "meta":   {"type": "json", "default": {"tags": ["a"]}},
        "state":  {"type": "text", "choices": ["draft", "live"], "default": "draft", "unique": false}}})");
    ASSERT_EQ(s.size(), 9u);
    EXPECT_EQ(s.pk().name, "id");
    EXPECT_EQ(s.field(1).max_length, 100u);
    EXPECT_TRUE(s.field(2).blank);
    EXPECT_EQ(*s.field(2).default_value, Value(""));
    EXPECT_TRUE(s.field(4).nullable);
    EXPECT_EQ(s.field(4).max_value, 10.0);
    EXPECT_EQ(*s.field(5).default_value, Value(true));
    EXPECT_EQ(s.field(6).type, FieldType::kDateTime);
    EXPECT_EQ(*s.field(7).default_value, Value(R"({"tags":["a"]})"));
    EXPECT_EQ(s.field(8).choices.size(), 2u);
}

// Issue 12: a model may be stored in a table of another name, and may take its fields from the database.
TEST(SchemaTest, StorageTableAndFieldsFromTheDatabase) {
    Schema plain = Schema::FromJson("post", R"({"fields": {"title": {"type": "text"}}})");
    EXPECT_EQ(plain.storage_table(), "post");
    Schema stored = Schema::FromJson("post", R"({"table": "blog_post", "fields": {"title": {"type": "text"}}})");
    EXPECT_EQ(stored.table(), "post");
    EXPECT_EQ(stored.storage_table(), "blog_post");
    EXPECT_FALSE(stored.from_database());
    EXPECT_NE(stored.Fingerprint(), plain.Fingerprint());
    EXPECT_EQ(plain.WithStorageTable("blog_post").Fingerprint(), stored.Fingerprint());
    EXPECT_THROW(plain.WithStorageTable("blog post"), SchemaError);
    EXPECT_THROW(plain.WithStorageTable("_syncline_changes"), SchemaError);

    Schema marker = Schema::FromJson("post", R"({"table": "blog_post", "fields": "from_database"})");
    EXPECT_TRUE(marker.from_database());
    EXPECT_EQ(marker.storage_table(), "blog_post");
    EXPECT_TRUE(Schema::FromJson("post", R"({"fields": "from_database"})").from_database());
    EXPECT_EQ(Schema::FromJson("post", R"({"fields": "from_database"})").storage_table(), "post");
    FieldSpec id;
    id.name = "id";
    id.type = FieldType::kInteger;
    id.primary_key = true;
    FieldSpec created;
    created.name = "created";
    created.type = FieldType::kDateTime;
    created.database_default = true;
    Schema resolved = marker.ResolveFields({id, created});
    EXPECT_FALSE(resolved.from_database());
    EXPECT_EQ(resolved.table(), "post");
    EXPECT_EQ(resolved.storage_table(), "blog_post");
    EXPECT_TRUE(resolved.field(1).database_default);
    EXPECT_THAT(resolved.Fingerprint(), HasSubstr("created:datetime:dbdefault"));

    EXPECT_THAT(JsonError(R"({"table": 3, "fields": "from_database"})"), HasSubstr("posts.table: expected the name"));
    EXPECT_THAT(JsonError(R"({"table": "a-b", "fields": "from_database"})"),
                HasSubstr("posts.table: \"a-b\" is not a valid table name"));
    EXPECT_THAT(JsonError(R"({"fields": "from_db"})"), HasSubstr("or \"from_database\""));
}

TEST(SchemaTest, FromJsonErrorsNameTheKeyPathAndChoices) {
    EXPECT_THAT(JsonError(R"({"fields": {"t": {"type": "str"}}})"),
                HasSubstr("posts.fields.t.type: unknown type \"str\"; valid types: integer, real, text, boolean, "
                          "datetime, json"));
    EXPECT_THAT(JsonError(R"({"fields": {"t": {"type": "text", "maxlength": 3}}})"),
                HasSubstr("posts.fields.t.maxlength: unknown key; valid keys: type, primary_key"));
    EXPECT_THAT(JsonError(R"({"fields": {"t": {}}})"), HasSubstr("posts.fields.t.type: missing"));
    EXPECT_THAT(JsonError(R"({"fields": {"t": {"type": "text", "max_length": -1}}})"),
                HasSubstr("posts.fields.t.max_length: expected a positive integer"));
    EXPECT_THAT(JsonError(R"({"fields": {"t": {"type": "text", "null": "yes"}}})"),
                HasSubstr("posts.fields.t.null: expected true or false"));
    EXPECT_THAT(JsonError(R"({"fields": {}})"), HasSubstr("posts.fields: expected a non-empty object"));
    EXPECT_THAT(JsonError(R"({"fields": {"t": {"type": "text"}}, "extra": 1})"),
                HasSubstr("posts.extra: unknown key; valid keys: fields, table"));
    EXPECT_THAT(JsonError(R"({"fields": )"), HasSubstr("invalid JSON"));
    EXPECT_THAT(JsonError(R"({"fields": {"t": {"type": "text"}, "t": {"type": "text"}}})"),
                HasSubstr("duplicate field"));
    EXPECT_THAT(JsonError(R"({"fields": {"t": {"type": "integer", "default": "x"}}})"),
                HasSubstr("A valid integer is required."));
}

TEST(SchemaTest, CheckValueUsesDrfMessages) {
    Schema s = Schema::FromJson("posts", R"({"fields": {
        "title": {"type": "text", "max_length": 3},
        "n": {"type": "integer", "max_value": 5},
        "r": {"type": "real"},
        "b": {"type": "boolean"},
        "c": {"type": "integer", "choices": [1, 2]}}})");
    const auto& f = s.fields();
    EXPECT_EQ(s.CheckValue(f[1], Value("abc")), "");
    EXPECT_EQ(s.CheckValue(f[1], Value("äöüß")), "Ensure this field has no more than 3 characters.");
    EXPECT_EQ(s.CheckValue(f[1], Value("äöü")), "");  // characters, not bytes
    EXPECT_EQ(s.CheckValue(f[1], Value(3)), "Not a valid string.");
    EXPECT_EQ(s.CheckValue(f[1], Value()), "This field may not be null.");
    EXPECT_EQ(s.CheckValue(f[1], Value("")), "This field may not be blank.");
    EXPECT_EQ(s.CheckValue(f[2], Value(6)), "Ensure this value is less than or equal to 5.");
    EXPECT_EQ(s.CheckValue(f[2], Value(1.5)), "A valid integer is required.");
    EXPECT_EQ(s.CheckValue(f[3], Value(2)), "");
    EXPECT_EQ(s.CheckValue(f[3], Value("x")), "A valid number is required.");
    EXPECT_EQ(s.CheckValue(f[4], Value(1)), "Must be a valid boolean.");
    EXPECT_EQ(s.CheckValue(f[5], Value(3)), "\"3\" is not a valid choice.");
    EXPECT_EQ(s.CheckValue(f[5], Value(2)), "");
}

// The schema's value checks and the serializer's print bounds the same way (one FormatNumber): whole numbers without a
// fraction, others as %g.
TEST(SchemaTest, BoundsPrintTheSameInTheSchemaAndTheSerializer) {
    Schema s = Schema::FromJson("kinds", R"({"fields": {
        "r": {"type": "real", "min_value": -1e20, "max_value": 2.5},
        "n": {"type": "integer", "min_value": -10, "max_value": 1e15}}})");
    Serializer serializer(s, SerializerOptions{});
    const auto& f = s.fields();
    auto coerced = [&](const FieldSpec& field, const char* json) {
        rapidjson::Document d;
        d.Parse(json);
        auto messages = serializer.Coerce(field, d).second;
        return messages.empty() ? std::string() : messages.front();
    };
    EXPECT_EQ(s.CheckValue(f[1], Value(3.0)), "Ensure this value is less than or equal to 2.5.");
    EXPECT_EQ(coerced(f[1], "3.0"), "Ensure this value is less than or equal to 2.5.");
    EXPECT_EQ(s.CheckValue(f[1], Value(-1e21)), "Ensure this value is greater than or equal to -1e+20.");
    EXPECT_EQ(coerced(f[1], "-1e21"), "Ensure this value is greater than or equal to -1e+20.");
    EXPECT_EQ(s.CheckValue(f[2], Value(-11)), "Ensure this value is greater than or equal to -10.");
    EXPECT_EQ(coerced(f[2], "-11"), "Ensure this value is greater than or equal to -10.");
    EXPECT_EQ(s.CheckValue(f[2], Value(std::int64_t{2000000000000000})),
              "Ensure this value is less than or equal to 1e+15.");
    EXPECT_EQ(coerced(f[2], "2000000000000000"), "Ensure this value is less than or equal to 1e+15.");
}

// A field the database fills (FieldSpec::database_default, e.g. a timestamp column with DEFAULT now()) is optional on
// create: not required, and not sent (no empty-text stand-in) so that the database's default applies.
TEST(SchemaTest, ADatabaseDefaultMakesAFieldOptionalOnCreate) {
    FieldSpec created;
    created.name = "created";
    created.type = FieldType::kDateTime;
    FieldSpec title;
    title.name = "title";
    title.blank = true;
    Schema plain = Schema::Build("posts", {created, title});
    created.database_default = true;
    Schema filled = Schema::Build("posts", {created, title});
    rapidjson::Document data;
    data.Parse(R"({})");
    Validated without = Serializer(plain, SerializerOptions{}).Validate(data, ValidationMode::kCreate);
    ASSERT_EQ(without.errors.size(), 1u);
    EXPECT_EQ(without.errors[0].first, "created");
    Validated with = Serializer(filled, SerializerOptions{}).Validate(data, ValidationMode::kCreate);
    EXPECT_TRUE(with.errors.empty());
    ASSERT_EQ(with.values.size(), 1u);  // title's empty text (blank); nothing for created
    EXPECT_EQ(with.values[0].first, "title");
}

TEST(SchemaTest, IsoDateTimes) {
    for (const char* ok : {"2024-05-01", "2024-05-01T12:30", "2024-05-01T12:30:00Z", "2024-05-01 12:30:00.123456",
                           "2024-05-01T12:30:00+02:00", "2024-05-01T12:30:00-0530", "2024-05-01T23:59:59.1+05"}) {
        EXPECT_TRUE(IsIsoDateTime(ok)) << ok;
    }
    for (const char* bad : {"", "2024", "2024-13-01", "2024-05-32", "2024-05-01T25:00", "2024-05-01T12:60",
                            "2024-05-01T12:30:00X", "2024-05-01T12:30:00.", "2024/05/01", "2024-05-01T12:30:00+2"}) {
        EXPECT_FALSE(IsIsoDateTime(bad)) << bad;
    }
}

TEST(SchemaTest, RowJsonRoundTripWithUnicodeAndNulls) {
    Schema s = Schema::FromJson("posts", R"({"fields": {
        "title": {"type": "text"}, "n": {"type": "integer", "null": true}, "b": {"type": "boolean"},
        "r": {"type": "real"}, "meta": {"type": "json"}}})");
    Row row = {Value(7), Value("héllo \"wörld\" ✓ 😀"), Value(), Value(true), Value(2.5), Value(R"({"a":[1,2]})")};
    std::string json = RowToJson(s, row);
    EXPECT_EQ(json, R"({"id":7,"title":"héllo \"wörld\" ✓ 😀","n":null,"b":true,"r":2.5,"meta":{"a":[1,2]}})");
    EXPECT_EQ(RowFromJson(s, json), row);
    // As the capture trigger writes it: booleans 0/1, json as text, a number in a text column.
    Row captured = RowFromJson(s, R"({"id":7,"title":12,"n":null,"b":0,"r":3,"meta":"[1]"})");
    EXPECT_EQ(captured[1], Value("12"));
    EXPECT_EQ(captured[3], Value(false));
    EXPECT_EQ(captured[4], Value(3.0));
    EXPECT_EQ(captured[5], Value("[1]"));
    EXPECT_THROW(RowFromJson(s, "[1]"), std::invalid_argument);
}

TEST(SchemaTest, TheCapturedFormReadsBackExactly) {
    Schema s = Schema::FromJson("posts", R"({"fields": {"b": {"type": "boolean"}, "meta": {"type": "json"}}})");
    for (const char* meta : {R"("[1]")", " [1] ", "1e2", R"({"a":[1,2]})", "not json"}) {
        Row row = {Value(1), Value(true), Value(meta)};
        EXPECT_EQ(RowFromJson(s, RowToCapturedJson(s, row)), row) << meta;
    }
    EXPECT_EQ(RowToCapturedJson(s, {Value(1), Value(false), Value(R"({"a":1})")}),
              R"({"id":1,"b":false,"meta":"{\"a\":1}"})");
    // RowToJson embeds the document: a string document that looks like JSON would read back as that JSON.
    EXPECT_NE(RowFromJson(s, RowToJson(s, {Value(1), Value(true), Value(R"("[1]")")}))[2], Value(R"("[1]")"));
}

}  // namespace
}  // namespace syncline
