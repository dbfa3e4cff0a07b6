// Existing tables (issue 12): a model stored in a table of another name ("table"), and fields read from the database
// ("fields": "from_database", DescribeTable), on both engines; the type and default mappings without a database.
#include <syncline/storage/backend.hpp>
#include <syncline/test_support/engines.hpp>

#include <algorithm>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "describe_table.hpp"
#include "postgres/pg_schema.hpp"
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

TEST(DescribeTableTest, UuidColumnsAndKeysTheDatabaseDoesNotFill) {
    std::vector<ColumnDescription> columns(2);
    columns[0].name = "id";
    columns[0].type = "uuid";
    columns[0].not_null = true;
    columns[0].primary_key = true;
    columns[1].name = "ref";
    columns[1].type = "uuid";
    std::vector<FieldSpec> fields = FieldsFromColumns("table \"t\"", columns, true);
    EXPECT_EQ(fields[0].type, FieldType::kText);
    EXPECT_EQ(fields[0].column_type, "uuid");  // compared and written as uuid on PostgreSQL
    EXPECT_EQ(fields[1].column_type, "uuid");
    EXPECT_FALSE(fields[0].database_default);  // Django's uuid4 default is Python's: the writer gives the key
    columns[0].default_sql = "gen_random_uuid()";
    EXPECT_TRUE(FieldsFromColumns("table \"t\"", columns, true)[0].database_default);  // the database fills it

    // An integer key is assigned by the database only through an identity or a computed default (serial).
    columns[0].type = "integer";
    columns[0].default_sql.reset();
    fields = FieldsFromColumns("table \"t\"", columns, true);
    EXPECT_TRUE(fields[0].supplied_key);
    EXPECT_TRUE(Schema::Build("t", fields).pk().supplied_key);
    EXPECT_FALSE(Schema::Build("t", fields).pk_auto());
    columns[0].default_sql = "nextval('t_id_seq'::regclass)";
    EXPECT_FALSE(FieldsFromColumns("table \"t\"", columns, true)[0].supplied_key);
    columns[0].default_sql.reset();
    columns[0].identity = true;
    fields = FieldsFromColumns("table \"t\"", columns, true);
    EXPECT_FALSE(fields[0].supplied_key);
    EXPECT_TRUE(Schema::Build("t", fields).pk_auto());

    // SQLite: a column declared exactly INTEGER PRIMARY KEY is the rowid, which SQLite assigns; any other is not.
    columns[0].identity = false;
    columns[1].type = "char(32)";
    for (const char* t : {"integer", "INTEGER"}) {
        columns[0].type = t;
        fields = FieldsFromColumns("table \"t\"", columns, false);
        EXPECT_FALSE(fields[0].supplied_key) << t;
        EXPECT_TRUE(fields[1].column_type.empty());  // Django's uuid on SQLite is char(32): text
    }
    for (const char* t : {"int", "bigint"}) {
        columns[0].type = t;
        EXPECT_TRUE(FieldsFromColumns("table \"t\"", columns, false)[0].supplied_key) << t;
    }
}

