// The top-level "auth" key: the authenticator chain (static tokens, JWT) and the anonymous/invalid-token policy.

#include "parse.hpp"

#include <syncline/auth/jwt_authenticator.hpp>
#include <syncline/auth/token_authenticator.hpp>

#include <map>

namespace syncline::config::detail {

// The top-level "auth" object: a token table and/or HS256 JWT, where tokens are read from, and the policy.
AuthOptions ParseAuth(const rapidjson::Value& v) {
    const std::string path = "auth";
    if (!v.IsObject()) {
        Fail(path, "expected an object such as {\"jwt\": {\"secret\": \"...\"}, \"anonymous\": \"allow\"}");
    }
    CheckKeys(v, path, {"tokens", "jwt", "anonymous", "invalid_token", "bearer_header", "query_param", "cookie"});
    TokenSources sources;
    if (const auto* p = Member(v, "bearer_header")) {
        if (!p->IsBool()) Fail(path + ".bearer_header", "expected true or false");
        sources.bearer_header = p->GetBool();
    }
    if (const auto* p = Member(v, "query_param")) sources.query_param = GetString(*p, path + ".query_param");
    if (const auto* p = Member(v, "cookie")) sources.cookie = GetString(*p, path + ".cookie");
    std::vector<std::shared_ptr<const Authenticator>> chain;
    if (const auto* tokens = Member(v, "tokens")) {
        const std::string tokens_path = path + ".tokens";
        if (!tokens->IsObject() || tokens->MemberCount() == 0) {
            Fail(tokens_path, "expected a non-empty object such as {\"<token>\": {\"user\": \"alice\", \"id\": 1}}");
        }
        std::map<std::string, User> table;
        std::size_t index = 0;
        for (auto it = tokens->MemberBegin(); it != tokens->MemberEnd(); ++it, ++index) {
            // The token itself never appears in an error message: entries are named by position.
            std::string entry_path = tokens_path + "[" + std::to_string(index) + "]";
            std::string token(it->name.GetString(), it->name.GetStringLength());
            if (token.empty()) Fail(entry_path, "empty token");
            const rapidjson::Value& e = it->value;
            if (!e.IsObject()) Fail(entry_path, "expected an object such as {\"user\": \"alice\", \"id\": 1}");
            CheckKeys(e, entry_path, {"user", "id", "groups", "token"});
            // With "token" (e.g. {"env": "ALICE_TOKEN"}), the key only names the entry: the token is kept out of the
            // file.
            if (const auto* p = Member(e, "token")) {
                token = GetSecret(*p, entry_path + ".token");
                if (token.empty()) Fail(entry_path + ".token", "empty token");
            }
            User user;
            if (const auto* p = Member(e, "user")) user.name = GetString(*p, entry_path + ".user");
            if (const auto* p = Member(e, "id")) {
                if (p->IsInt64()) {
                    user.id = std::to_string(p->GetInt64());
                } else if (p->IsString() && p->GetStringLength() > 0) {
                    user.id = p->GetString();
                } else {
                    Fail(entry_path + ".id", "expected an integer or a non-empty string");
                }
            }
            if (user.name.empty() && user.id.empty()) Fail(entry_path, "expected \"user\" and/or \"id\"");
            if (user.id.empty()) user.id = user.name;
            if (user.name.empty()) user.name = user.id;
            if (const auto* p = Member(e, "groups")) user.groups = GetStringList(*p, entry_path + ".groups");
            if (!table.emplace(std::move(token), std::move(user)).second) {
                Fail(entry_path, "the same token as an earlier entry");
            }
        }
        chain.push_back(std::make_shared<auth::StaticTokenAuthenticator>(std::move(table), sources));
    }
    if (const auto* jwt = Member(v, "jwt")) {
        const std::string jwt_path = path + ".jwt";
        if (!jwt->IsObject()) Fail(jwt_path, "expected an object such as {\"secret\": \"...\", \"leeway_s\": 30}");
        CheckKeys(*jwt, jwt_path, {"secret", "leeway_s"});
        auth::JwtOptions options;
        const auto* secret = Member(*jwt, "secret");
        if (!secret) Fail(jwt_path + ".secret", "missing (the HS256 key your backend signs tokens with)");
        options.secret = GetSecret(*secret, jwt_path + ".secret");
        if (options.secret.empty()) Fail(jwt_path + ".secret", "empty");
        if (const auto* p = Member(*jwt, "leeway_s")) {
            options.leeway_s = GetInteger(*p, jwt_path + ".leeway_s", 0, 86400);
        }
        chain.push_back(std::make_shared<auth::JwtAuthenticator>(std::move(options), sources));
    }
    if (chain.empty()) Fail(path, "expected \"tokens\" and/or \"jwt\"");
    AuthOptions auth;
    auth.authenticator = chain.size() == 1 ? chain.front() : std::make_shared<ChainAuthenticator>(std::move(chain));
    if (const auto* p = Member(v, "anonymous")) {
        std::string policy = GetString(*p, path + ".anonymous");
        if (policy == "allow") {
            auth.anonymous = AnonymousPolicy::kAllow;
        } else if (policy == "refuse") {
            auth.anonymous = AnonymousPolicy::kRefuse;
        } else {
            Fail(path + ".anonymous", "unknown value \"" + policy + "\"; valid values: allow, refuse");
        }
    }
    if (const auto* p = Member(v, "invalid_token")) {
        std::string policy = GetString(*p, path + ".invalid_token");
        if (policy == "anonymous") {
            auth.invalid_credential = InvalidCredentialPolicy::kAnonymous;
        } else if (policy == "refuse") {
            auth.invalid_credential = InvalidCredentialPolicy::kRefuse;
        } else {
            Fail(path + ".invalid_token", "unknown value \"" + policy + "\"; valid values: anonymous, refuse");
        }
    }
    return auth;
}

}  // namespace syncline::config::detail
