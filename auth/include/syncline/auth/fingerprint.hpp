#pragma once
/// \file
/// Fingerprints of credentials for log lines: a credential is never logged, a short keyed fingerprint of it is.

#include <cstddef>
#include <string>
#include <string_view>

namespace syncline::auth {

/// How many hex digits a TokenFingerprint has.
inline constexpr std::size_t kFingerprintHexDigits = 12;

/// A short fingerprint of a credential for log lines: the first 12 hex digits of its HMAC-SHA256 under a random key
/// drawn once per process (OpenSSL). The same token gives the same fingerprint within a process, so the lines of one
/// client can be told apart and followed; the key never leaves the process, so the log alone cannot be used to guess
/// or check a token (a plain hash of a short token could be reversed by trying every token). Fingerprints differ from
/// one run to the next. Thread-safe; never throws.
std::string TokenFingerprint(std::string_view token);

}  // namespace syncline::auth
