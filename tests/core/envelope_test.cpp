// The envelopes as strategies (envelope.hpp): each reads a request from a frame and writes replies around it, DCRF's
// (docs/protocol.md §2-§4) and the routed one (§10), byte for byte; and the errors of a result (ActionErrors), which
// become JSON only there.

#include <syncline/core/protocol/envelope.hpp>

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace syncline {
namespace {

// Reads `frame` and writes `result` as its reply: the envelope's round trip.
std::string RoundTrip(const Envelope& envelope, const std::string& frame, const ActionResult& result) {
    FrameRequest request;
    std::optional<std::string> refused = envelope.Read(frame, ConnectionLimits{}, request);
    EXPECT_FALSE(refused.has_value()) << *refused;
    if (refused) return *refused;
    return envelope.Write(request.echo, result);
}

std::string Refusal(const Envelope& envelope, const std::string& frame, ConnectionLimits limits = {}) {
    FrameRequest request;
    return envelope.Read(frame, limits, request).value_or("<read as a request>");
}

TEST(EnvelopeTest, DcrfReadsARequestAndEchoesItsActionAndRequestId) {
    FrameRequest request;
    ASSERT_FALSE(DcrfEnvelope().Read(R"({"action": "retrieve", "request_id": 42, "pk": 1})", {}, request));
    ASSERT_NE(request.echo.action, nullptr);
    EXPECT_STREQ(request.echo.action->GetString(), "retrieve");
    ASSERT_NE(request.echo.request_id, nullptr);
    EXPECT_EQ(request.echo.request_id->GetInt(), 42);
    EXPECT_EQ(request.echo.route, nullptr);
    EXPECT_EQ(request.doc["pk"].GetInt(), 1);
    EXPECT_EQ(DcrfEnvelope().Write(request.echo, ActionResult::Ok(200, R"({"id":1})")),
              R"({"errors":[],"data":{"id":1},"action":"retrieve","response_status":200,"request_id":42})");
}

TEST(EnvelopeTest, DcrfWritesANullRequestIdWhenThereIsNone) {
    EXPECT_EQ(RoundTrip(DcrfEnvelope(), R"({"action": "delete", "pk": 1})", ActionResult::Ok(204)),
              R"({"errors":[],"data":null,"action":"delete","response_status":204,"request_id":null})");
    EXPECT_EQ(RoundTrip(DcrfEnvelope(), R"({"action": ["odd"], "request_id": {"a": [1]}})", ActionResult::Ok(200)),
              R"({"errors":[],"data":null,"action":["odd"],"response_status":200,"request_id":{"a":[1]}})");
}

TEST(EnvelopeTest, DcrfRefusesWhatIsNotARequest) {
    const Envelope& dcrf = DcrfEnvelope();
    EXPECT_EQ(Refusal(dcrf, ""), R"({"errors":["Malformed message: empty frame"],"data":null,"action":null,)"
                                 R"("response_status":400,"request_id":null})");
    EXPECT_EQ(Refusal(dcrf, "[1]"),
              R"({"errors":["Malformed message: expected a JSON object, got list"],"data":null,"action":null,)"
              R"("response_status":400,"request_id":null})");
    EXPECT_EQ(Refusal(dcrf, R"({"request_id": 7})"),
              R"({"errors":["Unable to find action in message body."],"data":null,"action":null,)"
              R"("response_status":405,"request_id":7})");
    ConnectionLimits limits;
    limits.max_request_id_bytes = 4;
    EXPECT_EQ(Refusal(dcrf, R"({"action": "list", "request_id": "abcdef"})", limits),
              R"({"errors":["request_id is too long (the limit is 4 bytes of JSON)."],"data":null,"action":"list",)"
              R"("response_status":400,"request_id":null})");
}

TEST(EnvelopeTest, RoutedReadsARequestAndEchoesItsRoute) {
    FrameRequest request;
    ASSERT_FALSE(RoutedEnvelope().Read(R"({"action": "retrieve", "route": "posts/1/"})", {}, request));
    ASSERT_NE(request.echo.route, nullptr);
    EXPECT_STREQ(request.echo.route->GetString(), "posts/1/");
    EXPECT_EQ(request.echo.request_id, nullptr);
    // No request_id: none is written (rest_framework_channels echoes none).
    EXPECT_EQ(RoutedEnvelope().Write(request.echo, ActionResult::Ok(200, R"({"id":1})")),
              R"({"errors":[],"data":{"id":1},"action":"retrieve","route":"posts/1/","status":200})");
    // A request_id is echoed when there is one; a missing route reads as "".
    EXPECT_EQ(RoundTrip(RoutedEnvelope(), R"({"action": "list", "request_id": "r"})", ActionResult::Ok(200, "[]")),
              R"({"errors":[],"data":[],"action":"list","route":"","status":200,"request_id":"r"})");
}

TEST(EnvelopeTest, RoutedRefusesWhatIsNotARequest) {
    const Envelope& routed = RoutedEnvelope();
    const std::string not_json = Refusal(routed, "nope");
    EXPECT_EQ(not_json.rfind(R"({"errors":["Malformed message: )", 0), 0u) << not_json;
    EXPECT_NE(not_json.find(R"(],"data":null,"action":null,"route":null,"status":400})"), std::string::npos)
        << not_json;
    EXPECT_EQ(Refusal(routed, "3"),
              R"({"errors":["Malformed message: expected a JSON object, got int"],"data":null,"action":null,)"
              R"("route":null,"status":400})");
    EXPECT_EQ(Refusal(routed, R"({"route": "x/"})"),
              R"({"errors":["Unable to find action in message body."],"data":null,"action":null,"route":"x/",)"
              R"("status":404})");
    EXPECT_EQ(Refusal(routed, R"({"action": "list", "route": 5, "request_id": 1})"),
              R"({"errors":["route must be a string."],"data":null,"action":"list","route":5,"status":400,)"
              R"("request_id":1})");
    ConnectionLimits limits;
    limits.max_request_id_bytes = 2;
    EXPECT_EQ(Refusal(routed, R"({"action": "list", "request_id": 12345})", limits),
              R"({"errors":["request_id is too long (the limit is 2 bytes of JSON)."],"data":null,"action":"list",)"
              R"("route":"","status":400})");
}

TEST(EnvelopeTest, AReplyThatIsNotUnicodeIsWrittenAsA500) {
    ActionResult bad = ActionResult::Ok(200, "\"\xff\"");
    EXPECT_EQ(DcrfEnvelope().Write({}, bad),
              R"({"errors":["Internal server error"],"data":null,"action":null,"response_status":500,)"
              R"("request_id":null})");
    EXPECT_EQ(RoutedEnvelope().Write({}, bad),
              R"({"errors":["Internal server error"],"data":null,"action":null,"route":null,"status":500})");
}

TEST(ActionErrorsTest, BecomeTheErrorsListOnlyAtTheEdge) {
    EXPECT_EQ(ErrorsJson({}), "[]");
    EXPECT_EQ(ErrorsJson(ActionErrors::Message("Not found")), R"(["Not found"])");
    EXPECT_EQ(ErrorsJson(ActionErrors::Field("non_field_errors", "No data provided")),
              R"([{"non_field_errors":["No data provided"]}])");
    // Every field at once, in order, each with every message; text is escaped once, here.
    EXPECT_EQ(ErrorsJson(ActionErrors::Fields({{"title", {"This field is required."}},
                                               {"c", {"\"z\" is not a valid choice.", "second"}}})),
              R"([{"title":["This field is required."],"c":["\"z\" is not a valid choice.","second"]}])");
    ActionErrors both{{"a", "b"}, {{"f", {"m"}}}};
    EXPECT_EQ(ErrorsJson(both), R"(["a","b",{"f":["m"]}])");
}

TEST(ActionErrorsTest, AResultCarriesThemAsAValue) {
    ActionResult message = ActionResult::Message(403, "You do not have permission to perform this action.");
    EXPECT_EQ(message.errors, ActionErrors::Message("You do not have permission to perform this action."));
    EXPECT_EQ(message.data, "null");
    EXPECT_TRUE(ActionResult::Ok(200).errors.empty());
    ActionResult invalid = ActionResult::Error(400, ActionErrors::Field("title", "This field may not be blank."));
    ASSERT_EQ(invalid.errors.fields.size(), 1u);
    EXPECT_EQ(invalid.errors.fields[0].first, "title");
    EXPECT_EQ(DcrfEnvelope().Write({}, invalid),
              R"({"errors":[{"title":["This field may not be blank."]}],"data":null,"action":null,)"
              R"("response_status":400,"request_id":null})");
    // An error message that is not valid UTF-8 cannot be sent: 500 instead.
    EXPECT_EQ(DcrfEnvelope().Write({}, ActionResult::Error(400, ActionErrors::Field("\xc3", "x"))),
              R"({"errors":["Internal server error"],"data":null,"action":null,"response_status":500,)"
              R"("request_id":null})");
}

}  // namespace
}  // namespace syncline
