#pragma once
/// \file
/// Binds a GenericConsumer to a route: parses frames, answers the protocol's envelope errors, throttles, and
/// dispatches requests (PROTOCOL.md §1-§4).

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <syncline/core/auth/auth.hpp>
#include <syncline/core/consumer/consumer.hpp>
#include <syncline/core/support/executor.hpp>
#include <syncline/core/protocol/session.hpp>

namespace syncline {

/// Per-connection request rate limit (a token bucket). Off when per_second is 0.
struct RateLimit {
    double per_second = 0;    ///< Sustained requests per second.
    double burst = 0;         ///< Bucket size; 0 means max(1, per_second).
    int close_after = 100;    ///< This many throttled requests in a row close the socket with 1008; 0: never.
};

/// Which browser pages may open sockets on a route (cross-site websocket hijacking). nullopt: any origin, nothing is
/// checked. A list: a handshake whose `Origin` header matches no entry is refused with HTTP 403; a handshake without
/// an `Origin` header (not a browser) is allowed; the entry "*" allows any origin. Entries are origins as browsers
/// send them, "scheme://host" or "scheme://host:port": scheme and host compare case-insensitively, the port exactly
/// (browsers omit a default port, so list "https://example.com", not "https://example.com:443").
using AllowedOrigins = std::optional<std::vector<std::string>>;

/// Why `entry` is not a valid allowed_origins entry, or "" when it is ("*", or scheme://host[:port] with no path,
/// query, fragment or user info).
std::string OriginEntryError(std::string_view entry);

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

/// Options of a consumer route.
struct EndpointOptions {
    RateLimit rate_limit;
    /// How handshakes are authenticated. nullopt: the server's (Server fills in ServerOptions::auth); an endpoint
    /// constructed with nullopt serves every connection as anonymous. Cookie credentials are ignored unless
    /// allowed_origins restricts origins (RestrictsOrigins).
    std::optional<AuthOptions> auth;
    /// Runs the route's detached actions. The Server shares its transport::ThreadPoolExecutor among its routes; when
    /// null (an endpoint constructed without a Server) detached actions run inline, as in ServeTextFrame.
    std::shared_ptr<Executor> executor;
    /// What each connection may send and hold. nullopt: the server's (ServerOptions::limits); an endpoint constructed
    /// with nullopt uses the defaults.
    std::optional<ConnectionLimits> limits;
    /// Which origins may open sockets (AllowedOrigins). nullopt: the server's (Server fills in
    /// ServerOptions::allowed_origins); an endpoint constructed with nullopt allows any origin.
    AllowedOrigins allowed_origins;
};

/// Answers one text frame on a connection, synchronously: the reply frame to send, exactly one, except for a
/// streaming action, whose frames went to the connection's outbox (then ""). Detached actions run inline.
std::string HandleTextFrame(GenericConsumer& consumer, ConnectionContext& connection, std::string_view frame);

/// Answers one text frame on a connection through its outbox, bracketed by the connection's push gate. Envelope
/// errors, 403 and 405 are answered at once, as are ordinary actions; a detached action is posted to `executor` on
/// the connection's lane and answers when it finishes (a 500 frame if it throws; nothing if the connection closed
/// first; a detached writer holds the push gate until its reply). Its continuation steps (ActionResult::Continue)
/// are posted one by one, each once the socket has room (at most ActionRequest::kStreamQueueBytes queued), so a
/// stream waiting for a slow reader holds no thread. A detached action beyond the connection's
/// ConnectionLimits::max_pending_actions in progress on it (0: no limit) answers 429. With no executor, detached actions run inline. Call it from the
/// connection's serial thread of calls.
void ServeTextFrame(const std::shared_ptr<GenericConsumer>& consumer,
                    const std::shared_ptr<ConnectionContext>& connection, std::string_view frame, Executor* executor);

/// The reply to a frame that is not a JSON object: `{"errors": ["Malformed message: <reason>"], ..., 400}`.
std::string MalformedReply(std::string_view reason);

/// The 400 answer to a request_id whose JSON text is longer than the connection's limit, or nullopt when it is
/// within it (or absent).
std::optional<ActionResult> CheckRequestId(const rapidjson::Value* request_id, const ConnectionLimits& limits);

/// An Endpoint serving one consumer. Thread-safe (the consumer is shared; state is per session).
class ConsumerEndpoint : public Endpoint {
public:
    /// Throws std::invalid_argument for an invalid allowed_origins entry (OriginEntryError).
    ConsumerEndpoint(std::shared_ptr<GenericConsumer> consumer, EndpointOptions options = {});
    /// Checks the origin (403 when allowed_origins refuses it, logged), authenticates the handshake
    /// (AuthenticateHandshake: 401 when the policy refuses it, 500 when the authenticator throws), then asks the
    /// consumer's CanConnect with that user: 403 when it refuses, 500 when it throws (logged). 101 accepts.
    int Admit(const HandshakeRequest& request) override;
    /// Authenticates again (without logging; Admit did) and opens the session with the user set on its
    /// ConnectionContext before any permission runs. Should the outcome differ from Admit's (a token that expired
    /// in between), the socket is closed with 1008 and its frames are ignored.
    std::unique_ptr<Session> Open(const HandshakeRequest& request, std::shared_ptr<Outbox> outbox) override;
    /// Admit for a user authenticated elsewhere (e.g. a multiplexer that authenticates once for all its streams with
    /// AuthenticateHandshake): CanConnect only; 101, 403, or 500 when it throws (logged).
    int AdmitUser(const HandshakeRequest& request, User user);
    /// Open for a user authenticated elsewhere: the session's ConnectionContext carries `user`.
    std::unique_ptr<Session> OpenUser(const HandshakeRequest& request, std::shared_ptr<Outbox> outbox, User user);
    GenericConsumer& consumer() const { return *consumer_; }

private:
    std::shared_ptr<GenericConsumer> consumer_;
    EndpointOptions options_;
};

}  // namespace syncline