TEST(DescribeTableTest, UuidSpellingsArePostgresqls) {
    const std::string canonical = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
    for (const char* ok : {"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
                           "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}", "a0eebc999c0b4ef8bb6d6bb9bd380a11",
                           "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11", "{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}"}) {
        EXPECT_EQ(pg::CanonicalUuid(ok), canonical) << ok;
    }
    for (const char* bad : {"", "a0eebc99", "not-a-uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
                            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g",
                            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
                            " a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-",
                            "a0e-ebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc99--9c0b-4ef8-bb6d-6bb9bd380a11"}) {
        EXPECT_FALSE(pg::CanonicalUuid(bad)) << bad;
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

// Django's `id = models.UUIDField(primary_key=True, default=uuid.uuid4)` and a plain UUIDField: uuid columns on
// PostgreSQL, char(32) on SQLite (text there, as Django itself compares them).
TEST_P(ExistingTableTest, ServesUuidKeysAndColumns) {
    // Django writes uuid.hex (no hyphens) into char(32) on SQLite.
    auto spelled = [&](std::string uuid) {
        if (!pg()) uuid.erase(std::remove(uuid.begin(), uuid.end(), '-'), uuid.end());
        return uuid;
    };
    const std::string a = spelled("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
                      b = spelled("b1ffcd00-0d1c-4f09-8c7e-7cc0ce491b22"),
                      r = spelled("c2000000-0000-4000-8000-000000000033");
    if (pg()) {
        engine_db_->ExecOutside(
            "CREATE TABLE shop_order (id uuid NOT NULL PRIMARY KEY, ref uuid NULL, code varchar(20) NOT NULL)");
    } else {
        engine_db_->ExecOutside(
            "CREATE TABLE \"shop_order\" (\"id\" char(32) NOT NULL PRIMARY KEY, \"ref\" char(32) NULL, "
            "\"code\" varchar(20) NOT NULL)");
    }
    engine_db_->ExecOutside("INSERT INTO shop_order (id, ref, code) VALUES ('" + a + "', '" + r + "', 'by the app')");
    Schema order = Schema::FromDatabase("purchase", "shop_order");
    order = order.ResolveFields(DescribeTable(engine_db_->database(), "shop_order"));
    EXPECT_FALSE(order.pk_auto());
    BackendOptions options;
    options.database = engine_db_->database();
    auto db = OpenBackend(options, {order});
    auto feed = db->OpenChangeSource();
    const std::int64_t cursor = feed->LatestSeq();

    Row row = db->Insert("purchase", {{"id", b}, {"ref", r}, {"code", "two"}});
    EXPECT_EQ(row[0], Value(b));
    ASSERT_TRUE(db->Get("purchase", "id", Value(a)));
    EXPECT_EQ((*db->Get("purchase", "id", Value(a)))[1], Value(r));
    EXPECT_FALSE(db->Get("purchase", "id", Value("not-a-uuid")));  // no such row, whatever the engine
    EXPECT_FALSE(db->Get("purchase", "id", Value(7)));
    auto count = [&](const std::string& field, FilterOp op, Value value, std::vector<Value> values = {}) {
        Query q;
        q.filters.push_back(Filter{field, op, std::move(value), std::move(values)});
        return db->List("purchase", q).size();
    };
    EXPECT_EQ(count("ref", FilterOp::kExact, Value(r)), 2u);
    EXPECT_EQ(count("id", FilterOp::kExact, Value(a)), 1u);
    EXPECT_EQ(count("id", FilterOp::kIn, Value(), {Value(a), Value("nope"), Value(3)}), 1u);
    EXPECT_EQ(count("id", FilterOp::kNe, Value(a)), 1u);
    EXPECT_EQ(count("ref", FilterOp::kExact, Value("nope")), 0u);  // an operand no uuid equals matches nothing
    EXPECT_EQ(count("id", FilterOp::kNe, Value("nope")), 2u);
    EXPECT_EQ(count("id", FilterOp::kStartsWith, Value("a0eebc99")), 1u);
    EXPECT_EQ(count("id", FilterOp::kContains, Value("6bb9bd380a11")), 1u);
    EXPECT_EQ(count("id", FilterOp::kGt, Value(a)), 1u);
    EXPECT_EQ(count("ref", FilterOp::kIsNull, Value(false)), 2u);

    std::optional<Row> patched = db->Patch("purchase", Value(a), {{"code", "patched"}});
    ASSERT_TRUE(patched);
    EXPECT_EQ((*patched)[2], Value("patched"));
    EXPECT_TRUE(db->Update("purchase", Value(b), {{"ref", Value()}, {"code", "updated"}}));
    EXPECT_FALSE(db->Patch("purchase", Value("not-a-uuid"), {{"code", "x"}}));
    EXPECT_FALSE(db->Delete("purchase", Value("not-a-uuid")));

    // The change feed fetches the rows by key; versions and tombstones know them.
    std::vector<ChangeEvent> events = feed->ReadAfter(cursor, 100);
    ASSERT_EQ(events.size(), 3u);
    for (const auto& e : events) ASSERT_TRUE(e.row) << e.pk.DebugString();
    EXPECT_EQ(events[1].pk, Value(a));
    EXPECT_EQ((*events[1].row)[2], Value("patched"));
    EXPECT_EQ(db->RowVersion("purchase", Value(a)), events[1].seq);
    EXPECT_EQ(db->RowVersion("purchase", Value(b)), events[2].seq);
    EXPECT_TRUE(db->Delete("purchase", Value(b)));
    EXPECT_EQ(db->RowVersion("purchase", Value(b)), feed->LatestSeq());  // its tombstone
    std::optional<ModelStore::LastChangeInfo> last = db->LastChange("purchase", Value(b));
    ASSERT_TRUE(last);
    EXPECT_TRUE(last->deleted);
    ASSERT_TRUE(last->before);
    EXPECT_EQ((*last->before)[2], Value("updated"));
    std::optional<std::vector<ModelStore::ChangedRow>> changed = db->ChangedSince("purchase", cursor);
    ASSERT_TRUE(changed);
    EXPECT_EQ(changed->size(), 2u);
    db->RowVersion("purchase", Value("not-a-uuid"));  // a floor, not an error
    EXPECT_FALSE(db->LastChange("purchase", Value("not-a-uuid")));

    if (!pg()) return;
    // PostgreSQL: any spelling its uuid input takes finds the row, and a key is given back canonical.
    const std::string upper = "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11";
    ASSERT_TRUE(db->Get("purchase", "id", Value(upper)));
    EXPECT_EQ(count("id", FilterOp::kExact, Value("{a0eebc999c0b4ef8bb6d6bb9bd380a11}")), 1u);
    EXPECT_EQ(db->RowVersion("purchase", Value(upper)), db->RowVersion("purchase", Value(a)));
    Row third = db->Insert("purchase", {{"id", "C3000000000040008000000000000044"}, {"code", "three"}});
    EXPECT_EQ(third[0], Value("c3000000-0000-4000-8000-000000000044"));
    // A value that is no UUID is the writer's mistake (a field error), not the database's.
    for (const Assignments& bad :
         std::vector<Assignments>{{{"id", "nope"}, {"code", "x"}},
                                  {{"id", "d4000000-0000-4000-8000-000000000055"}, {"ref", "nope"}, {"code", "x"}}}) {
        try {
            db->Insert("purchase", bad);
            ADD_FAILURE() << "inserted";
        } catch (const StoreError& e) {
            EXPECT_EQ(e.kind(), StoreErrc::kInvalid) << e.what();
            ASSERT_EQ(e.field_errors().size(), 1u) << e.what();
            EXPECT_EQ(e.field_errors()[0].second, "Must be a valid UUID.");
        }
    }
    try {
        db->Patch("purchase", Value(a), {{"ref", "nope"}});
        ADD_FAILURE() << "patched";
    } catch (const StoreError& e) {
        EXPECT_EQ(e.kind(), StoreErrc::kInvalid) << e.what();
    }
}

// A uuid key the database fills (DEFAULT gen_random_uuid()) may be left out on PostgreSQL.
TEST_P(ExistingTableTest, AUuidKeyWithADatabaseDefaultIsOptional) {
    if (!pg()) GTEST_SKIP() << "PostgreSQL's gen_random_uuid()";
    engine_db_->ExecOutside(
        "CREATE TABLE shop_ticket (id uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY, note text NOT NULL)");
    Schema ticket = Schema::FromDatabase("ticket", "shop_ticket");
    ticket = ticket.ResolveFields(DescribeTable(engine_db_->database(), "shop_ticket"));
    BackendOptions options;
    options.database = engine_db_->database();
    auto db = OpenBackend(options, {ticket});
    Row row = db->Insert("ticket", {{"note", "filled by the database"}});
    ASSERT_EQ(row[0].kind(), Value::Kind::kText);
    EXPECT_TRUE(pg::CanonicalUuid(row[0].AsText())) << row[0].AsText();
    EXPECT_TRUE(db->Get("ticket", "id", row[0]));
    const std::string given = "e5000000-0000-4000-8000-000000000066";
    EXPECT_EQ(db->Insert("ticket", {{"id", given}, {"note", "given"}})[0], Value(given));
}

// `id integer PRIMARY KEY`: PostgreSQL does not fill it (no identity, no serial), so the writer must; on SQLite it is
// the rowid, which SQLite assigns.
TEST_P(ExistingTableTest, AnIntegerKeyWithoutADatabaseDefaultIsSupplied) {
    engine_db_->ExecOutside("CREATE TABLE legacy_item (id integer PRIMARY KEY, name text NOT NULL)");
    Schema item = Schema::FromDatabase("item", "legacy_item");
    item = item.ResolveFields(DescribeTable(engine_db_->database(), "legacy_item"));
    EXPECT_EQ(item.pk_auto(), !pg());
    BackendOptions options;
    options.database = engine_db_->database();
    auto db = OpenBackend(options, {item});
    EXPECT_EQ(db->Insert("item", {{"id", 40}, {"name", "given"}})[0], Value(40));
    if (pg()) {
        try {
            db->Insert("item", {{"name", "no key"}});
            ADD_FAILURE() << "inserted";
        } catch (const StoreError& e) {
            EXPECT_EQ(e.kind(), StoreErrc::kInvalid) << e.what();
            ASSERT_EQ(e.field_errors().size(), 1u) << e.what();
            EXPECT_EQ(e.field_errors()[0].first, "id");
            EXPECT_EQ(e.field_errors()[0].second, "This field is required.");
        }
    } else {
        EXPECT_EQ(db->Insert("item", {{"name", "rowid"}})[0], Value(41));
    }
    EXPECT_EQ(db->List("item", Query{}).size(), pg() ? 1u : 2u);
}

INSTANTIATE_TEST_SUITE_P(Engines, ExistingTableTest, test_support::AllEngines(), test_support::EngineParamName);

}  // namespace
}  // namespace syncline::storage
