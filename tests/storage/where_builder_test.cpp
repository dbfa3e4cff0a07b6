// The WHERE builder (storage/src/where_builder.hpp) on its own: the SQL text and the parameters each filter makes,
// the two forms of `in` (inline, padded to a power of two; one list parameter for syncline_values), null operands,
// the text lookups through syncline_lookup, errors for undeclared fields; and the built clause run on a connection,
// so that the text and the bindings work together. The rows every lookup selects through Database::List are checked
// in model_store_test.cpp and query_safety_test.cpp.

#include "where_builder.hpp"

#include <syncline/core/model/query.hpp>
#include <syncline/core/model/schema.hpp>
#include <syncline/storage/database.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "connection.hpp"
#include "test_db.hpp"

namespace syncline::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace std::string_literals;

using testing::ItemsSchema;

// The parameters as text: a value by its DebugString, a list as "list" followed by its values.
std::vector<std::string> Described(const Params& params) {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < params.size(); ++i) {
        if (const std::vector<Value>* list = params.list(i)) {
            std::string text = "list";
            for (const Value& v : *list) text += " " + v.DebugString();
            out.push_back(text);
        } else {
            out.push_back(params.value(i).DebugString());
        }
    }
    return out;
}

class WhereBuilderTest : public ::testing::Test {
protected:
    // The clause for one filter; its parameters are left in params_.
    std::string One(std::string field, FilterOp op, Value value, std::vector<Value> values = {},
                    std::size_t inline_in_values = 8) {
        filters_ = {Filter{std::move(field), op, std::move(value), std::move(values)}};
        params_ = Params();
        return WhereSql(schema_, filters_, inline_in_values, params_);
    }
    // The syncline_lookup call WhereSql writes for a text lookup.
    static std::string Lookup(FilterOp op, FieldType type, const std::string& quoted_column) {
        return " WHERE syncline_lookup(" + std::to_string(static_cast<int>(op)) + ", " +
               std::to_string(static_cast<int>(type)) + ", " + quoted_column + ", ?)";
    }

    Schema schema_ = ItemsSchema();
    std::vector<Filter> filters_;  // outlive params_: lists are bound by pointer
    Params params_;
};

TEST_F(WhereBuilderTest, NoFiltersNoClause) {
    Params params;
    EXPECT_EQ(WhereSql(schema_, {}, 8, params), "");
    EXPECT_EQ(params.size(), 0u);
}

TEST_F(WhereBuilderTest, EachComparisonIsOneBoundParameter) {
    EXPECT_EQ(One("n", FilterOp::kExact, 5), R"( WHERE "n" = ?)");
    EXPECT_THAT(Described(params_), ElementsAre("5"));
    EXPECT_EQ(One("n", FilterOp::kNe, 5), R"( WHERE "n" IS NOT ?)");
    EXPECT_THAT(Described(params_), ElementsAre("5"));
    EXPECT_EQ(One("n", FilterOp::kLt, 5), R"( WHERE "n" < ?)");
    EXPECT_THAT(Described(params_), ElementsAre("5"));
    EXPECT_EQ(One("r", FilterOp::kLte, 2.5), R"( WHERE "r" <= ?)");
    EXPECT_THAT(Described(params_), ElementsAre("2.5"));
    EXPECT_EQ(One("t", FilterOp::kGt, "b"), R"( WHERE "t" > ?)");
    EXPECT_THAT(Described(params_), ElementsAre(R"("b")"));
    EXPECT_EQ(One("id", FilterOp::kGte, 7), R"( WHERE "id" >= ?)");
    EXPECT_THAT(Described(params_), ElementsAre("7"));
    // A hostile value is a parameter, never text of the statement.
    EXPECT_EQ(One("t", FilterOp::kExact, "x' OR '1'='1"), R"( WHERE "t" = ?)");
    EXPECT_THAT(Described(params_), ElementsAre(R"("x' OR '1'='1")"));
}

TEST_F(WhereBuilderTest, NullOperands) {
    // exact null is IS NULL (`= NULL` would match nothing), with no parameter.
    EXPECT_EQ(One("n", FilterOp::kExact, Value()), R"( WHERE "n" IS NULL)");
    EXPECT_EQ(params_.size(), 0u);
    // ne uses IS NOT, so that ne null means "not null" and ne 5 keeps the rows where n is null.
    EXPECT_EQ(One("n", FilterOp::kNe, Value()), R"( WHERE "n" IS NOT ?)");
    EXPECT_THAT(Described(params_), ElementsAre("null"));
    // isnull reads its operand as a boolean; a non-boolean operand means "is null" unless it is null itself.
    EXPECT_EQ(One("n", FilterOp::kIsNull, true), R"( WHERE "n" IS NULL)");
    EXPECT_EQ(One("n", FilterOp::kIsNull, false), R"( WHERE "n" IS NOT NULL)");
    EXPECT_EQ(One("n", FilterOp::kIsNull, 1), R"( WHERE "n" IS NULL)");
    EXPECT_EQ(One("n", FilterOp::kIsNull, Value()), R"( WHERE "n" IS NOT NULL)");
    EXPECT_EQ(params_.size(), 0u);
    // A text lookup with a null operand matches nothing.
    for (FilterOp op : {FilterOp::kContains, FilterOp::kIContains, FilterOp::kStartsWith}) {
        EXPECT_EQ(One("t", op, Value()), " WHERE 0") << static_cast<int>(op);
        EXPECT_EQ(params_.size(), 0u);
    }
}

