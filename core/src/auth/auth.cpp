// Authenticators: bearer tokens from a handshake, a static token table, HS256 JWTs (libjwt), and the policy.

#include <syncline/core/auth/auth.hpp>

#include <syncline/core/protocol/json_input.hpp>
#include <syncline/core/support/log.hpp>

#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <random>
#include <stdexcept>

namespace syncline {
namespace {

char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string_view Trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
    return text;
}

// Every byte of the stored token is compared whatever the candidate, so the answer's timing reveals neither where a
// near miss differs nor which entry it was close to.
bool ConstantTimeEquals(std::string_view candidate, std::string_view stored) {
    unsigned diff = candidate.size() == stored.size() ? 0u : 1u;
    for (std::size_t i = 0; i < stored.size(); ++i) {
        unsigned char c = i < candidate.size() ? static_cast<unsigned char>(candidate[i]) : 0;
        diff |= static_cast<unsigned>(c ^ static_cast<unsigned char>(stored[i]));
    }
    return diff == 0;
}

std::string Describe(const HandshakeRequest& request) { return request.remote + " on " + request.path; }

}  // namespace

AuthResult AuthResult::Authenticated(User user) {
    AuthResult result;
    result.kind = Kind::kUser;
    result.user = std::move(user);
    result.user.authenticated = true;
    return result;
}

AuthResult AuthResult::Invalid(std::string reason) {
    AuthResult result;
    result.kind = Kind::kInvalid;
    result.reason = std::move(reason);
    return result;
}

std::optional<FoundToken> FindToken(const HandshakeRequest& request, const TokenSources& sources) {
    if (sources.bearer_header) {
        if (std::optional<std::string> header = request.Header("authorization")) {
            std::string_view value = Trim(*header);
            constexpr std::string_view kScheme = "bearer";
            bool bearer =
                value.size() >= kScheme.size() &&
                std::equal(kScheme.begin(), kScheme.end(), value.begin(),
                           [](char a, char b) { return a == AsciiLower(b); }) &&
                (value.size() == kScheme.size() || value[kScheme.size()] == ' ' || value[kScheme.size()] == '\t');
            if (bearer) return FoundToken{std::string(Trim(value.substr(kScheme.size()))), "Authorization header"};
        }
    }
    if (!sources.query_param.empty()) {
        if (std::optional<std::string> token = request.QueryParam(sources.query_param)) {
            return FoundToken{std::move(*token), "query parameter \"" + sources.query_param + "\""};
        }
    }
    if (!sources.cookie.empty()) {
        if (std::optional<std::string> token = request.Cookie(sources.cookie)) {
            return FoundToken{std::move(*token), "cookie \"" + sources.cookie + "\""};
        }
    }
    return std::nullopt;
}

std::string TokenFingerprint(std::string_view token) {
    // Keyed: a plain hash of a short token (the FNV-1a this replaces, or even SHA-256) can be reversed by trying every
    // token against the log; without the key, which never leaves this process, a fingerprint tells nothing.
    static const std::array<unsigned char, 32> key = [] {
        std::array<unsigned char, 32> k{};
        if (RAND_bytes(k.data(), static_cast<int>(k.size())) != 1) {
            std::random_device device;  // the OS's random source as well; OpenSSL's failing is not expected
            for (unsigned char& byte : k) byte = static_cast<unsigned char>(device());
        }
        return k;
    }();
    static const unsigned char kEmpty = 0;
    const unsigned char* data = token.empty() ? &kEmpty : reinterpret_cast<const unsigned char*>(token.data());
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data, token.size(), mac, &length) == nullptr ||
        length < kFingerprintHexDigits / 2) {
        return std::string(kFingerprintHexDigits, '?');
    }
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < kFingerprintHexDigits / 2; ++i) {
        out += kHex[mac[i] >> 4];
        out += kHex[mac[i] & 0x0f];
    }
    return out;
}

