// Bearer-token authenticators: the token of a handshake with its fingerprint, and a static token table compared in
// constant time.

#include <syncline/auth/token_authenticator.hpp>

#include <syncline/auth/fingerprint.hpp>

#include <optional>
#include <stdexcept>

namespace syncline::auth {
namespace {

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

}  // namespace

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

}  // namespace syncline::auth
