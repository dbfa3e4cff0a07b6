// Fuzz target "jwt": the HS256 JWT authenticator (auth/jwt_authenticator.hpp) on arbitrary token text, and on tokens
// minted here with libjwt from a fuzzed payload, so that the signature holds and the claims parser is reached.
//
// Input: one mode byte, then the rest. Mode bit 0 clear: the rest is token text, verified directly
// (JwtAuthenticator::VerifyTokenAt) and through a chain of a token table and the JWT authenticator on a handshake's
// Authorization header. Mode bit 0 set: the rest is a JSON payload, signed with libjwt under HS256 and the right
// secret, unless bit 1 picks another secret or bits 2-3 another alg (1: HS384, 2: HS512, 3: none), then verified.
// Checks: an invalid answer has a reason that does not contain the token; a valid one has a user id; the chain
// agrees with the authenticator; for minted tokens the verdict and the user match a reference reading of the claims
// (HS256 and the secret; a JSON object within the depth limit; exp a number after now - leeway; nbf, when present, a
// number before now + leeway; sub, else id, a non-empty string or an integer; groups a list of strings).

#include <syncline/auth/jwt_authenticator.hpp>
#include <syncline/core/auth/auth.hpp>
#include <syncline/core/protocol/json_input.hpp>
#include <syncline/core/protocol/session.hpp>

#include <jwt.h>
#include <rapidjson/document.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::string_view kSecret = "fuzz-jwt-secret-0123456789";
constexpr std::int64_t kLeeway = 30;
constexpr std::int64_t kNow = 1700000000;  // 2023-11-14: tokens of the seed corpus use exp/nbf around it

[[noreturn]] void Fail(const char* what) {
    std::fprintf(stderr, "jwt fuzzer: %s\n", what);
    std::abort();
}

const syncline::auth::JwtAuthenticator& Jwt() {
    static const auto* jwt =
        new syncline::auth::JwtAuthenticator(syncline::auth::JwtOptions{std::string(kSecret), kLeeway});
    return *jwt;
}

const syncline::Authenticator& Chain() {
    static const auto* chain = [] {
        std::map<std::string, syncline::User> table;
        table.emplace("dev-token-alice-0123", syncline::User{true, "1", "alice", {}, ""});
        return new syncline::ChainAuthenticator(std::vector<std::shared_ptr<const syncline::Authenticator>>{
            std::make_shared<syncline::auth::StaticTokenAuthenticator>(table),
            std::make_shared<syncline::auth::JwtAuthenticator>(
                syncline::auth::JwtOptions{std::string(kSecret), kLeeway})});
    }();
    return *chain;
}

std::size_t DotCount(std::string_view s) {
    std::size_t n = 0;
    for (char c : s) n += c == '.' ? 1 : 0;
    return n;
}

void CheckAnswer(const syncline::AuthResult& result, std::string_view token) {
    if (result.kind == syncline::AuthResult::Kind::kNoCredentials) Fail("a token verified as no credentials");
    if (result.kind == syncline::AuthResult::Kind::kUser) {
        if (result.user.id.empty() || !result.user.authenticated) Fail("a valid token without a user id");
        if (!result.reason.empty()) Fail("a valid token with a reason");
        return;
    }
    if (result.reason.empty()) Fail("an invalid token without a reason");
    // The fixed reasons hold no '.', except "not a JWT (expected header.payload.signature)", given to tokens without
    // exactly two: a token with two dots found in a reason came from the token.
    if (token.size() >= 8 && DotCount(token) == 2 && result.reason.find(token) != std::string::npos) {
        Fail("a reason contains the token");
    }
}

// The chain, on the token in an Authorization header, must agree with the JWT authenticator at the current time.
void CheckChain(std::string_view token) {
    const std::string_view blanks = " \t";
    if (token.empty() || blanks.find(token.front()) != blanks.npos || blanks.find(token.back()) != blanks.npos ||
        token == "dev-token-alice-0123") {
        return;  // FindToken trims the header value; the table's token is the table's
    }
    syncline::HandshakeRequest request;
    request.path = "/ws/";
    request.remote = "127.0.0.1:1";
    request.headers.emplace_back("authorization", "Bearer " + std::string(token));
    const syncline::AuthResult alone = Jwt().VerifyToken(token);
    const syncline::AuthResult chained = Chain().Authenticate(request);
    if (chained.kind != alone.kind || chained.user.id != alone.user.id) Fail("the chain disagrees with the JWT");
    // The credential names the header and a fingerprint, without a '.'.
    if (DotCount(token) > 0 && chained.credential.find(token) != std::string::npos)
        Fail("the credential holds the token");
}

