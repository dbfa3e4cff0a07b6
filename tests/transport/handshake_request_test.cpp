// The HandshakeRequest helpers (declared in core, defined in transport/src/handshake_request.cpp).
#include <syncline/core/protocol/session.hpp>

#include <gtest/gtest.h>

namespace syncline {
namespace {

HandshakeRequest WithQuery(std::string query) {
    HandshakeRequest request;
    request.path = "/ws/";
    request.query = std::move(query);
    return request;
}

HandshakeRequest WithHeaders(std::vector<std::pair<std::string, std::string>> headers) {
    HandshakeRequest request;
    request.headers = std::move(headers);
    return request;
}

TEST(TransportHandshakeRequest, QueryParamPercentDecodesKeysAndValues) {
    const HandshakeRequest request = WithQuery("token=a%20b+c&x=1&empty=&flag&%6Bey=v%3D1&utf=%C3%A9&bad=%zz%4");
    EXPECT_EQ(request.QueryParam("token"), "a b c");
    EXPECT_EQ(request.QueryParam("x"), "1");
    EXPECT_EQ(request.QueryParam("empty"), "");
    EXPECT_EQ(request.QueryParam("flag"), "");
    EXPECT_EQ(request.QueryParam("key"), "v=1");
    EXPECT_EQ(request.QueryParam("utf"), u8"\u00e9");
    EXPECT_EQ(request.QueryParam("bad"), "%zz%4") << "malformed escapes stay literal";
    EXPECT_EQ(request.QueryParam("missing"), std::nullopt);
    EXPECT_EQ(request.QueryParam("Token"), std::nullopt) << "parameter names are case-sensitive";
}

TEST(TransportHandshakeRequest, QueryParamReturnsTheFirstOccurrence) {
    EXPECT_EQ(WithQuery("a=1&a=2").QueryParam("a"), "1");
    EXPECT_EQ(WithQuery("&&a=3&").QueryParam("a"), "3");
    EXPECT_EQ(WithQuery("").QueryParam("a"), std::nullopt);
}

TEST(TransportHandshakeRequest, HeaderIsCaseInsensitiveAndFirstWins) {
    const HandshakeRequest request =
        WithHeaders({{"x-token", "first"}, {"origin", "http://example.com"}, {"x-token", "second"}});
    EXPECT_EQ(request.Header("X-Token"), "first");
    EXPECT_EQ(request.Header("ORIGIN"), "http://example.com");
    EXPECT_EQ(request.Header("x-missing"), std::nullopt);
}

TEST(TransportHandshakeRequest, CookieParsesTheCookieHeader) {
    const HandshakeRequest request =
        WithHeaders({{"cookie", "sessionid=abc123;csrftoken=\"q w\" ; empty=; spaced = v"}, {"cookie", "late=1"}});
    EXPECT_EQ(request.Cookie("sessionid"), "abc123");
    EXPECT_EQ(request.Cookie("csrftoken"), "q w");
    EXPECT_EQ(request.Cookie("empty"), "");
    EXPECT_EQ(request.Cookie("spaced"), "v");
    EXPECT_EQ(request.Cookie("late"), "1") << "every Cookie header is searched";
    EXPECT_EQ(request.Cookie("SessionId"), std::nullopt) << "cookie names are case-sensitive";
    EXPECT_EQ(request.Cookie("missing"), std::nullopt);
    EXPECT_EQ(WithHeaders({}).Cookie("sessionid"), std::nullopt);
}

}  // namespace
}  // namespace syncline
