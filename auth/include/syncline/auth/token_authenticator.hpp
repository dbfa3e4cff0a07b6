#pragma once
/// \file
/// Bearer-token authenticators (docs/protocol.md §8): TokenAuthenticator finds a handshake's token and names it in log
/// lines by its fingerprint; StaticTokenAuthenticator checks it against a fixed table. HS256 JWTs are in
/// jwt_authenticator.hpp. The Authenticator interface and the policy are core's (syncline/core/auth/auth.hpp).

#include <syncline/core/auth/auth.hpp>

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace syncline::auth {

/// An authenticator of bearer tokens: finds the token (FindToken) and hands it to VerifyToken.
class TokenAuthenticator : public Authenticator {
public:
    /// Reads tokens from `sources`.
    explicit TokenAuthenticator(TokenSources sources = {}) : sources_(std::move(sources)) {}
    /// kNoCredentials without a token; else VerifyToken's answer, with `credential` filled in (where the token came
    /// from and its TokenFingerprint).
    AuthResult Authenticate(const HandshakeRequest& request) const final;
    /// Whether `sources` names a cookie.
    bool ReadsCookies() const final { return !sources_.cookie.empty(); }
    /// Checks one token: kUser or kInvalid (with a reason that does not contain the token). Thread-safe.
    virtual AuthResult VerifyToken(std::string_view token) const = 0;
    /// Where tokens are read.
    const TokenSources& sources() const { return sources_; }

private:
    TokenSources sources_;
};

/// A fixed table of tokens, e.g. from the config. A token not in the table is invalid. Tokens are compared in
/// constant time (every entry, every byte), so the time of an answer tells nothing of a near miss.
class StaticTokenAuthenticator final : public TokenAuthenticator {
public:
    /// `tokens` maps each token to its user (authenticated is set to true). Throws std::invalid_argument for an
    /// empty token.
    explicit StaticTokenAuthenticator(std::map<std::string, User> tokens, TokenSources sources = {});
    /// kUser for a token of the table, else kInvalid "unknown token".
    AuthResult VerifyToken(std::string_view token) const override;

private:
    std::vector<std::pair<std::string, User>> tokens_;
};

}  // namespace syncline::auth
