// What the fuzz targets (fuzz/, FUZZING.md) found on the wire, over real websockets: one test per finding, each
// naming the corpus file that holds the input the fuzzer found.

#include <syncline/test_support/server_fixture.hpp>
#include <syncline/test_support/ws_client.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <cstdlib>
#include <string>

namespace syncline {
namespace {

using test_support::WsClient;
using ::testing::HasSubstr;

constexpr const char* kConfig = R"({
  "database": "fuzz.db", "listen": {"host": "127.0.0.1", "port": 0}, "workers": 2,
  "models": {"posts": {"fields": {"title": {"type": "text", "max_length": 100}}}},
  "routes": {"/ws/posts/": {"model": "posts", "mixins": ["list", "create", "delete"]},
             "/ws/": {"streams": {"posts": "/ws/posts/"}}}})";

rapidjson::Document Parse(const std::optional<std::string>& frame) {
    rapidjson::Document d;
    if (frame) d.Parse<rapidjson::kParseFullPrecisionFlag>(frame->c_str());
    return d;
}

// Every test runs on both engines (FuzzFindingsTest.X/Sqlite, .../Postgres).
class FuzzFindingsTest : public test_support::ServerTest, public ::testing::WithParamInterface<test_support::Engine> {
protected:
    void SetUp() override {
        if (!UseEngine(GetParam())) GTEST_SKIP() << test_support::kPgSkipReason;
        StartFromConfig(kConfig);
    }
};

TEST_P(FuzzFindingsTest, ANulByteAfterTheObjectIsRefusedNotIgnored) {
    // fuzz/corpus/json/nul-after-root: RapidJSON reads a NUL byte as the end of the text, so whatever followed one
    // was ignored and the frame ran.
    using namespace std::string_literals;
    auto ws = Connect("/ws/posts/");
    auto reply = Parse(ws->Request("{\"action\":\"create\",\"request_id\":1,\"data\":{\"title\":\"x\"}}\0trailing"s));
    ASSERT_TRUE(reply.IsObject());
    ASSERT_EQ(reply["response_status"].GetInt(), 400);
    ASSERT_EQ(reply["errors"].Size(), 1u);
    EXPECT_THAT(reply["errors"][0].GetString(), HasSubstr("Malformed message: The document root must not be followed"));
    EXPECT_EQ(Parse(ws->Request(R"({"action":"list"})"))["data"].Size(), 0u) << "nothing was created";
    auto mux = Connect("/ws/");
    auto wrapped = Parse(mux->Request("{\"stream\":\"posts\",\"payload\":{\"action\":\"list\"}}\0x"s));
    ASSERT_TRUE(wrapped.IsObject() && wrapped["payload"].IsObject());
    EXPECT_EQ(wrapped["payload"]["response_status"].GetInt(), 400);
}

TEST_P(FuzzFindingsTest, ARequestIdWithALongMantissaComesBackAsTheSameNumber) {
    // fuzz/corpus/frame/request-id-precision: numbers were read to a neighbouring double, so this request_id was
    // echoed as 1.111111111111111e59, which is another number than the one sent.
    const std::string id = "111111111111111111111111111111111111111000000000000207729038";
    auto ws = Connect("/ws/posts/");
    auto reply = Parse(ws->Request(R"({"action":"list","request_id":)" + id + "}"));
    ASSERT_TRUE(reply.IsObject());
    EXPECT_EQ(reply["response_status"].GetInt(), 200);
    ASSERT_TRUE(reply["request_id"].IsDouble());
    EXPECT_EQ(reply["request_id"].GetDouble(), std::strtod(id.c_str(), nullptr));
    // fuzz/corpus/frame/zero-with-exponent: read with RapidJSON's full precision instead, a zero with an exponent
    // became garbage (0e-24 came back as -2.19e-193).
    auto zero = Parse(ws->Request(R"({"action":"list","request_id":0e-24})"));
    ASSERT_TRUE(zero.IsObject() && zero["request_id"].IsNumber());
    EXPECT_EQ(zero["request_id"].GetDouble(), 0.0);
}

INSTANTIATE_TEST_SUITE_P(Engines, FuzzFindingsTest, test_support::AllEngines(), test_support::EngineParamName);

}  // namespace
}  // namespace syncline
