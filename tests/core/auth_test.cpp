// Authentication as pure logic: where tokens are found, the static token table, HS256 JWTs (minted here with libjwt,
// as a user's backend would), chains, the anonymous/invalid policies, and that a token never reaches the log.

#include <syncline/auth/fingerprint.hpp>
#include <syncline/auth/jwt_authenticator.hpp>
#include <syncline/auth/token_authenticator.hpp>
#include <syncline/core/auth/auth.hpp>
#include <syncline/core/support/log.hpp>
#include <syncline/test_support/jwt_mint.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <jwt.h>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace syncline {
namespace {

// The authenticators that verify tokens: the auth module.
using auth::JwtAuthenticator;
using auth::JwtOptions;
using auth::kFingerprintHexDigits;
using auth::StaticTokenAuthenticator;
using auth::TokenFingerprint;

using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kSecret = "test-secret-0123456789";

std::int64_t Now() { return test_support::NowSeconds(); }

// A token as a user's backend would mint it; JWT_ALG_NONE gives an unsigned token.
std::string Mint(const std::string& payload_json, const std::string& secret = kSecret, jwt_alg_t alg = JWT_ALG_HS256) {
    return test_support::MintJwt(payload_json, secret, alg);
}

std::string ExpIn(std::int64_t seconds) { return std::to_string(Now() + seconds); }

HandshakeRequest Handshake(std::string query = "", std::vector<std::pair<std::string, std::string>> headers = {}) {
    return HandshakeRequest{"/ws/posts/", std::move(query), std::move(headers), "127.0.0.1:5555"};
}

// Captures core's log lines for one test.
class LogCapture {
public:
    LogCapture() {
        SetLogSink([this](LogLevel, std::string_view line) {
            std::lock_guard<std::mutex> lock(mutex_);
            lines_.emplace_back(line);
        });
    }
    ~LogCapture() { SetLogSink(nullptr); }
    std::vector<std::string> lines() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return lines_;
    }
    std::string all() const {
        std::string out;
        for (const auto& l : lines()) out += l + "\n";
        return out;
    }

private:
    mutable std::mutex mutex_;
    std::vector<std::string> lines_;
};

TEST(FindTokenTest, BearerHeaderThenQueryParameterThenCookie) {
    TokenSources sources;
    EXPECT_EQ(sources.cookie, "");  // cookies are off unless named (they need an origin allow-list)
    EXPECT_FALSE(FindToken(Handshake("", {{"cookie", "token=c1"}}), sources));
    sources.cookie = "token";
    EXPECT_FALSE(FindToken(Handshake(), sources));
    auto header = FindToken(Handshake("", {{"authorization", "Bearer abc"}}), sources);
    ASSERT_TRUE(header);
    EXPECT_EQ(header->token, "abc");
    EXPECT_EQ(header->source, "Authorization header");
    EXPECT_EQ(FindToken(Handshake("", {{"authorization", "bEaReR   xyz  "}}), sources)->token, "xyz");
    auto query = FindToken(Handshake("a=1&token=q%2Bv&b=2"), sources);
    ASSERT_TRUE(query);
    EXPECT_EQ(query->token, "q+v");
    EXPECT_EQ(query->source, "query parameter \"token\"");
    auto cookie = FindToken(Handshake("", {{"cookie", "session=1; token=c1"}}), sources);
    ASSERT_TRUE(cookie);
    EXPECT_EQ(cookie->token, "c1");
    EXPECT_EQ(cookie->source, "cookie \"token\"");
    // Precedence: header, query, cookie.
    auto all = Handshake("token=q", {{"authorization", "Bearer h"}, {"cookie", "token=c"}});
    EXPECT_EQ(FindToken(all, sources)->token, "h");
    EXPECT_EQ(FindToken(Handshake("token=q", {{"cookie", "token=c"}}), sources)->token, "q");
    // Another scheme is not a bearer token; "Bearer" alone is an empty one.
    EXPECT_FALSE(FindToken(Handshake("", {{"authorization", "Basic dXNlcjpwYXNz"}}), sources));
    EXPECT_FALSE(FindToken(Handshake("", {{"authorization", "Bearerabc"}}), sources));
    EXPECT_EQ(FindToken(Handshake("", {{"authorization", "Bearer"}}), sources)->token, "");
}

