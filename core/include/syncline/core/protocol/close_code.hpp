#pragma once
/// \file
/// Websocket close codes (RFC 6455 §7.4) the server sends, as an error enum with its std::error_category, so a close
/// code is named where it is sent, never a bare int. `std::error_code ec = CloseCode::kPolicyViolation;` works
/// (std::is_error_code_enum), and ec.message() names it.

#include <string>
#include <system_error>

namespace syncline {

/// The close codes syncline sends (docs/protocol.md §1; docs/operations.md, "Close codes" and "Limits"). No application
/// code (4000-4999) is used.
enum class CloseCode : int {
    kNormal = 1000,           ///< A normal closure.
    kGoingAway = 1001,        ///< The server shuts down (SIGTERM drain), or a peer missed its pong.
    kInvalidPayload = 1007,   ///< A frame's payload was not consistent with its type (text that is not UTF-8).
    kPolicyViolation = 1008,  ///< Persistent request rate abuse, or a credential refused when the socket opened.
    kMessageTooBig = 1009,    ///< A frame larger than max_message_bytes.
    kInternalError = 1011,    ///< The server failed (or was asked for a code that cannot be sent).
    kTryAgainLater = 1013,    ///< A slow reader whose outgoing queue stayed over its limit.
};

/// The category of CloseCode: name "websocket close", messages such as "policy violation" (unknown values: "close
/// code N").
const std::error_category& close_category();

/// Makes `code` a std::error_code of close_category().
std::error_code make_error_code(CloseCode code);

/// The integer sent on the wire.
constexpr int ToInt(CloseCode code) { return static_cast<int>(code); }

}  // namespace syncline

namespace std {
template <>
struct is_error_code_enum<syncline::CloseCode> : true_type {};
}  // namespace std
