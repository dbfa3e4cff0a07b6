// Coalesce (row_event.hpp): a batch of captured changes becomes one event per row, in version order, with the state
// before the batch's first change and after its last.

#include <syncline/observer/row_event.hpp>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace syncline::observer {
namespace {

ChangeEvent Change(std::int64_t seq, const std::string& table, Value pk, ChangeOp op,
                   std::optional<std::string> old_json = std::nullopt, std::optional<Row> row = std::nullopt) {
    ChangeEvent change;
    change.seq = seq;
    change.table = table;
    change.pk = std::move(pk);
    change.op = op;
    change.old_json = std::move(old_json);
    change.row = std::move(row);
    return change;
}

Row Post(std::int64_t id, const std::string& title) { return {Value(id), Value(title)}; }

TEST(CoalesceTest, OneEventPerRowWithTheFirstOldStateTheLastRowAndTheLastSeqAsVersion) {
    std::vector<ChangeEvent> changes;
    changes.push_back(Change(10, "posts", Value(1), ChangeOp::kUpdate, R"({"id":1,"title":"a"})", Post(1, "b")));
    changes.push_back(Change(11, "posts", Value(2), ChangeOp::kUpdate, R"({"id":2,"title":"x"})", Post(2, "y")));
    changes.push_back(Change(12, "posts", Value(1), ChangeOp::kUpdate, R"({"id":1,"title":"b"})", Post(1, "c")));
    std::vector<RowEvent> events = Coalesce(std::move(changes));
    ASSERT_EQ(events.size(), 2u);
    // Ordered by version: row 2 (11) before row 1 (12), though row 1 changed first.
    EXPECT_EQ(events[0].pk, Value(2));
    EXPECT_EQ(events[0].version, 11);
    EXPECT_EQ(events[1].pk, Value(1));
    EXPECT_EQ(events[1].version, 12);
    EXPECT_EQ(events[1].table, "posts");
    EXPECT_EQ(events[1].old_json, std::optional<std::string>(R"({"id":1,"title":"a"})"));
    EXPECT_EQ(events[1].row, std::optional<Row>(Post(1, "c")));
}

TEST(CoalesceTest, AnInsertThenUpdatesIsACreationWithTheFinalRow) {
    std::vector<ChangeEvent> changes;
    changes.push_back(Change(5, "posts", Value(3), ChangeOp::kInsert, std::nullopt, Post(3, "draft")));
    changes.push_back(Change(6, "posts", Value(3), ChangeOp::kUpdate, R"({"id":3,"title":"draft"})", Post(3, "v2")));
    std::vector<RowEvent> events = Coalesce(std::move(changes));
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].version, 6);
    EXPECT_FALSE(events[0].old_json);  // nobody saw the row before: a create
    EXPECT_EQ(events[0].row, std::optional<Row>(Post(3, "v2")));
}

TEST(CoalesceTest, AnUpdateThenADeleteIsADeletionOfTheStateBeforeTheBatch) {
    std::vector<ChangeEvent> changes;
    changes.push_back(Change(7, "posts", Value(4), ChangeOp::kUpdate, R"({"id":4,"title":"old"})", Post(4, "new")));
    changes.push_back(Change(8, "posts", Value(4), ChangeOp::kDelete, R"({"id":4,"title":"new"})"));
    std::vector<RowEvent> events = Coalesce(std::move(changes));
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].version, 8);
    EXPECT_EQ(events[0].old_json, std::optional<std::string>(R"({"id":4,"title":"old"})"));
    EXPECT_FALSE(events[0].row);
}