TEST(FindTokenTest, SourcesCanBeRenamedOrTurnedOff) {
    TokenSources sources;
    sources.bearer_header = false;
    sources.query_param = "access_token";
    sources.cookie = "";
    EXPECT_FALSE(FindToken(Handshake("token=q", {{"authorization", "Bearer h"}, {"cookie", "token=c"}}), sources));
    EXPECT_EQ(FindToken(Handshake("access_token=z"), sources)->token, "z");
}

TEST(StaticTokenTest, KnownTokenIsItsUserUnknownIsInvalid) {
    User alice;
    alice.id = "1";
    alice.name = "alice";
    alice.groups = {"editors"};
    StaticTokenAuthenticator auth({{"alice-token", alice}});
    AuthResult ok = auth.Authenticate(Handshake("token=alice-token"));
    ASSERT_EQ(ok.kind, AuthResult::Kind::kUser);
    EXPECT_TRUE(ok.user.authenticated);
    EXPECT_EQ(ok.user.id, "1");
    EXPECT_EQ(ok.user.name, "alice");
    EXPECT_EQ(ok.user.groups, std::vector<std::string>{"editors"});
    for (const char* bad : {"alice-toke", "alice-token2", "ALICE-TOKEN", "x"}) {
        AuthResult r = auth.Authenticate(Handshake(std::string("token=") + bad));
        EXPECT_EQ(r.kind, AuthResult::Kind::kInvalid) << bad;
        EXPECT_EQ(r.reason, "unknown token");
        EXPECT_THAT(r.credential, HasSubstr("query parameter \"token\", fingerprint " + TokenFingerprint(bad)));
        EXPECT_THAT(r.credential, Not(HasSubstr(bad)));
    }
    EXPECT_EQ(auth.Authenticate(Handshake()).kind, AuthResult::Kind::kNoCredentials);
    EXPECT_EQ(auth.Authenticate(Handshake("token=")).kind, AuthResult::Kind::kInvalid);
    EXPECT_THROW(StaticTokenAuthenticator({{"", alice}}), std::invalid_argument);
}

TEST(JwtTest, ValidTokenGivesTheUserAndItsClaims) {
    JwtAuthenticator auth(JwtOptions{kSecret, 0});
    std::string token =
        Mint(R"({"sub": "42", "name": "Alice", "groups": ["editors", "staff"], "exp": )" + ExpIn(600) + "}");
    AuthResult r = auth.Authenticate(Handshake("", {{"authorization", "Bearer " + token}}));
    ASSERT_EQ(r.kind, AuthResult::Kind::kUser) << r.reason;
    EXPECT_TRUE(r.user.authenticated);
    EXPECT_EQ(r.user.id, "42");
    EXPECT_EQ(r.user.name, "Alice");
    EXPECT_EQ(r.user.groups, (std::vector<std::string>{"editors", "staff"}));
    EXPECT_THAT(r.user.claims, HasSubstr("\"sub\":\"42\""));
    // "id" (an integer) and "user" are accepted too.
    AuthResult by_id = auth.VerifyToken(Mint(R"({"id": 7, "user": "bob", "exp": )" + ExpIn(60) + "}"));
    ASSERT_EQ(by_id.kind, AuthResult::Kind::kUser) << by_id.reason;
    EXPECT_EQ(by_id.user.id, "7");
    EXPECT_EQ(by_id.user.name, "bob");
}

TEST(JwtTest, ExpiryAndNotBeforeWithLeeway) {
    JwtAuthenticator auth(JwtOptions{kSecret, 30});
    const std::int64_t t = 1700000000;
    std::string token = Mint(R"({"sub": "1", "exp": )" + std::to_string(t) + "}");
    EXPECT_EQ(auth.VerifyTokenAt(token, t - 1).kind, AuthResult::Kind::kUser);
    EXPECT_EQ(auth.VerifyTokenAt(token, t + 29).kind, AuthResult::Kind::kUser);  // within the leeway
    AuthResult expired = auth.VerifyTokenAt(token, t + 30);
    EXPECT_EQ(expired.kind, AuthResult::Kind::kInvalid);
    EXPECT_EQ(expired.reason, "expired");
    std::string later =
        Mint(R"({"sub": "1", "exp": )" + std::to_string(t + 1000) + R"(, "nbf": )" + std::to_string(t + 100) + "}");
    EXPECT_EQ(auth.VerifyTokenAt(later, t + 70).kind, AuthResult::Kind::kUser);  // nbf within the leeway
    AuthResult early = auth.VerifyTokenAt(later, t + 69);
    EXPECT_EQ(early.kind, AuthResult::Kind::kInvalid);
    EXPECT_EQ(early.reason, "not valid yet (nbf)");
    // Against the real clock, too.
    EXPECT_EQ(auth.VerifyToken(Mint(R"({"sub": "1", "exp": )" + ExpIn(-10) + "}")).kind, AuthResult::Kind::kUser);
    EXPECT_EQ(auth.VerifyToken(Mint(R"({"sub": "1", "exp": )" + ExpIn(-100) + "}")).reason, "expired");
}

