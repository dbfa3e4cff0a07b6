// Queries whatever their size (issue 9, items 4 and 13): `in` lists of any length are one statement and match as the
// inline form does; the statement cache stays within its byte budget; errors quote little SQL; and the text lookups
// give the same rows in SQL (Database::List) as in memory (RowMatches, used by list subscriptions), over text with
// NULs, LIKE wildcards, case variants and non-ASCII characters, and over numbers.

#include <syncline/storage/database.hpp>

#include <syncline/core/model/query.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "test_db.hpp"

namespace syncline::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace std::string_literals;

using testing::ItemsSchema;

std::unique_ptr<Database> OpenItems(const std::string& path, std::size_t inline_in_values = 8,
                                    std::size_t cache_bytes = 4 << 20) {
    DatabaseOptions options;
    options.path = path;
    options.inline_in_values = inline_in_values;
    options.statement_cache_bytes = cache_bytes;
    return Database::Open(options, {ItemsSchema()});
}

std::vector<std::int64_t> Ids(const std::vector<Row>& rows) {
    std::vector<std::int64_t> ids;
    for (const auto& row : rows) ids.push_back(row[0].AsInteger());
    return ids;
}

Query Where(std::string field, FilterOp op, Value value, std::vector<Value> values = {}) {
    Query q;
    q.filters.push_back(Filter{std::move(field), op, std::move(value), std::move(values)});
    return q;
}

class QuerySafetyTest : public ::testing::Test {
protected:
    void SetUp() override {
        db_ = OpenItems(dir_.File("items.db"));
        auto tx = db_->Begin();
        for (int i = 1; i <= 2000; ++i) {
            tx->Insert("items", {{"t", "item " + std::to_string(i)}, {"n", i % 7 == 0 ? Value() : Value(i)}});
        }
        tx->Commit();
    }
    testing::TempDir dir_;
    std::unique_ptr<Database> db_;
};

TEST_F(QuerySafetyTest, InListsOfAnyLengthShareOneStatementAndTheCacheStaysPut) {
    // Warm up: the short forms and one long list.
    db_->List("items", Where("id", FilterOp::kIn, {}, {Value(1), Value(2)}));
    db_->List("items", Where("id", FilterOp::kIn, {}, std::vector<Value>(100, Value(3))));
    StatementCacheStats before = db_->statement_cache();
    // Many distinct long lengths, as the attack sent them; each list names row 7 many times and rows 1..k once.
    for (int k = 1000; k < 1060; ++k) {
        std::vector<Value> values(static_cast<std::size_t>(k), Value(7));
        for (int i = 1; i <= 40; ++i) values.push_back(Value(i));
        std::vector<std::int64_t> ids = Ids(db_->List("items", Where("id", FilterOp::kIn, {}, values)));
        ASSERT_EQ(ids.size(), 40u) << k;
        EXPECT_EQ(ids.front(), 1);
        EXPECT_EQ(ids.back(), 40);
        EXPECT_EQ(db_->Count("items", {Filter{"id", FilterOp::kIn, {}, values}}), 40);
    }
    StatementCacheStats after = db_->statement_cache();
    EXPECT_LE(after.statements, before.statements + 1);  // the Count statement is new; no statement per length
    EXPECT_LE(after.bytes, before.bytes + 64 * 1024);

    // Past SQLite's limit of bound variables (250,000 in Debian's build), which the inline form hit with a 500.
    std::vector<Value> huge(300000, Value(5));
    huge.push_back(Value(1999));
    EXPECT_THAT(Ids(db_->List("items", Where("id", FilterOp::kIn, {}, huge))), ElementsAre(5, 1999));
    EXPECT_LE(db_->statement_cache().statements, after.statements);
}