AuthResult TokenAuthenticator::Authenticate(const HandshakeRequest& request) const {
    std::optional<FoundToken> found = FindToken(request, sources_);
    if (!found) return AuthResult::NoCredentials();
    AuthResult result = found->token.empty() ? AuthResult::Invalid("empty token") : VerifyToken(found->token);
    result.credential = found->source + ", fingerprint " + TokenFingerprint(found->token);
    return result;
}

StaticTokenAuthenticator::StaticTokenAuthenticator(std::map<std::string, User> tokens, TokenSources sources)
    : TokenAuthenticator(std::move(sources)) {
    for (auto& [token, user] : tokens) {
        if (token.empty()) throw std::invalid_argument("StaticTokenAuthenticator: empty token");
        user.authenticated = true;
        tokens_.emplace_back(token, std::move(user));
    }
}

AuthResult StaticTokenAuthenticator::VerifyToken(std::string_view token) const {
    const User* match = nullptr;
    for (const auto& [stored, user] : tokens_) {
        if (ConstantTimeEquals(token, stored)) match = &user;  // no early exit: see ConstantTimeEquals
    }
    if (!match) return AuthResult::Invalid("unknown token");
    return AuthResult::Authenticated(*match);
}

JwtAuthenticator::JwtAuthenticator(JwtOptions options, TokenSources sources)
    : TokenAuthenticator(std::move(sources)), options_(std::move(options)) {
    if (options_.secret.empty()) throw std::invalid_argument("JwtAuthenticator: empty secret");
    if (options_.leeway_s < 0) throw std::invalid_argument("JwtAuthenticator: negative leeway");
}

AuthResult JwtAuthenticator::VerifyToken(std::string_view token) const {
    auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
    return VerifyTokenAt(token, now.count());
}

AuthResult JwtAuthenticator::VerifyTokenAt(std::string_view token, std::int64_t now_s) const {
    if (std::count(token.begin(), token.end(), '.') != 2 || token.find('\0') != std::string_view::npos) {
        return AuthResult::Invalid("not a JWT (expected header.payload.signature)");
    }
    // libjwt checks the signature with the key it is given; an alg "none" token fails when a key is given. The alg
    // is checked again below, so a token signed with another HMAC (HS384/HS512) under the same secret is refused.
    std::string text(token);
    jwt_t* raw = nullptr;
    int rc = jwt_decode(&raw, text.c_str(), reinterpret_cast<const unsigned char*>(options_.secret.data()),
                        static_cast<int>(options_.secret.size()));
    std::unique_ptr<jwt_t, void (*)(jwt_t*)> jwt(raw, &jwt_free);
    if (rc != 0 || !jwt) return AuthResult::Invalid("bad signature, unsigned (alg none), or malformed");
    jwt_alg_t alg = jwt_get_alg(jwt.get());
    if (alg != JWT_ALG_HS256) {
        const char* name = jwt_alg_str(alg);
        return AuthResult::Invalid(std::string("alg ") + (name ? name : "?") + " is not HS256");
    }
    std::unique_ptr<char, void (*)(void*)> grants(jwt_get_grants_json(jwt.get(), nullptr), &std::free);
    if (!grants) return AuthResult::Invalid("no payload");
    rapidjson::Document payload;
    if (ParseUntrustedJson(payload, grants.get()) || !payload.IsObject()) {
        return AuthResult::Invalid("the payload is not a JSON object (or nests too deep)");
    }
    auto member = [&](const char* name) -> const rapidjson::Value* {
        auto it = payload.FindMember(name);
        return it == payload.MemberEnd() ? nullptr : &it->value;
    };
    const double leeway = static_cast<double>(options_.leeway_s);
    const double now = static_cast<double>(now_s);
    const rapidjson::Value* exp = member("exp");
    if (!exp) return AuthResult::Invalid("no exp claim (an expiry is required)");
    if (!exp->IsNumber()) return AuthResult::Invalid("exp is not a number");
    if (now >= exp->GetDouble() + leeway) return AuthResult::Invalid("expired");
    if (const rapidjson::Value* nbf = member("nbf")) {
        if (!nbf->IsNumber()) return AuthResult::Invalid("nbf is not a number");
        if (now + leeway < nbf->GetDouble()) return AuthResult::Invalid("not valid yet (nbf)");
    }
    User user;
    const rapidjson::Value* id = member("sub");
    if (!id) id = member("id");
    if (id && id->IsString()) {
        user.id.assign(id->GetString(), id->GetStringLength());
    } else if (id && id->IsInt64()) {
        user.id = std::to_string(id->GetInt64());
    }
    if (user.id.empty()) return AuthResult::Invalid("no sub or id claim (a string or an integer)");
    const rapidjson::Value* name = member("name");
    if (!name) name = member("user");
    if (name && name->IsString()) user.name.assign(name->GetString(), name->GetStringLength());
    if (const rapidjson::Value* groups = member("groups")) {
        if (!groups->IsArray()) return AuthResult::Invalid("groups is not a list of strings");
        for (const auto& g : groups->GetArray()) {
            if (!g.IsString()) return AuthResult::Invalid("groups is not a list of strings");
            user.groups.emplace_back(g.GetString(), g.GetStringLength());
        }
    }
    user.claims = grants.get();
    return AuthResult::Authenticated(std::move(user));
}

