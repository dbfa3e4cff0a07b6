// Credentials out of logs: RedactUrl on the URLs syncline prints (bus and database URLs), RedactCredentials on text
// that embeds them, and Log's safety net that applies it to every line.

#include <syncline/core/support/redact.hpp>

#include <syncline/core/support/log.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <mutex>
#include <string>
#include <vector>

namespace syncline {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(RedactUrlTest, HidesThePasswordAndKeepsTheRest) {
    EXPECT_EQ(RedactUrl("redis://default:pass@10.0.0.5:6379/2"), "redis://default:***@10.0.0.5:6379/2");
    EXPECT_EQ(RedactUrl("redis://:pass@localhost"), "redis://:***@localhost");
    EXPECT_EQ(RedactUrl("postgres://app:s3cr3t@db.internal:5432/prod?sslmode=require"),
              "postgres://app:***@db.internal:5432/prod?sslmode=require");
    // A bare userinfo may be a token: hidden whole.
    EXPECT_EQ(RedactUrl("https://ghp_token@github.com/x.git"), "https://***@github.com/x.git");
    EXPECT_EQ(RedactUrl("redis://[::1]:6379/0"), "redis://[::1]:6379/0");
    EXPECT_EQ(RedactUrl("redis://127.0.0.1"), "redis://127.0.0.1");
    EXPECT_EQ(RedactUrl(""), "");
    EXPECT_EQ(RedactUrl("blog.db"), "blog.db");
}

TEST(RedactUrlTest, PasswordsWithSeparatorsAndMistypedUrlsStayHidden) {
    for (const char* url : {"redis://u:p@ss@h:1/0", "redis://u:pa/ss@h:1/0", "redis://u:p?a#ss@h/0", "redis://u:p ss@h",
                            "redis//u:SECRET@h:1", "u:SECRET@h:1", "redis://u:SECRET@"}) {
        std::string redacted = RedactUrl(url);
        EXPECT_THAT(redacted, Not(HasSubstr("ss"))) << url;
        EXPECT_THAT(redacted, Not(HasSubstr("SECRET"))) << url;
        EXPECT_THAT(redacted, HasSubstr("***@")) << url;
    }
    EXPECT_EQ(RedactUrl("redis://u:p@ss@h:1/0"), "redis://u:***@h:1/0");
    EXPECT_EQ(RedactUrl("redis//u:SECRET@h:1"), "redis//u:***@h:1");  // no "://": the userinfo starts the text
}

TEST(RedactCredentialsTest, RedactsEveryUrlInATextAndNothingElse) {
    EXPECT_EQ(RedactCredentials("RedisBus: bad Redis URL \"redis://default:pw1@h:x/0\": port \"x\" is not a number"),
              "RedisBus: bad Redis URL \"redis://default:***@h:x/0\": port \"x\" is not a number");
    EXPECT_EQ(RedactCredentials("from redis://a:pw1@h1/0 to postgres://b:pw2@h2/db, then 'amqp://c:pw3@h3'"),
              "from redis://a:***@h1/0 to postgres://b:***@h2/db, then 'amqp://c:***@h3'");
    EXPECT_EQ(RedactCredentials("mail bob@example.com about redis://h:6379/0"),
              "mail bob@example.com about redis://h:6379/0");
    EXPECT_EQ(RedactCredentials("no urls here: a@b"), "no urls here: a@b");
    EXPECT_EQ(RedactCredentials("://x:y@z"), "://x:***@z");
    EXPECT_EQ(RedactCredentials(""), "");
}

TEST(RedactCredentialsTest, LogRedactsEveryLineBeforeAnySinkSeesIt) {
    std::mutex mutex;
    std::vector<std::string> lines;
    SetLogSink([&](LogLevel, std::string_view line) {
        std::lock_guard<std::mutex> lock(mutex);
        lines.emplace_back(line);
    });
    Log(LogLevel::kError, "relay: cannot reach redis://default:hunter2@cache:6379/0 (timeout)");
    Log(LogLevel::kInfo, "plain line");
    SetLogSink(nullptr);
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_EQ(lines[0], "relay: cannot reach redis://default:***@cache:6379/0 (timeout)");
    EXPECT_EQ(lines[1], "plain line");
}

}  // namespace
}  // namespace syncline
