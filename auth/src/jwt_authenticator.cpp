// HS256 JSON Web Tokens, verified with libjwt; the payload is read with RapidJSON (ParseUntrustedJson).

#include <syncline/auth/jwt_authenticator.hpp>

#include <syncline/core/protocol/json_input.hpp>

#include <jwt.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <stdexcept>

namespace syncline::auth {

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

}  // namespace syncline::auth
