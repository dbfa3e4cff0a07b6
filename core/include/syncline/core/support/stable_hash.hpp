#pragma once
/// \file
/// A 64-bit hash that is the same in every build, process and machine, for names derived from text that
/// several processes must agree on: the default bus channel prefix of a database, a PostgreSQL object name shortened
/// to fit 63 bytes. Not for secrets (it is trivially reversible for short inputs) nor for hash tables fed by
/// clients (no seed). Pure: thread-safe, never throws.

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace syncline {

/// FNV-1a's steps and prime, from the basis 1469598103934665603: a digit short of FNV's published offset basis, as the
/// code this replaces had it. Kept, because channel prefixes and trigger names already in use depend on the values.
inline std::uint64_t StableHash64(std::string_view text) {
    std::uint64_t h = 1469598103934665603ull;
    for (unsigned char c : text) {
        h ^= c;
        h *= 1099511628211ull;
    }
    return h;
}

/// StableHash64 as 16 lower-case hex digits.
inline std::string StableHashHex(std::string_view text) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(StableHash64(text)));
    return buf;
}

}  // namespace syncline