TEST_F(WhereBuilderTest, ShortInListsAreInlinePaddedWithNullsToAPowerOfTwo) {
    EXPECT_EQ(One("n", FilterOp::kIn, {}, {}), " WHERE 0");  // an empty list matches nothing
    EXPECT_EQ(params_.size(), 0u);
    EXPECT_EQ(One("n", FilterOp::kIn, {}, {Value(4)}), R"( WHERE "n" IN (?))");
    EXPECT_THAT(Described(params_), ElementsAre("4"));
    EXPECT_EQ(One("n", FilterOp::kIn, {}, {Value(1), Value(2), Value(3)}), R"( WHERE "n" IN (?, ?, ?, ?))");
    EXPECT_THAT(Described(params_), ElementsAre("1", "2", "3", "null"));
    EXPECT_EQ(One("t", FilterOp::kIn, {}, {Value("a"), Value(), Value(2), Value(2), Value(true)}),
              R"( WHERE "t" IN (?, ?, ?, ?, ?, ?, ?, ?))");
    EXPECT_THAT(Described(params_), ElementsAre(R"("a")", "null", "2", "2", "true", "null", "null", "null"));
    // Exactly inline_in_values values: still inline, no padding needed.
    std::vector<Value> eight = {1, 2, 3, 4, 5, 6, 7, 8};
    EXPECT_EQ(One("n", FilterOp::kIn, {}, eight, 8), R"( WHERE "n" IN (?, ?, ?, ?, ?, ?, ?, ?))");
    EXPECT_EQ(params_.size(), 8u);
    EXPECT_EQ(params_.list(0), nullptr);
}

TEST_F(WhereBuilderTest, LongerInListsAreOneListParameterForSynclineValues) {
    std::vector<Value> nine = {1, 2, 3, 4, 5, 6, 7, 8, Value()};
    EXPECT_EQ(One("n", FilterOp::kIn, {}, nine, 8), R"( WHERE "n" IN (SELECT +value FROM syncline_values(?)))");
    ASSERT_EQ(params_.size(), 1u);
    // Bound by pointer to the filter's own list (no copy), whatever its length.
    EXPECT_EQ(params_.list(0), &filters_[0].values);
    EXPECT_THAT(Described(params_), ElementsAre("list 1 2 3 4 5 6 7 8 null"));
    // inline_in_values 0: every non-empty list takes this form; an empty one still matches nothing.
    EXPECT_EQ(One("t", FilterOp::kIn, {}, {Value("a")}, 0), R"( WHERE "t" IN (SELECT +value FROM syncline_values(?)))");
    EXPECT_THAT(Described(params_), ElementsAre(R"(list "a")"));
    EXPECT_EQ(One("t", FilterOp::kIn, {}, {}, 0), " WHERE 0");
}

TEST_F(WhereBuilderTest, TextLookupsCallSynclineLookupWithTheOperandsLookupText) {
    EXPECT_EQ(One("t", FilterOp::kContains, "a%b"), Lookup(FilterOp::kContains, FieldType::kText, R"("t")"));
    EXPECT_THAT(Described(params_), ElementsAre(R"("a%b")"));  // as it is: no LIKE escaping
    EXPECT_EQ(One("t", FilterOp::kIContains, "AB"), Lookup(FilterOp::kIContains, FieldType::kText, R"("t")"));
    EXPECT_THAT(Described(params_), ElementsAre(R"("AB")"));  // folding is syncline_lookup's job
    EXPECT_EQ(One("t", FilterOp::kStartsWith, "a\0b"s), Lookup(FilterOp::kStartsWith, FieldType::kText, R"("t")"));
    EXPECT_THAT(Described(params_), ElementsAre("\"a\0b\""s));  // every byte, NUL included
    // The column's declared type goes along, and a number operand becomes its text as SQLite prints it.
    EXPECT_EQ(One("n", FilterOp::kContains, 15), Lookup(FilterOp::kContains, FieldType::kInteger, R"("n")"));
    EXPECT_THAT(Described(params_), ElementsAre(R"("15")"));
    EXPECT_EQ(One("r", FilterOp::kStartsWith, 2.0), Lookup(FilterOp::kStartsWith, FieldType::kReal, R"("r")"));
    EXPECT_THAT(Described(params_), ElementsAre(R"("2.0")"));
    EXPECT_EQ(One("t", FilterOp::kContains, true), Lookup(FilterOp::kContains, FieldType::kText, R"("t")"));
    EXPECT_THAT(Described(params_), ElementsAre(R"("1")"));
}

