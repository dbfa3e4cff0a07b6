#pragma once
/// \file
/// Binds a GenericConsumer to a route: parses frames, answers the protocol's envelope errors, throttles, and
/// dispatches requests (PROTOCOL.md §1-§4).

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <syncline/core/auth.hpp>
#include <syncline/core/consumer.hpp>
#include <syncline/core/session.hpp>

namespace syncline {

/// Per-connection request rate limit (a token bucket). Off when per_second is 0.
struct RateLimit {
    double per_second = 0;    ///< Sustained requests per second.
    double burst = 0;         ///< Bucket size; 0 means max(1, per_second).
    int close_after = 100;    ///< This many throttled requests in a row close the socket with 1008; 0: never.
};

/// Options of a consumer route.
struct EndpointOptions {
    RateLimit rate_limit;
    /// How handshakes are authenticated. nullopt: the server's (Server fills in ServerOptions::auth); an endpoint
    /// constructed with nullopt serves every connection as anonymous.
    std::optional<AuthOptions> auth;
};

/// Answers one text frame on a connection: the reply frame to send (always exactly one).
std::string HandleTextFrame(GenericConsumer& consumer, ConnectionContext& connection, std::string_view frame);

/// The reply to a frame that is not a JSON object: `{"errors": ["Malformed message: <reason>"], ..., 400}`.
std::string MalformedReply(std::string_view reason);

/// An Endpoint serving one consumer. Thread-safe (the consumer is shared; state is per session).
class ConsumerEndpoint : public Endpoint {
public:
    ConsumerEndpoint(std::shared_ptr<GenericConsumer> consumer, EndpointOptions options = {});
    /// Authenticates the handshake (AuthenticateHandshake: 401 when the policy refuses it, 500 when the
    /// authenticator throws), then asks the consumer's CanConnect with that user: 403 when it refuses, 500 when it
    /// throws (logged). 101 accepts.
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