// The one-parameter form against the inline form, list by list, on the same file: same rows. Integer and text
// columns, with values of every kind: the column's affinity converts text digits for an integer column and numbers
// for a text column, and a null in the list matches nothing, in both forms.
TEST_F(QuerySafetyTest, TheOneParameterFormMatchesExactlyAsTheInlineForm) {
    db_->Insert("items", {{"t", "7"}, {"n", 7}, {"r", 1.5}, {"b", true}});             // 2001
    db_->Insert("items", {{"t", "a\0b"s}, {"n", Value()}, {"r", 7.0}, {"b", false}});  // 2002
    db_->Insert("items", {{"t", "1.5"}, {"n", -3}, {"r", Value()}});                   // 2003
    db_->Insert("items", {{"t", Value()}, {"n", 0}, {"r", 0.0}});                      // 2004
    db_->Insert("items", {{"t", "É"}, {"n", 1}, {"r", -2.5}});                         // 2005
    auto inline_db = OpenItems(dir_.File("items.db"), 1000000);
    auto param_db = OpenItems(dir_.File("items.db"), 0);
    std::vector<std::vector<Value>> lists = {
        {Value(7)},
        {Value("7")},
        {Value(7.0)},
        {Value(1.5), Value("1.5")},
        {Value(true)},
        {Value(false), Value(0)},
        {Value()},
        {Value(), Value(7)},
        {Value("a\0b"s), Value("a")},
        {Value("É"), Value("é")},
        {Value(-3), Value("-3"), Value(" 7"), Value("7 "), Value("0x7")},
        {Value(2001), Value(2002), Value(2002), Value(9999), Value()},
    };
    for (const char* field : {"id", "t", "n", "r", "b"}) {
        for (const auto& list : lists) {
            Query q = Where(field, FilterOp::kIn, {}, list);
            std::vector<std::int64_t> want = Ids(inline_db->List("items", q));
            std::string what = std::string(field) + " in list #" + std::to_string(&list - &lists[0]);
            EXPECT_EQ(Ids(param_db->List("items", q)), want) << what;
            EXPECT_EQ(param_db->Count("items", q.filters), static_cast<std::int64_t>(want.size())) << what;
            EXPECT_EQ(Ids(db_->List("items", q)), want) << what;  // the default, whichever form it picks
        }
    }
    // A few answers spelled out, so that both forms are not merely equally wrong.
    EXPECT_THAT(Ids(param_db->List("items", Where("t", FilterOp::kIn, {}, {Value(7)}))), ElementsAre(2001));
    EXPECT_THAT(Ids(param_db->List("items", Where("n", FilterOp::kIn, {}, {Value("7"), Value()}))), ElementsAre(2001));
    EXPECT_THAT(Ids(param_db->List("items", Where("t", FilterOp::kIn, {}, {Value("a\0b"s)}))), ElementsAre(2002));
    EXPECT_THAT(Ids(param_db->List("items", Where("t", FilterOp::kIn, {}, {Value("a")}))), ElementsAre());
    EXPECT_THAT(Ids(param_db->List("items", Where("r", FilterOp::kIn, {}, {Value(7), Value("1.5")}))),
                ElementsAre(2001, 2002));
    EXPECT_THAT(Ids(param_db->List("items", Where("b", FilterOp::kIn, {}, {Value(true)}))), ElementsAre(2001));
    EXPECT_THAT(Ids(param_db->List("items", Where("id", FilterOp::kIn, {}, {Value()}))), ElementsAre());
    EXPECT_THAT(Ids(param_db->List("items", Where("id", FilterOp::kIn, {}, {}))), ElementsAre());
}

TEST_F(QuerySafetyTest, TheStatementCacheStaysWithinItsByteBudget) {
    constexpr std::size_t kBudget = 256 * 1024;
    auto db = OpenItems(dir_.File("items.db"), 8, kBudget);
    // The writer's statements (migrations) are cached too, on their own connection with its own budget.
    const std::size_t writer_bytes = db->statement_cache().bytes;
    // Queries of every shape from 1 to 300 conditions: each is a statement of its own (the bigger ones tens of KB).
    std::size_t largest = 0;
    for (int k = 1; k <= 300; ++k) {
        Query q;
        for (int i = 0; i < k; ++i) q.filters.push_back(Filter{"n", FilterOp::kNe, Value(i), {}});
        q.filters.push_back(Filter{"id", FilterOp::kLte, Value(k + 300), {}});
        std::size_t want = 0;  // `n IS NOT i` keeps null n; rows j <= k + 300 with n = j >= k or n null (j % 7 == 0)
        for (int j = 1; j <= k + 300; ++j) want += (j % 7 == 0 || j >= k) ? 1 : 0;
        ASSERT_EQ(db->List("items", q).size(), want) << k;
        StatementCacheStats stats = db->statement_cache();
        largest = std::max(largest, stats.bytes);
        ASSERT_LE(stats.bytes, writer_bytes + kBudget) << k;
        ASSERT_LE(stats.statements, db->options().statement_cache_size) << k;
    }
    EXPECT_GT(largest, writer_bytes + kBudget / 2);  // the budget was what held it back
    // A statement larger than an eighth of the budget is used, then finalized: nothing of it stays.
    Query big;
    for (int i = 0; i < 900; ++i) big.filters.push_back(Filter{"t", FilterOp::kNe, Value("x" + std::to_string(i)), {}});
    StatementCacheStats before = db->statement_cache();
    EXPECT_EQ(db->Count("items", big.filters), 2000);
    EXPECT_LE(db->statement_cache().bytes, before.bytes);
}

