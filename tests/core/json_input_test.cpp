// Untrusted JSON input (json_input.hpp): iterative, depth-limited parsing that refuses text that is not Unicode, and
// the UTF-8 checks the reply path relies on.

#include <syncline/core/protocol/json_input.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace syncline {
namespace {

using ::testing::HasSubstr;

std::string Nested(std::size_t depth, const std::string& inner = "") {
    return std::string(depth, '[') + inner + std::string(depth, ']');
}

TEST(JsonInputTest, ParsesOrdinaryDocuments) {
    rapidjson::Document doc;
    ASSERT_FALSE(ParseUntrustedJson(doc, R"({"a": [1, 2.5, "x", null, true, {"b": -3}], "c": "\u00e9\ud83d\ude00"})"));
    ASSERT_TRUE(doc.IsObject());
    EXPECT_EQ(doc["a"].Size(), 6u);
    EXPECT_EQ(doc["a"][5]["b"].GetInt(), -3);
    EXPECT_EQ(std::string(doc["c"].GetString()), "\xC3\xA9\xF0\x9F\x98\x80");
    // A document is reusable: a second parse replaces the first.
    ASSERT_FALSE(ParseUntrustedJson(doc, "[1]"));
    EXPECT_TRUE(doc.IsArray());
}

TEST(JsonInputTest, DepthIsLimitedAndTheLimitIsExact) {
    rapidjson::Document doc;
    EXPECT_FALSE(ParseUntrustedJson(doc, Nested(64)));
    JsonInputError error = ParseUntrustedJson(doc, Nested(65));
    ASSERT_TRUE(error);
    EXPECT_EQ(error.Describe(), "nesting too deep");
    EXPECT_TRUE(doc.IsNull());
    EXPECT_FALSE(ParseUntrustedJson(doc, Nested(3), 3));
    EXPECT_TRUE(ParseUntrustedJson(doc, Nested(4), 3));
    // Objects count as arrays do.
    EXPECT_TRUE(ParseUntrustedJson(doc, R"({"a":{"b":{"c":{}}}})", 3));
}

TEST(JsonInputTest, HugeNestingNeitherRecursesNorCrashes) {
    // About 87,000 levels overflowed an 8 MB stack in RapidJSON's recursive parse (issue 9, finding 1).
    const std::string frame = R"({"action":"list","request_id":)" + Nested(90000) + "}";
    rapidjson::Document doc;
    JsonInputError error = ParseUntrustedJson(doc, frame);
    ASSERT_TRUE(error);
    EXPECT_EQ(error.Describe(), "nesting too deep");
    // Unclosed: the reader stops at the limit, long before the end.
    EXPECT_EQ(ParseUntrustedJson(doc, std::string(1000000, '[')).Describe(), "nesting too deep");
    // Within the largest configurable limit, deep documents parse (and are destroyed) without trouble.
    EXPECT_FALSE(ParseUntrustedJson(doc, Nested(kMaxJsonDepthLimit), kMaxJsonDepthLimit));
}

TEST(JsonInputTest, LoneSurrogatesAreRefusedNamingWhereTheyAre) {
    rapidjson::Document doc;
    EXPECT_EQ(ParseUntrustedJson(doc, R"({"action":"create","data":{"title":"\udc00"}})").Describe(),
              R"(text is not valid Unicode in "data.title")");
    EXPECT_EQ(ParseUntrustedJson(doc, R"({"request_id":"\udc00"})").Describe(),
              R"(text is not valid Unicode in "request_id")");
    EXPECT_EQ(ParseUntrustedJson(doc, R"({"a":[1,{"b":["x","\udfff"]}]})").Describe(),
              R"(text is not valid Unicode in "a[1].b[1]")");
    EXPECT_EQ(ParseUntrustedJson(doc, R"({"k\udc00":1})").Describe(),
              "text is not valid Unicode in \"k\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");
    EXPECT_EQ(ParseUntrustedJson(doc, R"("\udc00")").Describe(), R"x(text is not valid Unicode in "(top level)")x");
    // A high surrogate without its low half is a syntax error already; a proper pair is fine.
    EXPECT_TRUE(ParseUntrustedJson(doc, R"(["\ud800"])"));
    EXPECT_FALSE(ParseUntrustedJson(doc, R"(["\ud800\udc00"])"));
    // Raw bytes that are not UTF-8 are refused too (RapidJSON's encoding check).
    EXPECT_TRUE(ParseUntrustedJson(doc, "[\"\xED\xB0\x80\"]"));
    EXPECT_TRUE(ParseUntrustedJson(doc, "[\"\xC0\xAF\"]"));
}

TEST(JsonInputTest, SyntaxErrorsCarryTheirOffset) {
    rapidjson::Document doc;
    JsonInputError error = ParseUntrustedJson(doc, "{oops");
    ASSERT_TRUE(error);
    EXPECT_TRUE(error.syntax);
    EXPECT_EQ(error.offset, 1u);
    EXPECT_EQ(error.Describe(), "Missing a name for object member. (at offset 1)");
    EXPECT_THAT(ParseUntrustedJson(doc, "[1] [2]").Describe(), HasSubstr("root must not be followed"));
    EXPECT_TRUE(ParseUntrustedJson(doc, "[1, /* c */ 2]"));
    EXPECT_FALSE(ParseUntrustedJson(doc, "[1, /* c */ 2]", kDefaultMaxJsonDepth, true));
}

TEST(JsonInputTest, ANulByteDoesNotEndTheText) {
    // Found by the json fuzz target (fuzz/corpus/json/nul-after-root): RapidJSON reads a NUL byte as the end of the
    // input, so anything after one was ignored and the text accepted.
    using namespace std::string_literals;
    rapidjson::Document doc;
    JsonInputError error = ParseUntrustedJson(doc, "88\n\0"s);
    ASSERT_TRUE(error);
    EXPECT_TRUE(error.syntax);
    EXPECT_EQ(error.offset, 3u);
    EXPECT_THAT(error.Describe(), HasSubstr("root must not be followed"));
    EXPECT_TRUE(doc.IsNull());
    EXPECT_TRUE(ParseUntrustedJson(doc, "{\"action\":\"list\"}\0{\"action\":\"delete\",\"pk\":1}"s));
    EXPECT_TRUE(ParseUntrustedJson(doc, "[1] // comment\0[2]"s, kDefaultMaxJsonDepth, true));
    EXPECT_TRUE(ParseUntrustedJson(doc, "\0"s));
    // Whitespace and comments after the document are still fine.
    EXPECT_FALSE(ParseUntrustedJson(doc, "[1] \n\t"));
    EXPECT_FALSE(ParseUntrustedJson(doc, "[1] // comment", kDefaultMaxJsonDepth, true));
}

TEST(JsonInputTest, NumbersAreReadExactly) {
    // Found by the frame fuzz target (fuzz/corpus/frame/request-id-precision): a number with a long mantissa was read
    // to a neighbouring double, and a request_id came back as another number.
    for (const char* number :
         {"111111111111111111111111111111111111111000000000000207729038", "0.1000000000000000055511151231257827",
          "2.2250738585072011e-308", "18446744073709551616", "-9223372036854775809", "4.9406564584124654e-324"}) {
        rapidjson::Document doc;
        ASSERT_FALSE(ParseUntrustedJson(doc, std::string("[") + number + "]")) << number;
        ASSERT_TRUE(doc[0].IsDouble()) << number;
        EXPECT_EQ(doc[0].GetDouble(), std::strtod(number, nullptr)) << number;
    }
    // Found next (fuzz/corpus/frame/zero-with-exponent, UBSan in RapidJSON's full-precision conversion): a zero with
    // an exponent was read as garbage, e.g. 0e-24 as -2.19e-193.
    rapidjson::Document doc;
    ASSERT_FALSE(ParseUntrustedJson(doc, "[0e-24, 0.0e-30, -0e-300, 0e-325, 1e-400, -1e-400, 0.000e-23]"));
    for (const auto& zero : doc.GetArray()) {
        ASSERT_TRUE(zero.IsDouble());
        EXPECT_EQ(zero.GetDouble(), 0.0);
    }
    // Integers keep RapidJSON's types: int64 when negative, uint64 otherwise, as far as they fit.
    ASSERT_FALSE(ParseUntrustedJson(doc, "[-9223372036854775808, 18446744073709551615, -0, 7, 7.0]"));
    EXPECT_TRUE(doc[0].IsInt64() && doc[0].GetInt64() == INT64_MIN);
    EXPECT_TRUE(doc[1].IsUint64() && !doc[1].IsInt64() && doc[1].GetUint64() == UINT64_MAX);
    EXPECT_TRUE(doc[2].IsInt() && doc[2].GetInt() == 0);
    EXPECT_TRUE(doc[3].IsInt() && doc[3].GetInt() == 7);
    EXPECT_TRUE(doc[4].IsDouble() && doc[4].GetDouble() == 7.0);
    // Too big for a double: refused, never infinity (which no reply could carry).
    EXPECT_EQ(ParseUntrustedJson(doc, "[1.7976931348623159e308]").Describe(), "Number too big to be stored in double.");
    EXPECT_TRUE(ParseUntrustedJson(doc, "[1e400]"));
}

TEST(JsonInputTest, Utf8ValidationFollowsTheUnicodeTable) {
    EXPECT_TRUE(IsValidUtf8(""));
    EXPECT_TRUE(IsValidUtf8("plain ascii that is longer than eight bytes"));
    EXPECT_TRUE(IsValidUtf8("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xF4\x8F\xBF\xBF"));
    EXPECT_TRUE(IsValidUtf8(std::string("nul\0inside", 10)));
    EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));              // overlong
    EXPECT_FALSE(IsValidUtf8("\xE0\x80\xAF"));          // overlong
    EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));          // surrogate
    EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));      // above U+10FFFF
    EXPECT_FALSE(IsValidUtf8("abc\xC3"));               // truncated
    EXPECT_FALSE(IsValidUtf8("abcdefgh\x80"));          // lone continuation after a fast ASCII run
    EXPECT_FALSE(IsValidUtf8("\xFF"));
}

TEST(JsonInputTest, InvalidTextIsRepairedWithOneReplacementPerMaximalSubpart) {
    const std::string r = "\xEF\xBF\xBD";
    EXPECT_EQ(ToValidUtf8("ok \xC3\xA9"), "ok \xC3\xA9");
    EXPECT_EQ(ToValidUtf8("a\xED\xB0\x80z"), "a" + r + r + r + "z");  // a CESU surrogate: three ill-formed bytes
    EXPECT_EQ(ToValidUtf8("a\xE2\x82z"), "a" + r + "z");               // a truncated sequence: one
    EXPECT_EQ(ToValidUtf8("\xF0\x9F\x98"), r);
    EXPECT_EQ(ToValidUtf8("\x80\x80"), r + r);
    EXPECT_TRUE(IsValidUtf8(ToValidUtf8("\xF5\xC0\xED\xA0\xE0\x80\xF4\x90")));
}

}  // namespace
}  // namespace syncline
