#pragma once
/// \file
/// Binds a GenericConsumer to a route: checks handshakes (origins.hpp), authenticates them, throttles frames, and
/// hands each frame to the dispatcher (frame_dispatch.hpp: envelope errors, permissions, actions; docs/protocol.md
/// §1-§4).

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <syncline/core/auth/auth.hpp>
#include <syncline/core/consumer/consumer.hpp>
#include <syncline/core/protocol/frame_dispatch.hpp>
#include <syncline/core/protocol/origins.hpp>
#include <syncline/core/protocol/session.hpp>
#include <syncline/core/support/executor.hpp>

namespace syncline {

/// Per-connection request rate limit (a token bucket). Off when per_second is 0.
struct RateLimit {
    double per_second = 0;  ///< Sustained requests per second.
    double burst = 0;       ///< Bucket size; 0 means max(1, per_second).
    int close_after = 100;  ///< This many throttled requests in a row close the socket with 1008; 0: never.
};

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
    /// Runs the route's writes off the network thread, each socket's requests still one at a time and in order
    /// (SerialRequests). The Server shares one among its routes (ServerOptions::write_threads); when null, writes
    /// run on the network thread that read their frame.
    std::shared_ptr<Executor> write_executor;
    /// With a write_executor: runs the route's write requests in batches instead, each whole request inside a
    /// transaction shared with the other writes queued by then (SerialRequests). The Server shares one among its routes
    /// when its store runs batches and ServerOptions::batch_writes is on; when null, writes go to write_executor.
    std::shared_ptr<WriteBatcher> write_batcher;
};

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
