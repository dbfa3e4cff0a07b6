// Row events on the bus (row_event.hpp): what the relay encodes is what an observer in another process decodes.

#include <syncline/observer/row_event.hpp>

#include <syncline/core/schema.hpp>
#include <syncline/core/serializer.hpp>

#include <gtest/gtest.h>

#include <string>
#include <unordered_map>

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

}  // namespace
}  // namespace syncline::observer