ChainAuthenticator::ChainAuthenticator(std::vector<std::shared_ptr<const Authenticator>> chain)
    : chain_(std::move(chain)) {
    if (chain_.empty()) throw std::invalid_argument("ChainAuthenticator: empty chain");
    for (const auto& a : chain_) {
        if (!a) throw std::invalid_argument("ChainAuthenticator: null authenticator");
    }
}

AuthResult ChainAuthenticator::Authenticate(const HandshakeRequest& request) const {
    AuthResult invalid;
    for (const auto& authenticator : chain_) {
        AuthResult result = authenticator->Authenticate(request);
        if (result.kind == AuthResult::Kind::kUser) return result;
        if (result.kind == AuthResult::Kind::kInvalid) {
            if (invalid.kind == AuthResult::Kind::kInvalid) {
                invalid.reason += "; " + result.reason;
            } else {
                invalid = std::move(result);
            }
        }
    }
    return invalid;
}

HandshakeAuth AuthenticateHandshake(const AuthOptions& options, const HandshakeRequest& request, bool log) {
    HandshakeAuth out;
    if (!options.authenticator) {
        if (options.anonymous == AnonymousPolicy::kRefuse) out.status = kAuthRefusedStatus;
        return out;
    }
    AuthResult result;
    try {
        result = options.authenticator->Authenticate(request);
    } catch (const std::exception& e) {
        if (log) Log(LogLevel::kError, "auth: authenticator failed for " + Describe(request) + ": " + e.what());
        out.status = 500;
        return out;
    } catch (...) {
        if (log) Log(LogLevel::kError, "auth: authenticator failed for " + Describe(request));
        out.status = 500;
        return out;
    }
    switch (result.kind) {
        case AuthResult::Kind::kUser:
            out.user = std::move(result.user);
            out.user.authenticated = true;
            return out;
        case AuthResult::Kind::kInvalid: {
            bool refuse = options.invalid_credential == InvalidCredentialPolicy::kRefuse ||
                          options.anonymous == AnonymousPolicy::kRefuse;
            if (refuse) out.status = kAuthRefusedStatus;
            if (log) {
                Log(LogLevel::kWarn, "auth: invalid credential from " + Describe(request) + " (" +
                                         (result.credential.empty() ? "custom authenticator" : result.credential) +
                                         "): " + result.reason +
                                         (refuse ? "; handshake refused with 401" : "; connecting as anonymous"));
            }
            return out;
        }
        case AuthResult::Kind::kNoCredentials:
            if (options.anonymous == AnonymousPolicy::kRefuse) {
                out.status = kAuthRefusedStatus;
                if (log) {
                    Log(LogLevel::kInfo,
                        "auth: no credentials from " + Describe(request) + "; handshake refused with 401");
                }
            }
            return out;
    }
    return out;
}

}  // namespace syncline
