#pragma once
/// \file
/// Handshake checks every endpoint runs before it authenticates: which browser pages may open sockets
/// (allowed_origins, cross-site websocket hijacking) and which credentials a handshake may use (cookies only on routes
/// that restrict origins).

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <syncline/core/auth/auth.hpp>
#include <syncline/core/protocol/session.hpp>

namespace syncline {

/// Which browser pages may open sockets on a route (cross-site websocket hijacking). nullopt: any origin, nothing is
/// checked. A list: a handshake whose `Origin` header matches no entry is refused with HTTP 403; a handshake without
/// an `Origin` header (not a browser) is allowed; the entry "*" allows any origin. Entries are origins as browsers
/// send them, "scheme://host" or "scheme://host:port": scheme and host compare case-insensitively, the port exactly
/// (browsers omit a default port, so list "https://example.com", not "https://example.com:443").
using AllowedOrigins = std::optional<std::vector<std::string>>;

/// Why `entry` is not a valid allowed_origins entry, or "" when it is ("*", or scheme://host[:port] with no path,
/// query, fragment or user info).
std::string OriginEntryError(std::string_view entry);

/// Throws std::invalid_argument naming the first invalid entry of `allowed` (OriginEntryError), if any.
void CheckOriginEntries(const AllowedOrigins& allowed);

/// Whether `allowed` lets this handshake through (see AllowedOrigins).
bool OriginAllowed(const AllowedOrigins& allowed, const HandshakeRequest& request);

/// 101 when OriginAllowed; else 403, with one log line naming the peer, the path and the origin.
int CheckOrigin(const AllowedOrigins& allowed, const HandshakeRequest& request);

/// Whether `allowed` restricts origins: a list without "*". Cookie credentials are read only on such routes (a browser
/// sends its cookies with a handshake whichever site's page opens it).
bool RestrictsOrigins(const AllowedOrigins& allowed);

/// Whether `authenticator` reads credentials from a cookie (Authenticator::ReadsCookies: an auth::TokenAuthenticator
/// with a cookie name, or a ChainAuthenticator holding one; false for other authenticators unless they override it).
bool ReadsCookies(const Authenticator& authenticator);

/// The request an authenticator sees on a route with these allowed origins: `request` itself when they restrict
/// origins, else a copy without its Cookie headers (stored in `storage`). So cookie credentials are ignored on a route
/// that does not restrict origins, whatever the authenticator.
const HandshakeRequest& CredentialsView(const AllowedOrigins& allowed, const HandshakeRequest& request,
                                        std::optional<HandshakeRequest>& storage);

}  // namespace syncline
