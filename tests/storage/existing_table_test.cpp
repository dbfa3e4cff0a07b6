// Existing tables (issue 12): a model stored in a table of another name ("table"), and fields read from the database
// ("fields": "from_database", DescribeTable), on both engines; the type and default mappings without a database.
#include <syncline/storage/backend.hpp>
#include <syncline/test_support/engines.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "describe_table.hpp"
#include "test_db.hpp"

namespace syncline::storage {
namespace {

using test_support::Engine;
using ::testing::HasSubstr;

TEST(DescribeTableTest, SqliteDeclaredTypesMapByAffinityWords) {
    EXPECT_EQ(SqliteFieldType("integer"), FieldType::kInteger);
    EXPECT_EQ(SqliteFieldType("BIGINT"), FieldType::kInteger);
    EXPECT_EQ(SqliteFieldType("smallint unsigned"), FieldType::kInteger);
    EXPECT_EQ(SqliteFieldType("varchar(200)"), FieldType::kText);
    EXPECT_EQ(SqliteFieldType("char(3)"), FieldType::kText);
    EXPECT_EQ(SqliteFieldType("text"), FieldType::kText);
    EXPECT_EQ(SqliteFieldType("CLOB"), FieldType::kText);
    EXPECT_EQ(SqliteFieldType("real"), FieldType::kReal);
    EXPECT_EQ(SqliteFieldType("double precision"), FieldType::kReal);
    EXPECT_EQ(SqliteFieldType("FLOAT"), FieldType::kReal);
    EXPECT_EQ(SqliteFieldType("decimal"), FieldType::kReal);
    EXPECT_EQ(SqliteFieldType("bool"), FieldType::kBoolean);
    EXPECT_EQ(SqliteFieldType("BOOLEAN"), FieldType::kBoolean);
    EXPECT_EQ(SqliteFieldType("datetime"), FieldType::kDateTime);
    EXPECT_EQ(SqliteFieldType("date"), FieldType::kDateTime);
    EXPECT_EQ(SqliteFieldType("DATETIME_TEXT"), FieldType::kDateTime);  // syncline's own
    EXPECT_EQ(SqliteFieldType("JSON_TEXT"), FieldType::kJson);          // syncline's own
    EXPECT_EQ(SqliteFieldType("json"), FieldType::kJson);
    EXPECT_EQ(SqliteFieldType("blob"), std::nullopt);
    EXPECT_EQ(SqliteFieldType(""), std::nullopt);
    EXPECT_EQ(DeclaredMaxLength("varchar(200)"), 200u);
    EXPECT_EQ(DeclaredMaxLength("CHARACTER( 10 )"), 10u);
    EXPECT_EQ(DeclaredMaxLength("text"), std::nullopt);
    EXPECT_EQ(DeclaredMaxLength("decimal(10, 2)"), std::nullopt);
}

TEST(DescribeTableTest, PostgresTypesMap) {
    for (const char* t : {"smallint", "integer", "bigint"}) EXPECT_EQ(PostgresFieldType(t), FieldType::kInteger) << t;
    for (const char* t : {"real", "double precision", "numeric"})
        EXPECT_EQ(PostgresFieldType(t), FieldType::kReal) << t;
    EXPECT_EQ(PostgresFieldType("boolean"), FieldType::kBoolean);
    for (const char* t : {"text", "character varying", "character", "uuid"}) {
        EXPECT_EQ(PostgresFieldType(t), FieldType::kText) << t;
    }
    for (const char* t : {"timestamp with time zone", "timestamp without time zone", "date"}) {
        EXPECT_EQ(PostgresFieldType(t), FieldType::kDateTime) << t;
    }
    EXPECT_EQ(PostgresFieldType("jsonb"), FieldType::kJson);
    EXPECT_EQ(PostgresFieldType("json"), FieldType::kJson);
    EXPECT_EQ(PostgresFieldType("bytea"), std::nullopt);
    EXPECT_EQ(PostgresFieldType("ARRAY"), std::nullopt);
}

TEST(DescribeTableTest, ConstantDefaultsAreKeptComputedOnesLeftToTheDatabase) {
    auto constant = [](const char* sql, FieldType type) {
        DefaultDescription d = ParseDefault(sql, type);
        EXPECT_FALSE(d.computed) << sql;
        return d.value;
    };
    auto computed = [](const char* sql, FieldType type) {
        DefaultDescription d = ParseDefault(sql, type);
        EXPECT_FALSE(d.value) << sql;
        return d.computed;
    };
    EXPECT_EQ(constant("false", FieldType::kBoolean), Value(false));
    EXPECT_EQ(constant("0", FieldType::kBoolean), Value(false));
    EXPECT_EQ(constant("TRUE", FieldType::kBoolean), Value(true));
    EXPECT_EQ(constant("0", FieldType::kInteger), Value(0));
    EXPECT_EQ(constant("(-1)", FieldType::kInteger), Value(-1));
    EXPECT_EQ(constant("'-1'::integer", FieldType::kInteger), Value(-1));
    EXPECT_EQ(constant("1.5", FieldType::kReal), Value(1.5));
    EXPECT_EQ(constant("'2.50'::numeric", FieldType::kReal), Value(2.5));
    EXPECT_EQ(constant("'draft'", FieldType::kText), Value("draft"));
    EXPECT_EQ(constant("'it''s'::character varying", FieldType::kText), Value("it's"));
    EXPECT_EQ(constant("''::character varying", FieldType::kText), Value(""));
    EXPECT_EQ(constant("'{}'::jsonb", FieldType::kJson), Value("{}"));
    EXPECT_EQ(constant("'2024-05-01 12:00:00+00'::timestamp with time zone", FieldType::kDateTime),
              Value("2024-05-01 12:00:00+00"));
    EXPECT_EQ(constant("NULL", FieldType::kText), std::nullopt);
    EXPECT_EQ(constant("NULL::character varying", FieldType::kText), std::nullopt);
    EXPECT_TRUE(computed("nextval('blog_post_id_seq'::regclass)", FieldType::kInteger));
    EXPECT_TRUE(computed("now()", FieldType::kDateTime));
    EXPECT_TRUE(computed("CURRENT_TIMESTAMP", FieldType::kDateTime));
    EXPECT_TRUE(computed("(datetime('now'))", FieldType::kDateTime));
    EXPECT_TRUE(computed("gen_random_uuid()", FieldType::kText));
    EXPECT_TRUE(computed("(1 + 2)", FieldType::kInteger));
    EXPECT_TRUE(computed("'abc'", FieldType::kInteger));  // no integer: the database's business
}

TEST(DescribeTableTest, ColumnsBecomeFields) {
    std::vector<ColumnDescription> columns(4);
    columns[0].name = "id";
    columns[0].type = "bigint";
    columns[0].not_null = true;
    columns[0].identity = true;
    columns[0].primary_key = true;
    columns[1].name = "title";
    columns[1].type = "character varying";
    columns[1].not_null = true;
    columns[1].max_length = 200;
    columns[2].name = "note";
    columns[2].type = "text";
    columns[2].default_sql = "''::text";
    columns[3].name = "_syncline_version";
    columns[3].type = "bigint";
    std::vector<FieldSpec> fields = FieldsFromColumns("table \"t\"", columns, true);
    ASSERT_EQ(fields.size(), 3u);
    EXPECT_TRUE(fields[0].primary_key);
    EXPECT_FALSE(fields[0].database_default);
    EXPECT_FALSE(fields[0].nullable);
    EXPECT_EQ(fields[1].max_length, 200u);
    EXPECT_FALSE(fields[1].nullable);
    EXPECT_TRUE(fields[2].nullable);
    EXPECT_EQ(fields[2].default_value, Value(""));
    EXPECT_TRUE(fields[2].blank);

    columns[0].primary_key = false;
    try {
        FieldsFromColumns("table \"t\"", columns, true);
        FAIL();
    } catch (const StoreError& e) {
        EXPECT_THAT(e.what(), HasSubstr("table \"t\" has no primary key"));
    }
    columns[0].primary_key = true;
    columns[1].primary_key = true;
    try {
        FieldsFromColumns("table \"t\"", columns, true);
        FAIL();
    } catch (const StoreError& e) {
        EXPECT_THAT(e.what(), HasSubstr("table \"t\" has a composite primary key"));
    }
    columns[1].primary_key = false;
    columns[2].type = "bytea";
    try {
        FieldsFromColumns("table \"t\"", columns, true);
        FAIL();
    } catch (const StoreError& e) {
        EXPECT_THAT(e.what(), HasSubstr("table \"t\", column \"note\": type \"bytea\" is not supported"));
    }
}

// On both engines (ExistingTableTest.X/Sqlite, .../Postgres).
class ExistingTableTest : public ::testing::TestWithParam<Engine> {
protected:
    void SetUp() override {
        engine_db_ = std::make_unique<test_support::EngineDatabase>(GetParam(), dir_);
        if (!engine_db_->available()) GTEST_SKIP() << test_support::kPgSkipReason;
    }
    bool pg() const { return GetParam() == Engine::kPostgres; }
    // The table Django would create for a blog app's Post model.
    void CreateDjangoTable() {
        if (pg()) {
            engine_db_->ExecOutside(
                "CREATE TABLE blog_post (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
                "title varchar(200) NOT NULL, published boolean NOT NULL DEFAULT false, "
                "created timestamptz NOT NULL DEFAULT now(), views integer NULL, extra jsonb NULL, "
                "score numeric(6, 2) NOT NULL DEFAULT 0)");
        } else {
            engine_db_->ExecOutside(
                "CREATE TABLE \"blog_post\" (\"id\" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "
                "\"title\" varchar(200) NOT NULL, \"published\" bool NOT NULL DEFAULT 0, "
                "\"created\" datetime NOT NULL DEFAULT CURRENT_TIMESTAMP, \"views\" integer NULL, "
                "\"extra\" json NULL, \"score\" decimal NOT NULL DEFAULT 0);");
        }
    }
    testing::TempDir dir_;
    std::unique_ptr<test_support::EngineDatabase> engine_db_;
};

TEST_P(ExistingTableTest, DescribesADjangoTable) {
    CreateDjangoTable();
    std::vector<FieldSpec> fields = DescribeTable(engine_db_->database(), "blog_post");
    ASSERT_EQ(fields.size(), 7u);
    EXPECT_EQ(fields[0].name, "id");
    EXPECT_EQ(fields[0].type, FieldType::kInteger);
    EXPECT_TRUE(fields[0].primary_key);
    EXPECT_EQ(fields[1].name, "title");
    EXPECT_EQ(fields[1].type, FieldType::kText);
    EXPECT_EQ(fields[1].max_length, 200u);
    EXPECT_FALSE(fields[1].nullable);
    EXPECT_FALSE(fields[1].default_value);
    EXPECT_EQ(fields[2].type, FieldType::kBoolean);
    EXPECT_EQ(fields[2].default_value, Value(false));
    EXPECT_EQ(fields[3].type, FieldType::kDateTime);
    EXPECT_TRUE(fields[3].database_default);
    EXPECT_FALSE(fields[3].default_value);
    EXPECT_EQ(fields[4].type, FieldType::kInteger);
    EXPECT_TRUE(fields[4].nullable);
    EXPECT_EQ(fields[5].type, FieldType::kJson);
    EXPECT_EQ(fields[6].type, FieldType::kReal);
    EXPECT_EQ(fields[6].default_value, Value(0.0));
}

TEST_P(ExistingTableTest, ServesTheTableUnderTheModelsName) {
    CreateDjangoTable();
    engine_db_->ExecOutside("INSERT INTO blog_post (title, views) VALUES ('by the app', 7)");
    Schema post = Schema::FromDatabase("post", "blog_post");
    post = post.ResolveFields(DescribeTable(engine_db_->database(), "blog_post"));
    BackendOptions options;
    options.database = engine_db_->database();
    auto db = OpenBackend(options, {post});
    auto feed = db->OpenChangeSource();
    const std::int64_t cursor = feed->LatestSeq();
    Row row = db->Insert("post", {{"title", "Hello"}});
    EXPECT_EQ(row[0], Value(2));
    EXPECT_EQ(row[2], Value(false));
    ASSERT_EQ(row[3].kind(), Value::Kind::kText);
    EXPECT_TRUE(IsIsoDateTime(row[3].AsText())) << row[3].AsText();
    EXPECT_TRUE(db->Patch("post", Value(1), {{"published", true}}));
    std::optional<Row> app_row = db->Get("post", "id", Value(1));
    ASSERT_TRUE(app_row);
    EXPECT_EQ((*app_row)[1], Value("by the app"));
    EXPECT_EQ((*app_row)[2], Value(true));
    EXPECT_EQ((*app_row)[4], Value(7));  // the app's own values are kept
    EXPECT_EQ(db->List("post", Query{}).size(), 2u);
    // Filters on a timestamp column (timestamptz on PostgreSQL): instants compared, text lookups on the ISO text.
    auto count = [&](FilterOp op, Value value, std::vector<Value> values = {}) {
        Query q;
        q.filters.push_back(Filter{"created", op, std::move(value), std::move(values)});
        return db->List("post", q).size();
    };
    std::optional<Row> old = db->Patch("post", Value(1), {{"created", "2001-02-03T04:05:06+00:00"}});
    ASSERT_TRUE(old);
    const Value old_created = (*old)[3];
    EXPECT_EQ(old_created, Value("2001-02-03T04:05:06+00:00"));
    EXPECT_EQ(count(FilterOp::kGte, Value("2000-01-01T00:00:00Z")), 2u);
    EXPECT_EQ(count(FilterOp::kLt, Value("2000-01-01T00:00:00Z")), 0u);
    EXPECT_EQ(count(FilterOp::kLt, Value("2002-01-01T00:00:00Z")), 1u);
    EXPECT_EQ(count(FilterOp::kExact, old_created), 1u);
    EXPECT_EQ(count(FilterOp::kIn, Value(), {old_created, Value("1999-01-01T00:00:00Z")}), 1u);
    EXPECT_EQ(count(FilterOp::kStartsWith, Value("2001-02-03T04")), 1u);
    // Changes carry the model's name, whatever the table is called; another client's writes are captured too.
    engine_db_->ExecOutside("UPDATE blog_post SET title = 'from sql' WHERE id = 2");
    std::vector<ChangeEvent> events = feed->ReadAfter(cursor, 100);
    ASSERT_EQ(events.size(), 4u);
    for (const auto& e : events) EXPECT_EQ(e.table, "post");
    ASSERT_TRUE(events[3].row);
    EXPECT_EQ((*events[3].row)[1], Value("from sql"));
    EXPECT_TRUE(db->Delete("post", Value(2)));
    EXPECT_FALSE(db->Get("post", "id", Value(2)));
}

TEST_P(ExistingTableTest, AMissingTableOrOneWithoutAKeyIsRefused) {
    try {
        DescribeTable(engine_db_->database(), "blog_post");
        FAIL();
    } catch (const StoreError& e) {
        EXPECT_THAT(e.what(), HasSubstr("table \"blog_post\" does not exist"));
    }
    engine_db_->ExecOutside("CREATE TABLE blog_post (title varchar(20))");
    try {
        DescribeTable(engine_db_->database(), "blog_post");
        FAIL();
    } catch (const StoreError& e) {
        EXPECT_THAT(e.what(), HasSubstr("table \"blog_post\" has no primary key"));
    }
    engine_db_->ExecOutside(std::string("CREATE TABLE tagged (post integer NOT NULL, tag integer NOT NULL, ") +
                            "payload " + (pg() ? "bytea" : "blob") + ", PRIMARY KEY (post, tag))");
    try {
        DescribeTable(engine_db_->database(), "tagged");
        FAIL();
    } catch (const StoreError& e) {
        EXPECT_THAT(e.what(), HasSubstr("table \"tagged\" has a composite primary key"));
    }
}

TEST_P(ExistingTableTest, AnUnsupportedColumnTypeIsRefusedByName) {
    engine_db_->ExecOutside(std::string("CREATE TABLE files (id integer PRIMARY KEY, payload ") +
                            (pg() ? "bytea" : "blob") + ")");
    try {
        DescribeTable(engine_db_->database(), "files");
        FAIL();
    } catch (const StoreError& e) {
        EXPECT_THAT(e.what(), HasSubstr("table \"files\", column \"payload\": type \""));
        EXPECT_THAT(e.what(), HasSubstr("is not supported"));
    }
}

TEST_P(ExistingTableTest, ADeclaredModelMayNameItsTable) {
    Schema posts = testing::PostsSchema().WithStorageTable("app_posts");
    BackendOptions options;
    options.database = engine_db_->database();
    auto db = OpenBackend(options, {posts});
    db->Insert("posts", {{"title", "stored elsewhere"}});
    engine_db_->ExecOutside("UPDATE app_posts SET title = 'renamed' WHERE id = 1");
    EXPECT_EQ((*db->Get("posts", "id", Value(1)))[1], Value("renamed"));
    EXPECT_THROW(engine_db_->ExecOutside("SELECT 1 FROM posts"), std::runtime_error);  // no table named after it
    auto feed = db->OpenChangeSource();
    auto events = feed->ReadAfter(0, 100);
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[1].table, "posts");
    EXPECT_EQ((*events[1].row)[1], Value("renamed"));
    EXPECT_TRUE(db->Delete("posts", Value(1)));
    EXPECT_EQ(db->RowVersion("posts", Value(1)), feed->LatestSeq());  // the tombstone of the stored table
}

TEST_P(ExistingTableTest, TwoModelsCannotShareATable) {
    BackendOptions options;
    options.database = engine_db_->database();
    try {
        OpenBackend(options, {testing::PostsSchema(), testing::TagsSchema().WithStorageTable("posts")});
        FAIL();
    } catch (const StoreError& e) {
        EXPECT_THAT(e.what(), HasSubstr("models \"posts\" and \"tags\" are both stored in table \"posts\""));
    }
}

INSTANTIATE_TEST_SUITE_P(Engines, ExistingTableTest, test_support::AllEngines(), test_support::EngineParamName);

}  // namespace
}  // namespace syncline::storage