TEST(JwtTest, ForgedUnsignedOtherAlgAndMalformedTokensAreInvalid) {
    JwtAuthenticator auth(JwtOptions{kSecret, 0});
    const std::string payload = R"({"sub": "1", "exp": )" + ExpIn(600) + "}";
    struct Case {
        std::string name, token, reason;
    };
    std::string good = Mint(payload);
    std::string tampered = good;
    tampered[tampered.size() / 2] = tampered[tampered.size() / 2] == 'A' ? 'B' : 'A';
    std::vector<Case> cases = {
        {"forged signature", Mint(payload, "another-secret"), "bad signature, unsigned (alg none), or malformed"},
        {"alg none", Mint(payload, "", JWT_ALG_NONE), "bad signature, unsigned (alg none), or malformed"},
        {"alg HS512, same secret", Mint(payload, kSecret, JWT_ALG_HS512), "alg HS512 is not HS256"},
        {"tampered", tampered, "bad signature, unsigned (alg none), or malformed"},
        {"garbage", "garbage", "not a JWT (expected header.payload.signature)"},
        {"dots", "a.b.c", "bad signature, unsigned (alg none), or malformed"},
        {"no exp", Mint(R"({"sub": "1"})"), "no exp claim (an expiry is required)"},
        {"exp not a number", Mint(R"({"sub": "1", "exp": "soon"})"), "exp is not a number"},
        {"no subject", Mint(R"({"name": "x", "exp": )" + ExpIn(600) + "}"),
         "no sub or id claim (a string or an integer)"},
        {"bad groups", Mint(R"({"sub": "1", "groups": "admin", "exp": )" + ExpIn(600) + "}"),
         "groups is not a list of strings"},
    };
    for (const auto& c : cases) {
        AuthResult r = auth.VerifyToken(c.token);
        EXPECT_EQ(r.kind, AuthResult::Kind::kInvalid) << c.name;
        EXPECT_EQ(r.reason, c.reason) << c.name;
        EXPECT_THAT(r.reason, Not(HasSubstr(c.token))) << c.name;
    }
    EXPECT_EQ(auth.VerifyToken(good).kind, AuthResult::Kind::kUser);
    EXPECT_THROW(JwtAuthenticator(JwtOptions{"", 0}), std::invalid_argument);
    EXPECT_THROW(JwtAuthenticator(JwtOptions{"s", -1}), std::invalid_argument);
}

TEST(ChainTest, FirstUserWinsElseInvalidElseNoCredentials) {
    User alice;
    alice.id = "1";
    auto table = std::make_shared<StaticTokenAuthenticator>(std::map<std::string, User>{{"static-1", alice}});
    auto jwt = std::make_shared<JwtAuthenticator>(JwtOptions{kSecret, 0});
    ChainAuthenticator chain({table, jwt});
    EXPECT_EQ(chain.Authenticate(Handshake("token=static-1")).user.id, "1");
    std::string token = Mint(R"({"sub": "9", "exp": )" + ExpIn(600) + "}");
    EXPECT_EQ(chain.Authenticate(Handshake("token=" + token)).user.id, "9");
    AuthResult bad = chain.Authenticate(Handshake("token=nope"));
    EXPECT_EQ(bad.kind, AuthResult::Kind::kInvalid);
    EXPECT_EQ(bad.reason, "unknown token; not a JWT (expected header.payload.signature)");
    EXPECT_EQ(chain.Authenticate(Handshake()).kind, AuthResult::Kind::kNoCredentials);
    EXPECT_THROW(ChainAuthenticator({}), std::invalid_argument);
}

