#include <syncline/storage/backend.hpp>
#include <syncline/test_support/engines.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include "test_db.hpp"

namespace syncline::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

using test_support::Engine;

// Every test runs on both engines (ModelStoreTest.X/Sqlite, ModelStoreTest.X/Postgres).
class ModelStoreTest : public ::testing::TestWithParam<Engine> {
protected:
    void SetUp() override {
        engine_db_ = std::make_unique<test_support::EngineDatabase>(GetParam(), dir_);
        if (!engine_db_->available()) GTEST_SKIP() << test_support::kPgSkipReason;
        BackendOptions options;
        options.database = engine_db_->database();
        db_ = OpenBackend(options, {testing::PostsSchema(), testing::TagsSchema()});
        const char* authors[] = {"alice", "bob", "alice", "carol", "bob"};
        for (int i = 0; i < 5; ++i) {
            db_->Insert("posts", {{"title", "Post " + std::to_string(i + 1)},
                                  {"author", authors[i]},
                                  {"likes", i == 2 ? Value() : Value(i * 10)}});
        }
    }
    std::vector<std::int64_t> Ids(const Query& q) {
        std::vector<std::int64_t> ids;
        for (const auto& row : db_->List("posts", q)) ids.push_back(row[0].AsInteger());
        return ids;
    }
    Query Where(std::string field, FilterOp op, Value value, std::vector<Value> values = {}) {
        Query q;
        q.filters.push_back(Filter{std::move(field), op, std::move(value), std::move(values)});
        return q;
    }
    testing::TempDir dir_;
    std::unique_ptr<test_support::EngineDatabase> engine_db_;
    std::unique_ptr<Backend> db_;
};

TEST_P(ModelStoreTest, InsertReturnsStoredRowWithDefaultsAndKey) {
    Row row = db_->Insert("posts", {{"title", "New"}});
    EXPECT_THAT(row, ElementsAre(Value(6), Value("New"), Value(""), Value(""), Value(), Value(false)));
    EXPECT_EQ(*db_->Get("posts", "id", Value(6)), row);
}

TEST_P(ModelStoreTest, InsertReportsEveryFieldError) {
    try {
        db_->Insert("posts", {{"author", std::string(51, 'x')}, {"likes", "many"}, {"bogus", 1}});
        FAIL();
    } catch (const StorageError& e) {
        EXPECT_EQ(e.kind(), StorageError::Kind::kInvalid);
        EXPECT_THAT(e.field_errors(),
                    ElementsAre(Pair("author", "Ensure this field has no more than 50 characters."),
                                Pair("likes", "A valid integer is required."), Pair("bogus", "Unknown field."),
                                Pair("title", "This field is required.")));
    }
    EXPECT_EQ(db_->Count("posts", {}), 5);
}

TEST_P(ModelStoreTest, UnicodeAndNullRoundTrip) {
    std::string title = "Grüße, 世界 — 🚀 \"quoted\" 'single' \\ back";
    Row row = db_->Insert("posts", {{"title", title}, {"likes", Value()}});
    auto got = db_->Get("posts", "id", row[0]);
    ASSERT_TRUE(got);
    EXPECT_EQ((*got)[1], Value(title));
    EXPECT_EQ((*got)[4], Value());
    EXPECT_TRUE(db_->Get("posts", "title", Value(title)));
}

// SQLite keeps a NUL as any other character; PostgreSQL text cannot hold one, so there the write is refused with DRF's
// message, never stored cut short at the NUL.
TEST_P(ModelStoreTest, ATextWithANulIsKeptWholeOrRefusedNeverCut) {
    const std::string title("a\0b", 3);
    if (GetParam() == Engine::kSqlite) {
        EXPECT_EQ(db_->Insert("posts", {{"title", title}})[1], Value(title));
        return;
    }
    for (int attempt = 0; attempt < 2; ++attempt) {
        try {
            if (attempt == 0) {
                db_->Insert("posts", {{"title", title}});
            } else {
                db_->Patch("posts", Value(1), {{"title", title}});
            }
            FAIL() << "a NUL was accepted";
        } catch (const StorageError& e) {
            EXPECT_EQ(e.kind(), StorageError::Kind::kInvalid);
            EXPECT_THAT(e.field_errors(), ElementsAre(Pair("title", "Null characters are not allowed.")));
        }
    }
    EXPECT_EQ(db_->Count("posts", {}), 5);
    EXPECT_EQ((*db_->Get("posts", "id", Value(1)))[1], Value("Post 1"));
    EXPECT_FALSE(db_->Get("posts", "title", Value(title)));  // a NUL operand matches nothing, and is no error
}

TEST_P(ModelStoreTest, GetByAnyDeclaredFieldAndWrongTypes) {
    EXPECT_EQ((*db_->Get("posts", "title", Value("Post 4")))[0], Value(4));
    EXPECT_FALSE(db_->Get("posts", "id", Value(99)));
    EXPECT_FALSE(db_->Get("posts", "id", Value("abc")));
    EXPECT_THROW(db_->Get("posts", "nope", Value(1)), StorageError);
    EXPECT_THROW(db_->Get("nope", "id", Value(1)), StorageError);
}