// --- Minted tokens -------------------------------------------------------------------------------------------------

std::string Mint(const std::string& payload, const std::string& secret, jwt_alg_t alg, bool* ok) {
    *ok = false;
    jwt_t* raw = nullptr;
    if (jwt_new(&raw) != 0) Fail("jwt_new");
    std::unique_ptr<jwt_t, void (*)(jwt_t*)> jwt(raw, &jwt_free);
    if (jwt_add_grants_json(jwt.get(), payload.c_str()) != 0) return "";  // not a JSON object jansson reads
    const int rc = alg == JWT_ALG_NONE
                       ? jwt_set_alg(jwt.get(), alg, nullptr, 0)
                       : jwt_set_alg(jwt.get(), alg, reinterpret_cast<const unsigned char*>(secret.data()),
                                     static_cast<int>(secret.size()));
    if (rc != 0) Fail("jwt_set_alg");
    std::unique_ptr<char, void (*)(void*)> text(jwt_encode_str(jwt.get()), &std::free);
    if (!text) return "";
    *ok = true;
    return text.get();
}

// What the claims of a correctly signed HS256 token should give: the user id, or "" for an invalid token.
std::string ReferenceUserId(const std::string& grants) {
    rapidjson::Document payload;
    if (syncline::ParseUntrustedJson(payload, grants) || !payload.IsObject()) return "";
    auto member = [&](const char* name) -> const rapidjson::Value* {
        auto it = payload.FindMember(name);
        return it == payload.MemberEnd() ? nullptr : &it->value;
    };
    const rapidjson::Value* exp = member("exp");
    if (!exp || !exp->IsNumber() || !(static_cast<double>(kNow) < exp->GetDouble() + kLeeway)) return "";
    const rapidjson::Value* nbf = member("nbf");
    if (nbf && (!nbf->IsNumber() || !(nbf->GetDouble() <= static_cast<double>(kNow + kLeeway)))) return "";
    const rapidjson::Value* groups = member("groups");
    if (groups) {
        if (!groups->IsArray()) return "";
        for (const auto& g : groups->GetArray()) {
            if (!g.IsString()) return "";
        }
    }
    const rapidjson::Value* id = member("sub") ? member("sub") : member("id");
    if (!id) return "";
    if (id->IsString()) return std::string(id->GetString(), id->GetStringLength());
    if (id->IsInt64()) return std::to_string(id->GetInt64());
    return "";
}

void CheckMinted(std::uint8_t mode, const std::string& payload) {
    const std::string secret = (mode & 0x02) ? std::string("another-secret") : std::string(kSecret);
    constexpr jwt_alg_t kAlgs[] = {JWT_ALG_HS256, JWT_ALG_HS384, JWT_ALG_HS512, JWT_ALG_NONE};
    const jwt_alg_t alg = kAlgs[(mode >> 2) & 3];
    bool ok = false;
    const std::string token = Mint(payload, secret, alg, &ok);
    if (!ok) return;
    const syncline::AuthResult result = Jwt().VerifyTokenAt(token, kNow);
    CheckAnswer(result, token);
    if (alg != JWT_ALG_HS256 || (mode & 0x02)) {
        if (result.kind == syncline::AuthResult::Kind::kUser) Fail("a token not signed HS256 with the secret passed");
        return;
    }
    // The claims as libjwt hands them over (jansson re-serializes the payload).
    jwt_t* raw = nullptr;
    if (jwt_decode(&raw, token.c_str(), reinterpret_cast<const unsigned char*>(kSecret.data()),
                   static_cast<int>(kSecret.size())) != 0) {
        Fail("libjwt refuses the token it minted");
    }
    std::unique_ptr<jwt_t, void (*)(jwt_t*)> decoded(raw, &jwt_free);
    std::unique_ptr<char, void (*)(void*)> grants(jwt_get_grants_json(decoded.get(), nullptr), &std::free);
    if (!grants) Fail("no grants");
    const std::string expected = ReferenceUserId(grants.get());
    if (expected.empty() != (result.kind != syncline::AuthResult::Kind::kUser)) {
        Fail("the verdict differs from the reference reading of the claims");
    }
    if (!expected.empty()) {
        if (result.user.id != expected) Fail("the user id differs from the reference");
        if (result.user.claims != grants.get()) Fail("the claims are not the payload");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::uint8_t mode = data[0];
    const std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
    if (mode & 0x01) {
        CheckMinted(mode, rest);
        return 0;
    }
    CheckAnswer(Jwt().VerifyTokenAt(rest, kNow), rest);
    CheckChain(rest);
    return 0;
}
