#pragma once
/// \file
/// Credentials out of logs: a URL prints without its password (`redis://default:***@host:6379/0`), and text that may
/// embed URLs (exception messages, log lines) can be scrubbed of every URL's credentials. Log applies
/// RedactCredentials to every line as a safety net; code that prints a URL it knows (a bus or database URL) calls
/// RedactUrl itself. Pure functions: thread-safe, never throw (beyond std::bad_alloc).

#include <string>
#include <string_view>

namespace syncline {

/// What replaces a secret in a log line.
inline constexpr std::string_view kRedacted = "***";

/// `url` with the secret of its userinfo replaced by `***`: `scheme://user:pass@host...` gives
/// `scheme://user:***@host...`, `scheme://:pass@host` gives `scheme://:***@host`, and a userinfo without a colon (a
/// bare token, `scheme://token@host`) is replaced whole: `scheme://***@host`. The userinfo is everything between `://`
/// (or the start of the text, when there is no `://`) and the last `@`, so a password holding `@`, `/`, `?` or `#`,
/// and a mistyped URL (`redis//u:p@h`), are still hidden whole; at worst more than the password is hidden. A text
/// without `@` comes back unchanged.
std::string RedactUrl(std::string_view url);

/// `text` with RedactUrl applied to every URL in it: each `scheme://` run, up to the next white space, quote, backtick
/// or angle bracket. For text that may embed URLs, such as an exception message from another library. Text without
/// `://` comes back unchanged.
std::string RedactCredentials(std::string_view text);

}  // namespace syncline
