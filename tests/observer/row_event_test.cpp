// Row events on the bus (row_event.hpp): what the relay encodes is what an observer in another process decodes, what
// is not an event is refused, and the channel layout that says where each row's events travel.

#include <syncline/observer/row_event.hpp>

#include <syncline/core/model/schema.hpp>
#include <syncline/core/consumer/serializer.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <unordered_map>
#include <vector>

namespace syncline::observer {
namespace {

Schema Kinds() {
    return Schema::FromJson("kinds", R"({"fields": {
        "t": {"type": "text", "null": true}, "b": {"type": "boolean", "null": true},
        "r": {"type": "real", "null": true}, "meta": {"type": "json", "null": true}}})");
}

RowEvent EventOf(const Row& row) {
    RowEvent event;
    event.version = 7;
    event.table = "kinds";
    event.pk = row[0];
    event.old_json = R"({"id":3,"t":"old","b":0,"r":1,"meta":"[2]"})";
    event.row = row;
    return event;
}

TEST(RowEventTest, AnEventDecodesToWhatWasEncodedJsonFieldsIncluded) {
    // Found by the event fuzz target (fuzz/corpus/event/json-string-document): a json field whose document is a
    // string that looks like JSON ("[1]", stored as the text "\"[1]\"") was embedded as a document and read back as
    // the text [1]; the push of another process then showed a list where this process showed a string.
    const Schema schema = Kinds();
    const std::unordered_map<std::string, const Schema*> schemas = {{"kinds", &schema}};
    for (const char* meta : {"\"[1]\"", "\"text\"", " [1] ", "12345678901234567890123", "1e2", R"({"a":[1,2]})",
                             "not json", "\"\\u00e9\""}) {
        const Row row = {Value(3), Value("t"), Value(true), Value(2.5), Value(meta)};
        const std::string payload = EncodeEvent(EventOf(row), schema);
        std::optional<RowEvent> decoded = DecodeEvent(payload, schemas);
        ASSERT_TRUE(decoded) << payload;
        EXPECT_EQ(decoded->version, 7);
        EXPECT_EQ(decoded->pk, Value(3));
        ASSERT_TRUE(decoded->row) << payload;
        EXPECT_EQ(*decoded->row, row) << payload;
        EXPECT_EQ(decoded->old_json, EventOf(row).old_json);
        // So a subscriber of another process sees what one of this process sees.
        Serializer serializer(schema, {});
        EXPECT_EQ(serializer.Represent(*decoded->row), serializer.Represent(row)) << meta;
    }
}

TEST(RowEventTest, RowsWithEmbeddedJsonFieldsStillDecode) {
    // The form published before rows travelled in the captured form: json fields embedded as documents.
    const Schema schema = Kinds();
    const std::unordered_map<std::string, const Schema*> schemas = {{"kinds", &schema}};
    std::optional<RowEvent> decoded = DecodeEvent(
        R"({"v":3,"t":"kinds","k":1,"o":null,"r":{"id":1,"t":"x","b":1,"r":2,"meta":{"a": [1, 2]}}})", schemas);
    ASSERT_TRUE(decoded && decoded->row);
    EXPECT_EQ(*decoded->row, (Row{Value(1), Value("x"), Value(true), Value(2.0), Value(R"({"a":[1,2]})")}));
    EXPECT_FALSE(DecodeEvent(R"({"v":3,"t":"other","k":1,"o":null,"r":null})", schemas));
}

Schema Posts() {
    return Schema::FromJson("posts", R"({"fields": {"id": {"type": "integer", "primary_key": true},
                                                    "title": {"type": "text"}}})");
}

Schema Slugs() {
    return Schema::FromJson("slugs", R"({"fields": {"slug": {"type": "text", "primary_key": true},
                                                    "n": {"type": "integer", "null": true}}})");
}

TEST(RowEventTest, CreatesDeletesAndTextKeysRoundTrip) {
    const Schema posts = Posts();
    const Schema slugs = Slugs();
    const std::unordered_map<std::string, const Schema*> schemas = {{"posts", &posts}, {"slugs", &slugs}};

    RowEvent created;
    created.version = 41;
    created.table = "posts";
    created.pk = Value(5);
    created.row = Row{Value(5), Value("hello \"world\"")};
    const std::string created_payload = EncodeEvent(created, posts);
    EXPECT_EQ(created_payload, R"({"v":41,"t":"posts","k":5,"o":null,"r":{"id":5,"title":"hello \"world\""}})");
    std::optional<RowEvent> decoded = DecodeEvent(created_payload, schemas);
    ASSERT_TRUE(decoded);
    EXPECT_EQ(decoded->version, 41);
    EXPECT_EQ(decoded->table, "posts");
    EXPECT_EQ(decoded->pk, Value(5));
    EXPECT_FALSE(decoded->old_json);
    EXPECT_EQ(decoded->row, created.row);

    RowEvent deleted;
    deleted.version = 42;
    deleted.table = "slugs";
    deleted.pk = Value(std::string("a/b"));
    deleted.old_json = R"({"slug":"a/b","n":3})";
    decoded = DecodeEvent(EncodeEvent(deleted, slugs), schemas);
    ASSERT_TRUE(decoded);
    EXPECT_EQ(decoded->version, 42);
    EXPECT_EQ(decoded->pk, Value(std::string("a/b")));
    EXPECT_EQ(decoded->old_json, deleted.old_json);
    EXPECT_FALSE(decoded->row);
}