TEST_P(ModelStoreTest, EveryFilterOperator) {
    EXPECT_THAT(Ids(Where("author", FilterOp::kExact, "alice")), ElementsAre(1, 3));
    EXPECT_THAT(Ids(Where("author", FilterOp::kNe, "alice")), ElementsAre(2, 4, 5));
    EXPECT_THAT(Ids(Where("likes", FilterOp::kLt, 20)), ElementsAre(1, 2));
    EXPECT_THAT(Ids(Where("likes", FilterOp::kLte, 30)), ElementsAre(1, 2, 4));
    EXPECT_THAT(Ids(Where("likes", FilterOp::kGt, 10)), ElementsAre(4, 5));
    EXPECT_THAT(Ids(Where("likes", FilterOp::kGte, 10)), ElementsAre(2, 4, 5));
    EXPECT_THAT(Ids(Where("author", FilterOp::kIn, {}, {Value("bob"), Value("carol")})), ElementsAre(2, 4, 5));
    EXPECT_THAT(Ids(Where("author", FilterOp::kIn, {}, {})), ElementsAre());
    EXPECT_THAT(Ids(Where("likes", FilterOp::kIsNull, true)), ElementsAre(3));
    EXPECT_THAT(Ids(Where("likes", FilterOp::kIsNull, false)), ElementsAre(1, 2, 4, 5));
    EXPECT_THAT(Ids(Where("likes", FilterOp::kExact, Value())), ElementsAre(3));
    EXPECT_THAT(Ids(Where("author", FilterOp::kContains, "li")), ElementsAre(1, 3));
    EXPECT_THAT(Ids(Where("author", FilterOp::kContains, "LI")), ElementsAre());
    EXPECT_THAT(Ids(Where("author", FilterOp::kIContains, "LI")), ElementsAre(1, 3));
    EXPECT_THAT(Ids(Where("title", FilterOp::kIContains, "%")), ElementsAre());  // wildcards are literal
    EXPECT_THAT(Ids(Where("author", FilterOp::kStartsWith, "ca")), ElementsAre(4));
    Query both = Where("author", FilterOp::kExact, "bob");
    both.filters.push_back(Filter{"likes", FilterOp::kGt, 10, {}});
    EXPECT_THAT(Ids(both), ElementsAre(5));
    EXPECT_EQ(db_->Count("posts", both.filters), 1);
}

TEST_P(ModelStoreTest, OrderingLimitOffset) {
    Query q;
    q.ordering = {OrderBy{"author", false}, OrderBy{"id", true}};
    EXPECT_THAT(Ids(q), ElementsAre(3, 1, 5, 2, 4));
    q.limit = 2;
    q.offset = 1;
    EXPECT_THAT(Ids(q), ElementsAre(1, 5));
    q.limit = 0;
    EXPECT_THAT(Ids(q), ElementsAre());
    Query only_offset;
    only_offset.offset = 3;
    EXPECT_THAT(Ids(only_offset), ElementsAre(4, 5));
}

TEST_P(ModelStoreTest, UndeclaredFieldsAreErrorsNeverSql) {
    Query bad_filter = Where("author\" OR 1=1 --", FilterOp::kExact, "x");
    EXPECT_THROW(db_->List("posts", bad_filter), StorageError);
    Query bad_order;
    bad_order.ordering = {OrderBy{"likes; DROP TABLE posts", false}};
    try {
        db_->List("posts", bad_order);
        FAIL();
    } catch (const StorageError& e) {
        EXPECT_EQ(e.kind(), StorageError::Kind::kSchema);
        EXPECT_THAT(e.what(), HasSubstr("unknown field"));
    }
    // Values are bound, never spliced: a hostile value is just a value.
    EXPECT_THAT(Ids(Where("author", FilterOp::kExact, "x' OR '1'='1")), ElementsAre());
    EXPECT_EQ(db_->Count("posts", {}), 5);
}

TEST_P(ModelStoreTest, UpdatePatchDelete) {
    auto updated = db_->Update("posts", Value(1), {{"title", "Full"}});
    ASSERT_TRUE(updated);
    // Full update: omitted fields fall back to defaults (author, body), or null (likes).
    EXPECT_THAT(*updated, ElementsAre(Value(1), Value("Full"), Value(""), Value(""), Value(), Value(false)));
    try {
        db_->Update("posts", Value(2), {{"author", "z"}});
        FAIL();
    } catch (const StorageError& e) {
        EXPECT_THAT(e.field_errors(), ElementsAre(Pair("title", "This field is required.")));
    }
    auto patched = db_->Patch("posts", Value(2), {{"likes", 7}, {"public", true}});
    ASSERT_TRUE(patched);
    EXPECT_THAT(*patched, ElementsAre(Value(2), Value("Post 2"), Value(""), Value("bob"), Value(7), Value(true)));
    EXPECT_FALSE(db_->Patch("posts", Value(99), {{"likes", 1}}));
    EXPECT_FALSE(db_->Update("posts", Value(99), {{"title", "x"}}));
    EXPECT_TRUE(db_->Delete("posts", Value(2)));
    EXPECT_FALSE(db_->Delete("posts", Value(2)));
    EXPECT_EQ(db_->Count("posts", {}), 4);
}

