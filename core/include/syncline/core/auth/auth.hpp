#pragma once
/// \file
/// Authentication (docs/protocol.md §8): an Authenticator resolves the user of a websocket handshake from a credential
/// in an `Authorization: Bearer` header, a query parameter or a cookie, before any permission runs. An AuthOptions adds
/// the policy: what happens to handshakes without credentials and with invalid ones. A credential is never logged: log
/// lines name where it came from and a short fingerprint (auth::TokenFingerprint). This header is the port and needs
/// no cryptography; the built-in authenticators that verify tokens (a static token table, HS256 JSON Web Tokens with
/// libjwt, fingerprints with OpenSSL) are the auth module's: syncline/auth/token_authenticator.hpp and
/// syncline/auth/jwt_authenticator.hpp.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <syncline/core/consumer/consumer.hpp>
#include <syncline/core/protocol/session.hpp>

namespace syncline {

/// What an authenticator made of a handshake.
struct AuthResult {
    enum class Kind {
        kNoCredentials,  ///< The handshake carries no credential this authenticator reads.
        kUser,           ///< A valid credential: `user` (authenticated).
        kInvalid,        ///< A credential that is not valid: unknown, forged, expired, malformed.
    };
    Kind kind = Kind::kNoCredentials;
    User user;
    /// kInvalid: why, for the log (e.g. "expired"). Never contains the credential.
    std::string reason;
    /// Where the credential came from and its fingerprint, for the log (e.g. `query parameter "token", fingerprint
    /// 3fa2c1d09b4e`). Never the credential itself.
    std::string credential;

    /// No credential found.
    static AuthResult NoCredentials() { return {}; }
    /// A valid credential of `user` (authenticated is set to true).
    static AuthResult Authenticated(User user);
    /// An invalid credential; `reason` must not contain it.
    static AuthResult Invalid(std::string reason);
};

/// Resolves the user of a handshake. Implementations are shared by every connection of the server: Authenticate is
/// called concurrently from the network threads, must be thread-safe and must not block for long. It may throw
/// (the handshake is then refused with HTTP 500 and the error logged).
class Authenticator {
public:
    virtual ~Authenticator() = default;
    /// The handshake's user, or why it has none. Thread-safe; may throw (HTTP 500).
    virtual AuthResult Authenticate(const HandshakeRequest& request) const = 0;
    /// Whether it reads credentials from a cookie: true for an auth::TokenAuthenticator with a cookie name and for a
    /// ChainAuthenticator holding one; false by default. A Server warns at Start about a route whose authenticator
    /// reads cookies while its allowed origins do not restrict who may connect (cookies are ignored there).
    virtual bool ReadsCookies() const { return false; }
};

/// Where token authenticators (auth::TokenAuthenticator) look for a token, in this order: the `Authorization: Bearer
/// <token>` header, the query parameter, the cookie. The first one present is used. An empty name turns that place
/// off. Cookies are off by default: a browser sends them with a handshake whichever site's page opens it, so an
/// endpoint reads them only when its allowed origins restrict who may connect (see EndpointOptions::allowed_origins).
struct TokenSources {
    bool bearer_header = true;
    std::string query_param = "token";
    std::string cookie;
};

/// A token found in a handshake, with a description of where (for logs).
struct FoundToken {
    std::string token;
    std::string source;  ///< "Authorization header", `query parameter "token"` or `cookie "token"`.
};

/// The token of a handshake, or nullopt when none of `sources` carries one. An Authorization header with another
/// scheme (e.g. Basic) is not a token; `Bearer` with nothing after it is an empty token (invalid).
std::optional<FoundToken> FindToken(const HandshakeRequest& request, const TokenSources& sources);

/// Tries several authenticators: the first kUser wins; else kInvalid if any found an invalid credential (the
/// reasons joined); else kNoCredentials. Throws std::invalid_argument for an empty chain or a null entry.
class ChainAuthenticator final : public Authenticator {
public:
    explicit ChainAuthenticator(std::vector<std::shared_ptr<const Authenticator>> chain);
    /// Asks each authenticator in order (see the class comment).
    AuthResult Authenticate(const HandshakeRequest& request) const override;
    /// Whether one of the chain reads cookies.
    bool ReadsCookies() const override;
    /// The authenticators, in the order they are asked.
    const std::vector<std::shared_ptr<const Authenticator>>& chain() const { return chain_; }

private:
    std::vector<std::shared_ptr<const Authenticator>> chain_;
};

/// What happens to a handshake without credentials.
enum class AnonymousPolicy {
    kAllow,   ///< It connects as the anonymous user (permissions decide what it may do). The default.
    kRefuse,  ///< The handshake is refused with HTTP 401.
};

/// What happens to a handshake with an invalid credential (unknown, forged, expired, malformed).
enum class InvalidCredentialPolicy {
    kAnonymous,  ///< Treated as no credentials (then AnonymousPolicy decides). The default.
    kRefuse,     ///< The handshake is refused with HTTP 401.
};

/// A server's authentication: the authenticator and its policy.
struct AuthOptions {
    std::shared_ptr<const Authenticator> authenticator;  ///< null: every connection is anonymous.
    AnonymousPolicy anonymous = AnonymousPolicy::kAllow;
    InvalidCredentialPolicy invalid_credential = InvalidCredentialPolicy::kAnonymous;
};

/// The HTTP status of a handshake refused by the authentication policy.
inline constexpr int kAuthRefusedStatus = 401;

/// A handshake's authentication outcome.
struct HandshakeAuth {
    int status = 101;  ///< 101: go on with `user`; 401: refused by the policy; 500: the authenticator threw.
    User user;         ///< The user (anonymous unless authenticated).
};

/// Authenticates a handshake and applies the policy. When `log` is set, writes one line for a refused handshake,
/// an invalid credential or a throwing authenticator (naming the peer, the path, where the credential came from
/// and its fingerprint, never the credential). Never throws. Thread-safe.
HandshakeAuth AuthenticateHandshake(const AuthOptions& options, const HandshakeRequest& request, bool log = true);

}  // namespace syncline