// The row existed between two commits: a client may have read it and subscribed (issue 11: dcrf-client's subscribe
// and delete, on another process than the create, lost the delete push whenever the relay read both in one batch).
// Its delete is published, with the image it was deleted in.
TEST(CoalesceTest, ARowCreatedAndDeletedWithinTheBatchGivesItsDelete) {
    std::vector<ChangeEvent> changes;
    changes.push_back(Change(1, "posts", Value(9), ChangeOp::kInsert, std::nullopt, Post(9, "brief")));
    changes.push_back(Change(2, "posts", Value(9), ChangeOp::kDelete, R"({"id":9,"title":"brief"})"));
    changes.push_back(Change(3, "posts", Value(8), ChangeOp::kInsert, std::nullopt, Post(8, "stays")));
    std::vector<RowEvent> events = Coalesce(std::move(changes));
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[0].pk, Value(9));
    EXPECT_EQ(events[0].version, 2);
    EXPECT_FALSE(events[0].row);
    EXPECT_EQ(events[0].old_json, std::optional<std::string>(R"({"id":9,"title":"brief"})"));
    EXPECT_EQ(events[1].pk, Value(8));
    EXPECT_EQ(events[1].version, 3);
}

// A write that changes the key is captured as the old key's delete and the new key's insert (the capture triggers):
// two rows, each coalesced on its own; a key changed and changed back is an update of the first key.
TEST(CoalesceTest, KeyChangesAreADeleteOfTheOldKeyAndACreateOfTheNewOne) {
    std::vector<ChangeEvent> changes;
    changes.push_back(Change(20, "posts", Value(1), ChangeOp::kDelete, R"({"id":1,"title":"t"})"));
    changes.push_back(Change(21, "posts", Value(5), ChangeOp::kInsert, std::nullopt, Post(5, "t")));
    std::vector<RowEvent> moved = Coalesce(changes);
    ASSERT_EQ(moved.size(), 2u);
    EXPECT_EQ(moved[0].pk, Value(1));
    EXPECT_FALSE(moved[0].row);
    EXPECT_TRUE(moved[0].old_json);
    EXPECT_EQ(moved[1].pk, Value(5));
    EXPECT_FALSE(moved[1].old_json);
    EXPECT_EQ(moved[1].row, std::optional<Row>(Post(5, "t")));

    changes.push_back(Change(22, "posts", Value(5), ChangeOp::kDelete, R"({"id":5,"title":"t"})"));
    changes.push_back(Change(23, "posts", Value(1), ChangeOp::kInsert, std::nullopt, Post(1, "t")));
    std::vector<RowEvent> back = Coalesce(std::move(changes));
    ASSERT_EQ(back.size(), 2u);  // key 5 was created and deleted within the batch: its delete
    EXPECT_EQ(back[0].pk, Value(5));
    EXPECT_EQ(back[0].version, 22);
    EXPECT_FALSE(back[0].row);
    EXPECT_EQ(back[1].pk, Value(1));
    EXPECT_EQ(back[1].version, 23);
    EXPECT_EQ(back[1].old_json, std::optional<std::string>(R"({"id":1,"title":"t"})"));
    EXPECT_EQ(back[1].row, std::optional<Row>(Post(1, "t")));
}

TEST(CoalesceTest, RowsAreToldApartByTableAndByTheKeysType) {
    std::vector<ChangeEvent> changes;
    changes.push_back(Change(1, "posts", Value(1), ChangeOp::kUpdate, "{}", Post(1, "a")));
    changes.push_back(Change(2, "tags", Value(1), ChangeOp::kUpdate, "{}", Post(1, "b")));
    changes.push_back(Change(3, "posts", Value(std::string("1")), ChangeOp::kUpdate, "{}", Post(1, "c")));
    changes.push_back(Change(4, "posts", Value(1), ChangeOp::kUpdate, "{}", Post(1, "d")));
    std::vector<RowEvent> events = Coalesce(std::move(changes));
    ASSERT_EQ(events.size(), 3u);
    EXPECT_EQ(events[0].table, "tags");
    EXPECT_EQ(events[1].pk, Value(std::string("1")));
    EXPECT_EQ(events[2].pk, Value(1));
    EXPECT_EQ(events[2].version, 4);
    EXPECT_EQ(events[2].row, std::optional<Row>(Post(1, "d")));
}

TEST(CoalesceTest, AnEmptyBatchGivesNoEvents) { EXPECT_TRUE(Coalesce({}).empty()); }

}  // namespace
}  // namespace syncline::observer