TEST_P(ModelStoreTest, TransactionCommitsOrRollsBack) {
    {
        auto tx = db_->Begin();
        tx->Insert("posts", {{"title", "in tx"}});
        tx->Patch("posts", Value(1), {{"likes", 100}});
        EXPECT_EQ(tx->Count("posts", {}), 6);  // reads inside see the transaction's writes
        EXPECT_EQ(db_->Count("posts", {}), 5);  // others do not, yet
        tx->Commit();
    }
    EXPECT_EQ(db_->Count("posts", {}), 6);
    {
        auto tx = db_->Begin();
        tx->Delete("posts", Value(1));
    }  // no Commit: rolled back
    EXPECT_TRUE(db_->Get("posts", "id", Value(1)));
    try {
        auto tx = db_->Begin();
        tx->Delete("posts", Value(1));
        throw std::runtime_error("boom");
    } catch (const std::runtime_error&) {
    }
    EXPECT_TRUE(db_->Get("posts", "id", Value(1)));
}

// Backend::RunBatch (what the batch writer runs), on both engines: one transaction, each write in a savepoint.
TEST_P(ModelStoreTest, ABatchCommitsItsWritesTogetherAndOneThatFailsLeavesNothing) {
    ASSERT_TRUE(db_->RunsBatches());
    db_->Insert("tags", {{"slug", "a"}, {"label", "taken"}});
    std::optional<std::int64_t> count_inside;
    std::optional<std::int64_t> count_elsewhere;
    std::vector<BatchedWrite> batch(5);
    batch[0].run = [&] { db_->Insert("posts", {{"title", "first"}}); };
    batch[1].run = [&] {
        // Inside, the write before is seen; from another thread, only what is committed.
        count_inside = db_->Count("posts", {});
        std::thread([&] { count_elsewhere = db_->Count("posts", {}); }).join();
        db_->Patch("posts", Value(1), {{"likes", 77}});
    };
    batch[2].run = [&] {
        db_->Insert("posts", {{"title", "thrown away"}});
        throw std::runtime_error("fails after writing");
    };
    // The database refuses this one (a taken unique label): on PostgreSQL that aborts the transaction until its
    // savepoint is rolled back.
    batch[3].run = [&] { db_->Insert("tags", {{"slug", "b"}, {"label", "taken"}}); };
    batch[4].run = [&] {
        EXPECT_THROW(db_->Begin(), std::logic_error);
        db_->Insert("posts", {{"title", "last"}});
    };
    db_->RunBatch(batch);
    ASSERT_TRUE(count_inside && count_elsewhere);
    EXPECT_EQ(*count_inside, 6);
    EXPECT_EQ(*count_elsewhere, 5);
    EXPECT_FALSE(batch[0].error || batch[1].error || batch[4].error);
    ASSERT_TRUE(batch[2].error && batch[3].error);
    EXPECT_THROW(std::rethrow_exception(batch[2].error), std::runtime_error);
    try {
        std::rethrow_exception(batch[3].error);
    } catch (const StoreError& e) {
        EXPECT_EQ(e.kind(), StoreErrc::kConstraint) << e.what();
    }
    EXPECT_EQ(db_->Count("posts", {}), 7);
    EXPECT_EQ((*db_->Get("posts", "id", Value(1)))[4], Value(77));
    EXPECT_FALSE(db_->Get("posts", "title", Value("thrown away")));
    EXPECT_FALSE(db_->Get("tags", "slug", Value("b")));
    // An open Transaction refuses a batch on its thread.
    auto tx = db_->Begin();
    std::vector<BatchedWrite> more(1);
    more[0].run = [] {};
    EXPECT_THROW(db_->RunBatch(more), std::logic_error);
}

TEST_P(ModelStoreTest, NestedWriteOnTheSameThreadIsRefusedNotDeadlocked) {
    auto tx = db_->Begin();
    EXPECT_THROW(db_->Insert("posts", {{"title", "x"}}), std::logic_error);
    EXPECT_THROW(db_->Begin(), std::logic_error);
    tx->Rollback();
}

TEST_P(ModelStoreTest, ReadsFromManyThreads) {
    std::vector<std::thread> threads;
    std::atomic<int> found{0};
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 200; ++i) {
                if (db_->Get("posts", "id", Value(1 + i % 5))) ++found;
            }
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(found.load(), 800);
}

INSTANTIATE_TEST_SUITE_P(Engines, ModelStoreTest, test_support::AllEngines(), test_support::EngineParamName);

}  // namespace
}  // namespace syncline::storage
