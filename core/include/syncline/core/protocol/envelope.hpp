#pragma once
/// \file
/// Envelopes: how a request sits in a text frame and how a reply is written around an action's result. A consumer
/// names the envelope its route speaks (ConsumerOptions::envelope): DCRF's (docs/protocol.md §2-§4, the default) or the
/// routed one of rest_framework_channels (§10). The endpoint reads every frame and writes every reply through it; one
/// reply builder writes both (so ActionResult turns into JSON only here).

#include <optional>
#include <string>
#include <string_view>

#include <rapidjson/document.h>

#include <syncline/core/consumer/action.hpp>
#include <syncline/core/consumer/connection.hpp>

namespace syncline {

/// What a reply echoes of its request, each verbatim (nullptr: absent).
struct ReplyEcho {
    const rapidjson::Value* action = nullptr;
    const rapidjson::Value* request_id = nullptr;
    const rapidjson::Value* route = nullptr;  ///< Written by the routed envelope only.
};

/// A request read from a frame: the parsed object (its top-level keys are the arguments) and what its replies echo
/// (pointers into `doc`, which must stay put, or to static values).
struct FrameRequest {
    rapidjson::Document doc;
    ReplyEcho echo;
    /// Set by Read when it returns an error reply: that reply's status (for metrics).
    int refused_status = 0;
};

/// How requests and replies are framed. Implementations are stateless singletons; thread-safe.
class Envelope {
public:
    virtual ~Envelope() = default;
    /// Reads one text frame: nullopt when it holds a request (then `request.doc` is the object and
    /// `request.echo.action` is set), else the error reply to send, socket left open: an empty frame, JSON that is not
    /// valid, too deep or not Unicode, not an object (400 `Malformed message: <reason>`), a request_id over
    /// `limits.max_request_id_bytes` (400, CheckRequestId), no action, and what else the envelope requires.
    virtual std::optional<std::string> Read(std::string_view frame, const ConnectionLimits& limits,
                                            FrameRequest& request) const = 0;
    /// The frame that carries `result` as the reply to a request with this echo; an empty echo for a frame that
    /// reached no request (binary, throttled). A result whose data or errors are not valid UTF-8 is written as a 500
    /// instead (EncodableResult).
    virtual std::string Write(const ReplyEcho& echo, const ActionResult& result) const = 0;
    /// The reply to a frame that is not a request: 400 `Malformed message: <reason>`, empty echo.
    std::string Malformed(std::string_view reason) const;
};

/// DCRF's envelope (§2-§4): `{"errors", "data", "action", "response_status", "request_id"}`, with `request_id` null
/// when the request had none. A request without `action` answers 405 `Unable to find action in message body.`.
const Envelope& DcrfEnvelope();

/// rest_framework_channels' envelope (§10): `{"errors", "data", "action", "route", "status"}`, plus `request_id` only
/// when the request carried one. A request without `action` answers 404 `Unable to find action in message body.`; a
/// missing `route` reads as "", one that is not a string answers 400 `route must be a string.`.
const Envelope& RoutedEnvelope();

/// The JSON `errors` list the envelopes write for `errors` (see ActionErrors): `[]`, `["Not found"]`,
/// `[{"title": ["This field is required."]}]`.
std::string ErrorsJson(const ActionErrors& errors);

/// The 400 answer to a request_id whose JSON text is longer than the connection's limit, or nullopt when it is
/// within it (or absent).
std::optional<ActionResult> CheckRequestId(const rapidjson::Value* request_id, const ConnectionLimits& limits);

}  // namespace syncline