class ThrowingAuthenticator final : public Authenticator {
public:
    AuthResult Authenticate(const HandshakeRequest&) const override { throw std::runtime_error("directory down"); }
};

TEST(HandshakePolicyTest, AnonymousAndInvalidPolicies) {
    User alice;
    alice.id = "1";
    AuthOptions options;
    options.authenticator =
        std::make_shared<StaticTokenAuthenticator>(std::map<std::string, User>{{"good-token", alice}});
    auto status = [&](const std::string& query) { return AuthenticateHandshake(options, Handshake(query), false); };

    // Defaults: anonymous allowed, an invalid token is anonymous.
    EXPECT_EQ(status("").status, 101);
    EXPECT_FALSE(status("").user.authenticated);
    EXPECT_EQ(status("token=bad").status, 101);
    EXPECT_FALSE(status("token=bad").user.authenticated);
    EXPECT_EQ(status("token=good-token").status, 101);
    EXPECT_TRUE(status("token=good-token").user.authenticated);

    options.invalid_credential = InvalidCredentialPolicy::kRefuse;
    EXPECT_EQ(status("").status, 101);
    EXPECT_EQ(status("token=bad").status, 401);
    EXPECT_EQ(status("token=good-token").status, 101);

    options.invalid_credential = InvalidCredentialPolicy::kAnonymous;
    options.anonymous = AnonymousPolicy::kRefuse;
    EXPECT_EQ(status("").status, 401);
    EXPECT_EQ(status("token=bad").status, 401);  // anonymous, then refused as anonymous
    EXPECT_EQ(status("token=good-token").status, 101);

    // No authenticator: everyone is anonymous (and refused when anonymous is).
    AuthOptions none;
    EXPECT_EQ(AuthenticateHandshake(none, Handshake("token=good-token")).status, 101);
    none.anonymous = AnonymousPolicy::kRefuse;
    EXPECT_EQ(AuthenticateHandshake(none, Handshake()).status, 401);

    AuthOptions throwing;
    throwing.authenticator = std::make_shared<ThrowingAuthenticator>();
    LogCapture log;
    EXPECT_EQ(AuthenticateHandshake(throwing, Handshake()).status, 500);
    EXPECT_THAT(log.all(), HasSubstr("authenticator failed for 127.0.0.1:5555 on /ws/posts/: directory down"));
}

TEST(HandshakePolicyTest, OneLogLineNamingTheFingerprintNeverTheToken) {
    AuthOptions options;
    options.authenticator = std::make_shared<JwtAuthenticator>(JwtOptions{kSecret, 0});
    const std::string expired = Mint(R"({"sub": "1", "exp": )" + ExpIn(-3600) + "}");
    const std::string forged = Mint(R"({"sub": "1", "exp": )" + ExpIn(3600) + "}", "not-the-secret");
    const std::string good = Mint(R"({"sub": "1", "exp": )" + ExpIn(3600) + "}");
    LogCapture log;
    EXPECT_EQ(AuthenticateHandshake(options, Handshake("token=" + expired)).status, 101);
    options.invalid_credential = InvalidCredentialPolicy::kRefuse;
    EXPECT_EQ(AuthenticateHandshake(options, Handshake("", {{"authorization", "Bearer " + forged}})).status, 401);
    EXPECT_EQ(AuthenticateHandshake(options, Handshake("", {{"cookie", "token=" + good}})).status, 101);
    std::vector<std::string> lines = log.lines();
    ASSERT_EQ(lines.size(), 2u) << log.all();
    EXPECT_EQ(lines[0],
              "auth: invalid credential from 127.0.0.1:5555 on /ws/posts/ (query parameter \"token\", "
              "fingerprint " +
                  TokenFingerprint(expired) + "): expired; connecting as anonymous");
    EXPECT_EQ(lines[1],
              "auth: invalid credential from 127.0.0.1:5555 on /ws/posts/ (Authorization header, "
              "fingerprint " +
                  TokenFingerprint(forged) +
                  "): bad signature, unsigned (alg none), or malformed; handshake refused with 401");
    for (const std::string& token : {expired, forged, good}) {
        EXPECT_THAT(log.all(), Not(HasSubstr(token)));
        // Not even a recognisable part of the signature or payload.
        EXPECT_THAT(log.all(), Not(HasSubstr(token.substr(token.rfind('.') + 1, 12))));
    }
    // Silent when asked (Open re-authenticates after Admit logged).
    AuthenticateHandshake(options, Handshake("token=" + forged), false);
    EXPECT_EQ(log.lines().size(), 2u);
}