// Anyone who can reach Redis can publish: a payload that is not an event, or not one of a declared table, is refused.
TEST(RowEventTest, MalformedPayloadsAreRefused) {
    const Schema posts = Posts();
    const std::unordered_map<std::string, const Schema*> schemas = {{"posts", &posts}};
    ASSERT_TRUE(DecodeEvent(R"({"v":1,"t":"posts","k":1,"o":null,"r":{"id":1,"title":"x"}})", schemas));
    const std::string too_deep = R"({"v":1,"t":"posts","k":1,"o":null,"r":{"id":1,"title":)" + std::string(10000, '[') +
                                 std::string(10000, ']') + "}}";
    for (const std::string& payload : std::vector<std::string>{
             "",
             "not json",
             "[1,2]",
             R"("event")",
             R"({"v":1,"t":"posts","k":1,"o":null,"r":{"id":1,"title":"x"})",  // truncated
             R"({"t":"posts","k":1,"o":null,"r":null})",                       // no version
             R"({"v":"1","t":"posts","k":1,"o":null,"r":null})",               // version not an integer
             R"({"v":1.5,"t":"posts","k":1,"o":null,"r":null})",
             R"({"v":1,"k":1,"o":null,"r":null})",  // no table
             R"({"v":1,"t":7,"k":1,"o":null,"r":null})",
             R"({"v":1,"t":"users","k":1,"o":null,"r":null})",     // a table not declared here
             R"({"v":1,"t":"posts","o":null,"r":null})",           // no key
             R"({"v":1,"t":"posts","k":null,"o":null,"r":null})",  // a key that is no key
             R"({"v":1,"t":"posts","k":[1],"o":null,"r":null})",
             R"({"v":1,"t":"posts","k":1,"r":null})",  // no old state
             R"({"v":1,"t":"posts","k":1,"o":null})",  // no new state
             too_deep,
         }) {
        EXPECT_FALSE(DecodeEvent(payload, schemas)) << payload.substr(0, 100);
    }
}

TEST(ChannelLayoutTest, ARowsChannelIsPrefixTableAndAStableShardOfItsKey) {
    const ChannelLayout layout("app", 4);
    EXPECT_EQ(layout.shards(), 4u);
    // FNV-1a of the key's text modulo the shard count: the same in every process and build.
    EXPECT_EQ(layout.ForRow("posts", Value(1)), "app:posts:2");
    EXPECT_EQ(layout.ForRow("posts", Value(2)), "app:posts:3");
    EXPECT_EQ(layout.ForRow("posts", Value(3)), "app:posts:0");
    EXPECT_EQ(layout.ForRow("posts", Value(4)), "app:posts:1");
    // A text key hashes its text (not its quoted form), so text "1" shares integer 1's shard.
    EXPECT_EQ(layout.ForRow("slugs", Value(std::string("abc"))), "app:slugs:1");
    EXPECT_EQ(layout.ForRow("slugs", Value(std::string("1"))), "app:slugs:2");
    EXPECT_EQ(ChannelLayout("app", 1000).ForRow("posts", Value(1)), "app:posts:238");
}

TEST(ChannelLayoutTest, ATableHasOneChannelPerShardAndZeroShardsMeansOne) {
    EXPECT_EQ(ChannelLayout("app", 3).ForTable("posts"),
              (std::vector<std::string>{"app:posts:0", "app:posts:1", "app:posts:2"}));
    const ChannelLayout one("other", 0);
    EXPECT_EQ(one.shards(), 1u);
    EXPECT_EQ(one.ForTable("posts"), std::vector<std::string>{"other:posts:0"});
    EXPECT_EQ(one.ForRow("posts", Value(12345)), "other:posts:0");
    // Every row's channel is one of its table's.
    const ChannelLayout layout("app", 7);
    const std::vector<std::string> all = layout.ForTable("posts");
    for (std::int64_t id = 1; id <= 50; ++id) {
        EXPECT_NE(std::find(all.begin(), all.end(), layout.ForRow("posts", Value(id))), all.end()) << id;
    }
}

}  // namespace
}  // namespace syncline::observer
