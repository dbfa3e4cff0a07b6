#pragma once
/// \file
/// Parsing JSON that comes from outside the process (client frames, bus events, token payloads, stored JSON
/// values): never recursive, depth-limited, and refusing text that is not valid Unicode. Every parse of untrusted
/// JSON goes through ParseUntrustedJson; RapidJSON's own Parse recurses once per nesting level (about 87,000 levels
/// overflow an 8 MB stack) and accepts a lone surrogate escape such as "\udc00", which it stores as bytes that are
/// not UTF-8 and that no websocket frame may carry.

#include <cstddef>
#include <string>
#include <string_view>

#include <rapidjson/document.h>

namespace syncline {

/// The default nesting limit of untrusted JSON: objects and arrays inside each other, the outermost counting 1.
constexpr std::size_t kDefaultMaxJsonDepth = 64;
/// The largest nesting limit a configuration may ask for (a parsed document is destroyed recursively).
constexpr std::size_t kMaxJsonDepthLimit = 1000;

/// Why untrusted JSON was refused; empty (false) when it parsed.
struct JsonInputError {
    std::string reason;      ///< e.g. "nesting too deep", or RapidJSON's "Missing a name for object member."
    std::size_t offset = 0;  ///< Where a syntax error is (bytes from the start); 0 for the other kinds.
    bool syntax = false;     ///< A syntax error (then `offset` means something).
    explicit operator bool() const { return !reason.empty(); }
    /// For the protocol's `Malformed message: <reason>`: the reason, and "(at offset N)" after a syntax error.
    std::string Describe() const;
};

/// Parses `text` into `doc` (replacing its content) without recursion. Refuses, leaving `doc` null:
///  - "nesting too deep" when objects and arrays nest deeper than `max_depth`;
///  - `text is not valid Unicode in "data.title"` for a string or key with a lone surrogate escape (or bytes that
///    are not UTF-8), naming where it is (keys joined by '.', array positions as [i]; `(top level)` for the root);
///  - RapidJSON's message with the offset for any other syntax error.
/// Numbers are read exactly: integers as int64 or uint64 where they fit, others as the double nearest to the number
/// written (one too big for a double is refused, one too small is 0). `allow_comments` accepts
/// /* */ and // comments (the config file's JSON). Thread-safe (no shared state).
JsonInputError ParseUntrustedJson(rapidjson::Document& doc, std::string_view text,
                                  std::size_t max_depth = kDefaultMaxJsonDepth, bool allow_comments = false);

/// Whether `text` is valid UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF).
bool IsValidUtf8(std::string_view text);

/// `text` with every ill-formed UTF-8 sequence replaced by U+FFFD (one per maximal ill-formed subpart, as the
/// Unicode standard recommends); valid text is returned unchanged.
std::string ToValidUtf8(std::string_view text);

}  // namespace syncline