TEST_F(QuerySafetyTest, ErrorsQuoteAtMostAFewHundredBytesOfSql) {
    // 2,000 conditions: SQLite refuses the statement (expression tree too deep); its SQL is ~70 KB.
    Query deep;
    for (int i = 0; i < 2000; ++i) deep.filters.push_back(Filter{"n", FilterOp::kNe, Value(i), {}});
    try {
        db_->List("items", deep);
        FAIL() << "expected SQLite to refuse the statement";
    } catch (const StorageError& e) {
        std::string what = e.what();
        EXPECT_LT(what.size(), 500u) << what.substr(0, 1000);
        EXPECT_THAT(what, HasSubstr("... ("));
        EXPECT_THAT(what, HasSubstr("bytes)"));
    }
    try {
        db_->ExecuteWrite("UPDATE items SET t = 'x' WHERE " + std::string(100000, '(') + "1");
        FAIL() << "expected a syntax error";
    } catch (const StorageError& e) {
        EXPECT_LT(std::string(e.what()).size(), 500u);
    }
}

// The same filters through SQL and through RowMatches, over the same rows: identical results.
class TextLookupAgreementTest : public ::testing::Test {
protected:
    testing::TempDir dir_;
};

TEST_F(TextLookupAgreementTest, SqlAndRowMatchesGiveTheSameRows) {
    auto db = OpenItems(dir_.File("items.db"));
    // clang-format off
    const std::vector<std::string> texts = {
        "", "a", "A", "abc", "ABC", "aBc", "a\0b"s, "a\0"s, "\0"s, "\0abc"s, "ab\0c"s, "AB\0C"s, "x\0%"s, "100%",
        "10_0", "100", "back\\slash", "%", "_", "\\", "%_\\", "a%c", "a_c", "é", "É", "éa", "Éa", "straße", "STRASSE",
        "日本語", "x\0日本"s, "null", "1", "1.5", "1.0", "Inf", "true", " a", "a "};
    const std::vector<Value> numbers = {Value(0), Value(1), Value(-1), Value(15), Value(100), Value(123456789),
                                        Value(std::int64_t{-9223372036854775807} - 1)};
    const std::vector<double> reals = {0.0, 1.0, -1.0, 1.5, 0.1, 2.5e-7, 1e-5, 0.0001, 0.001234, 100.0, 1e14, 1e15,
                                       123456789012345.0, 1234567890123456.0, 1e20, -3.25e-30, 3.14159265358979,
                                       2.0 / 3.0, 1e100, 1e300, 12.5, 99.99};
    // clang-format on
    std::size_t rows = std::max({texts.size(), numbers.size(), reals.size()});
    for (std::size_t i = 0; i < rows; ++i) {
        db->Insert("items", {{"t", i < texts.size() ? Value(texts[i]) : Value()},
                             {"n", i < numbers.size() ? numbers[i] : Value()},
                             {"r", i < reals.size() ? Value(reals[i]) : Value()},
                             {"b", i % 3 == 2 ? Value() : Value(i % 3 == 1)}});
    }
    db->Insert("items", {});  // a row of nulls
    const Schema& schema = db->Model("items");
    std::vector<Row> all = db->List("items", Query{});

    std::vector<Value> needles = {Value(), Value(1), Value(0), Value(-1), Value(1.5), Value(true), Value(false)};
    for (const auto& t : texts) needles.emplace_back(t);
    // clang-format off
    const std::vector<std::string> extras = {
        "b", "B", "C", "\0c"s, "0", "00", "e+", "e-0", ".", "1.", ".0", "5e", "-", "In", "É", "é", "\xc3", "ß", "SS",
        "日", "x\0"s, "\\s", "a%", "%c", "_c", "1e+20", "0.1", "2.5e-07", "1.0e+15", "123456789012345.0",
        "1.23456789012346e+15", "0.666666666666667", "12.5"};
    // clang-format on
    for (const auto& extra : extras) needles.emplace_back(extra);
    int compared = 0, matched = 0;
    std::vector<std::string> mismatches;
    for (const char* field : {"t", "n", "r", "b"}) {
        for (FilterOp op : {FilterOp::kContains, FilterOp::kIContains, FilterOp::kStartsWith, FilterOp::kExact,
                            FilterOp::kNe, FilterOp::kLt, FilterOp::kGte}) {
            bool text_lookup = op == FilterOp::kContains || op == FilterOp::kIContains || op == FilterOp::kStartsWith;
            for (const auto& needle : needles) {
                // Comparisons take operands of the field's kind, as requests' filters are coerced to it (RowMatches
                // does not apply SQLite's column affinity to an operand of another kind: "1" = 1 in a text column).
                bool text_field = field == std::string("t");
                if (!text_lookup && !needle.IsNull() && (needle.kind() == Value::Kind::kText) != text_field) continue;
                std::vector<Filter> filters = {Filter{field, op, needle, {}}};
                std::vector<std::int64_t> in_memory;
                for (const auto& row : all) {
                    if (RowMatches(schema, row, filters)) in_memory.push_back(row[0].AsInteger());
                }
                Query q;
                q.filters = filters;
                std::vector<std::int64_t> in_sql = Ids(db->List("items", q));
                if (in_sql != in_memory) {
                    std::string text =
                        std::string(field) + "__" + std::string(FilterOpName(op)) + " " + needle.DebugString();
                    for (char& c : text) c = c == '\0' ? '0' : c;  // printable: NUL shown as 0
                    mismatches.push_back(text);
                }
                ++compared;
                matched += in_sql.empty() ? 0 : 1;
            }
        }
    }
    EXPECT_THAT(mismatches, ::testing::IsEmpty()) << mismatches.size() << " filters of " << compared << " disagree";
    EXPECT_GT(matched, compared / 4);  // the comparisons are not all of empty results
}

