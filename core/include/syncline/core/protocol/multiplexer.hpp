#pragma once
/// \file
/// Multiplexing (docs/protocol.md §9, channelsmultiplexer's wire form): one socket carries several streams, each bound
/// to a child Endpoint (normally a ConsumerEndpoint). Client frames are `{"stream": "posts", "payload": {<request>}}`;
/// every frame a stream's child sends, pushes included, goes out as `{"stream": "posts", "payload": <frame>}`.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <syncline/core/auth/auth.hpp>
#include <syncline/core/protocol/consumer_endpoint.hpp>
#include <syncline/core/protocol/json_input.hpp>
#include <syncline/core/protocol/session.hpp>

namespace syncline {

/// An Endpoint that multiplexes named streams over one connection. Thread-safe (like every Endpoint): it holds only
/// the immutable stream table; per-connection state lives in its sessions.
///
/// Authentication: with `auth` set (the server's), the handshake is authenticated once for the whole socket (one log
/// line for a bad token, not one per stream) and every ConsumerEndpoint stream is admitted and opened with that user
/// (AdmitUser/OpenUser); other children, and every child when `auth` is nullopt, authenticate through their own
/// Admit/Open.
///
/// Origins: with `allowed_origins` set (the route's, else the server's), a handshake whose Origin is not allowed is
/// refused with 403 before anything else runs (AllowedOrigins); cookie credentials are read only when it restricts
/// origins (RestrictsOrigins).
///
/// Handshake: every child's Admit runs. The connection is accepted when at least one child admits it; when all
/// refuse, it is refused with the first stream's status. Open runs every child's Admit again (Endpoint has no way to
/// carry the first answer over) and opens one child Session, through the child's Open, per stream whose child
/// admitted; a request on a stream whose child refused answers 403 inside its payload.
///
/// Frames: the payload of a client frame (a JSON object) goes to its stream's session as compact JSON text. Every
/// frame the child sends is wrapped by string concatenation (the child frame is already JSON); pushes keep their
/// coalescing key (prefixed with the stream). Close from any child closes the whole socket; BufferedBytes is the
/// socket's. A frame that names no known stream, lacks `stream` or `payload`, has a payload that is not an object, is
/// not a JSON object at all, or is binary answers `{"stream": <as sent, or null>, "payload": {<400 error reply>}}`
/// and the socket stays open. While a frame is being answered, pushes of every stream wait until its reply has been
/// queued (a writer's reply comes before the pushes its change causes, whichever stream subscribed). OnClose reaches
/// every opened child session exactly once.
class Multiplexer final : public Endpoint {
public:
    /// One stream: its name on the wire and the endpoint that serves it.
    struct Stream {
        std::string name;
        std::shared_ptr<Endpoint> endpoint;
    };

    /// Throws std::invalid_argument when there is no stream, a name is empty or repeated, an endpoint is null, or an
    /// allowed_origins entry is invalid (OriginEntryError). `max_json_depth` limits the nesting of the outer frame's
    /// payload (one level is the envelope's own).
    explicit Multiplexer(std::vector<Stream> streams, std::optional<AuthOptions> auth = std::nullopt,
                         std::size_t max_json_depth = kDefaultMaxJsonDepth, AllowedOrigins allowed_origins = std::nullopt);

    /// 403 when the origin is not allowed; else 101 when at least one child admits the handshake; otherwise the first
    /// stream's status.
    int Admit(const HandshakeRequest& request) override;
    std::unique_ptr<Session> Open(const HandshakeRequest& request, std::shared_ptr<Outbox> outbox) override;

    const std::vector<Stream>& streams() const { return streams_; }

private:
    // Each child's verdict on a handshake, with the user authenticated once when auth_ is set.
    std::vector<int> AdmitEach(const HandshakeRequest& request, const User* user) const;

    std::vector<Stream> streams_;
    std::optional<AuthOptions> auth_;
    std::size_t max_json_depth_;
    AllowedOrigins allowed_origins_;
};

/// The error frame of a multiplexer: `{"stream": <stream_json>, "payload": <payload_frame>}`. `stream_json` is JSON
/// text (e.g. `"\"posts\""` or `"null"`); `payload_frame` a complete reply frame.
std::string StreamFrame(std::string_view stream_json, std::string_view payload_frame);

}  // namespace syncline