TEST_F(WhereBuilderTest, FiltersAreJoinedWithAndParametersInOrder) {
    std::vector<Filter> filters = {
        Filter{"n", FilterOp::kGt, 1, {}},        Filter{"t", FilterOp::kIn, {}, {Value("x"), Value("y"), Value("z")}},
        Filter{"r", FilterOp::kIsNull, true, {}}, Filter{"t", FilterOp::kContains, "q", {}},
        Filter{"id", FilterOp::kLte, 9, {}},
    };
    Params params;
    EXPECT_EQ(WhereSql(schema_, filters, 8, params),
              R"( WHERE "n" > ? AND "t" IN (?, ?, ?, ?) AND "r" IS NULL AND )" +
                  Lookup(FilterOp::kContains, FieldType::kText, R"("t")").substr(7) + R"( AND "id" <= ?)");
    EXPECT_THAT(Described(params), ElementsAre("1", R"("x")", R"("y")", R"("z")", "null", R"("q")", "9"));
}

TEST_F(WhereBuilderTest, AnUndeclaredFieldIsASchemaErrorNeverSql) {
    for (const std::string field : {"nope", R"(t" OR 1=1 --)", "T"}) {
        Params params;
        try {
            WhereSql(schema_, {Filter{field, FilterOp::kExact, 1, {}}}, 8, params);
            ADD_FAILURE() << field;
        } catch (const StorageError& e) {
            EXPECT_EQ(e.kind(), StorageError::Kind::kSchema);
            EXPECT_THAT(e.what(), HasSubstr("unknown field \"" + field + "\" in a filter on \"items\""));
        }
    }
    // The error comes before anything is built from the filters after a good one.
    Params params;
    EXPECT_THROW(
        WhereSql(schema_, {Filter{"n", FilterOp::kExact, 1, {}}, Filter{"x", FilterOp::kExact, 1, {}}}, 8, params),
        StorageError);
}

// The built clause on a real connection: the text prepares, BindAll binds values and lists where the text expects
// them, and the rows are the ones the filters describe.
TEST_F(WhereBuilderTest, TheClauseRunsWithItsBindings) {
    testing::TempDir dir;
    DatabaseOptions options;
    Connection conn(dir.File("where.db"), true, options);
    conn.Exec(R"(CREATE TABLE "items" ("id" INTEGER PRIMARY KEY, "t" TEXT, "n" INTEGER, "r" REAL);
                 INSERT INTO "items" VALUES (1, 'apple', 1, 0.5), (2, 'banana', NULL, 1.5), (3, 'cherry', 3, NULL),
                                            (4, 'date', 4, 2.5), (5, NULL, 5, 3.5);)");
    auto ids = [&](const std::vector<Filter>& filters, std::size_t inline_in_values) {
        Params params;
        Statement st = conn.Prepare(R"(SELECT "id" FROM "items")" +
                                    WhereSql(schema_, filters, inline_in_values, params) + R"( ORDER BY "id")");
        params.BindAll(st);
        std::vector<std::int64_t> out;
        while (st.Step()) out.push_back(st.ColumnInt(0));
        return out;
    };
    std::vector<Filter> filters = {
        Filter{"n", FilterOp::kIn, {}, {Value(1), Value(3), Value(4), Value(5), Value()}},
        Filter{"r", FilterOp::kNe, 2.5, {}},
        Filter{"t", FilterOp::kContains, "e", {}},
    };
    EXPECT_THAT(ids(filters, 8), ElementsAre(1, 3));  // inline `in`
    EXPECT_THAT(ids(filters, 0), ElementsAre(1, 3));  // syncline_values
    EXPECT_THAT(ids({Filter{"n", FilterOp::kExact, Value(), {}}}, 8), ElementsAre(2));
    EXPECT_THAT(ids({Filter{"t", FilterOp::kIsNull, false, {}}, Filter{"n", FilterOp::kGte, 3, {}}}, 8),
                ElementsAre(3, 4));
    EXPECT_THAT(ids({Filter{"t", FilterOp::kStartsWith, Value(), {}}}, 8), ElementsAre());
    EXPECT_THAT(ids({}, 8), ElementsAre(1, 2, 3, 4, 5));
}

}  // namespace
}  // namespace syncline::storage
