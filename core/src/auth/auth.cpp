// Authentication without cryptography: results, tokens found in a handshake, the chain, and the policy. The
// authenticators that verify tokens are in the auth module (auth/).

#include <syncline/core/auth/auth.hpp>

#include <syncline/core/support/log.hpp>

#include <algorithm>
#include <stdexcept>

namespace syncline {
namespace {

char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string_view Trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
    return text;
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

bool ChainAuthenticator::ReadsCookies() const {
    return std::any_of(chain_.begin(), chain_.end(), [](const auto& link) { return link && link->ReadsCookies(); });
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