// The fingerprint this one replaced: a 32-bit FNV-1a, which anyone holding a log could reverse for a short token by
// hashing every candidate.
std::string Fnv1a(std::string_view token) {
    std::uint32_t h = 2166136261u;
    for (unsigned char c : token) {
        h ^= c;
        h *= 16777619u;
    }
    char buf[16];
    std::snprintf(buf, sizeof buf, "%08x", static_cast<unsigned>(h));
    return buf;
}

TEST(TokenFingerprintTest, ShortStableAndDistinct) {
    EXPECT_EQ(TokenFingerprint("abc"), TokenFingerprint("abc"));
    EXPECT_NE(TokenFingerprint("abc"), TokenFingerprint("abd"));
    EXPECT_EQ(TokenFingerprint("a-long-secret-token").size(), kFingerprintHexDigits);
    EXPECT_EQ(TokenFingerprint("").size(), 12u);
    for (const std::string& fingerprint : {TokenFingerprint(""), TokenFingerprint("x"), TokenFingerprint("abc")}) {
        EXPECT_EQ(fingerprint.find_first_not_of("0123456789abcdef"), std::string::npos) << fingerprint;
    }
}

TEST(TokenFingerprintTest, KeyedSoALogCannotBeCheckedAgainstGuessedTokens) {
    // Stable within the process, from any thread (the key is drawn once).
    const std::string mine = TokenFingerprint("1234");
    std::string from_another_thread;
    std::thread([&] { from_another_thread = TokenFingerprint("1234"); }).join();
    EXPECT_EQ(mine, from_another_thread);
    // Not the FNV-1a it replaced, nor an extension of it.
    for (const std::string token : {"", "1", "1234", "pin-0000", "a-long-secret-token"}) {
        EXPECT_NE(TokenFingerprint(token), Fnv1a(token)) << token;
        EXPECT_EQ(TokenFingerprint(token).find(Fnv1a(token)), std::string::npos) << token;
    }
    EXPECT_NE(TokenFingerprint(""), "811c9dc5");  // FNV-1a's offset basis, what the empty token used to print
}

// Run by KeyDiffersPerProcess in a child process (a fresh exec, so a fresh key): prints one token's fingerprint.
TEST(TokenFingerprintTest, PrintForAnotherProcess) {
    if (std::getenv("SYNCLINE_PRINT_FINGERPRINT") == nullptr) GTEST_SKIP() << "run by KeyDiffersPerProcess";
    std::printf("FINGERPRINT=%s\n", TokenFingerprint("1234").c_str());
}

// Another process has another key, so the same token gets another fingerprint (two random keys agree on 48 bits with
// odds of 2^-48): fingerprints from a log cannot be compared with fingerprints computed elsewhere.
TEST(TokenFingerprintTest, KeyDiffersPerProcess) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    std::string self = "/proc/self/exe";
    std::string filter = "--gtest_filter=TokenFingerprintTest.PrintForAnotherProcess";
    char* argv[] = {self.data(), filter.data(), nullptr};
    std::vector<std::string> env_text = {"SYNCLINE_PRINT_FINGERPRINT=1"};
    std::vector<char*> env = {env_text[0].data(), nullptr};
    pid_t child = -1;
    int rc = posix_spawn(&child, self.c_str(), &actions, nullptr, argv, env.data());
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    ASSERT_EQ(rc, 0);
    std::string output;
    char buffer[4096];
    for (ssize_t n; (n = read(fds[0], buffer, sizeof buffer)) > 0;) output.append(buffer, static_cast<std::size_t>(n));
    close(fds[0]);
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << output;
    auto at = output.find("FINGERPRINT=");
    ASSERT_NE(at, std::string::npos) << output;
    std::string theirs = output.substr(at + 12, kFingerprintHexDigits);
    ASSERT_EQ(theirs.find_first_not_of("0123456789abcdef"), std::string::npos) << output;
    EXPECT_NE(theirs, TokenFingerprint("1234"));
}

}  // namespace
}  // namespace syncline