// A few outcomes spelled out: a NUL is an ordinary character, wildcards are literal, icontains folds ASCII only.
TEST_F(TextLookupAgreementTest, NulWildcardsCaseAndNonAscii) {
    auto db = OpenItems(dir_.File("items.db"));
    for (const std::string& t : {"ab\0cd"s, "AB\0CD"s, "100%"s, "10_0"s, "Éa"s, "éa"s, "a\\b"s}) {
        db->Insert("items", {{"t", t}});
    }
    auto ids = [&](FilterOp op, const std::string& needle) { return Ids(db->List("items", Where("t", op, needle))); };
    EXPECT_THAT(ids(FilterOp::kContains, "cd"), ElementsAre(1));
    EXPECT_THAT(ids(FilterOp::kContains, "b\0c"s), ElementsAre(1));
    EXPECT_THAT(ids(FilterOp::kContains, "\0"s), ElementsAre(1, 2));
    EXPECT_THAT(ids(FilterOp::kIContains, "cd"), ElementsAre(1, 2));
    EXPECT_THAT(ids(FilterOp::kIContains, "B\0c"s), ElementsAre(1, 2));
    EXPECT_THAT(ids(FilterOp::kIContains, "x\0"s), ElementsAre());  // the NUL does not end the needle
    EXPECT_THAT(ids(FilterOp::kStartsWith, "ab\0"s), ElementsAre(1));
    EXPECT_THAT(ids(FilterOp::kStartsWith, "ab\0x"s), ElementsAre());
    EXPECT_THAT(ids(FilterOp::kIContains, "0%"), ElementsAre(3));
    EXPECT_THAT(ids(FilterOp::kIContains, "0_"), ElementsAre(4));
    EXPECT_THAT(ids(FilterOp::kStartsWith, "10%"), ElementsAre());
    EXPECT_THAT(ids(FilterOp::kContains, "\\"), ElementsAre(7));
    EXPECT_THAT(ids(FilterOp::kIContains, "éA"), ElementsAre(6));  // É and é are different letters to lower()
    EXPECT_THAT(ids(FilterOp::kIContains, "A"), ElementsAre(1, 2, 5, 6, 7));
    EXPECT_THAT(ids(FilterOp::kStartsWith, ""), ElementsAre(1, 2, 3, 4, 5, 6, 7));
}

}  // namespace
}  // namespace syncline::storage
