#pragma once
// Small text helpers shared by core's sources (private to core).

#include <cctype>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <string>
#include <string_view>

namespace syncline {

inline std::string AsciiLower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

/// Number of code points in valid UTF-8 text (continuation bytes are not counted).
inline std::size_t Utf8Length(std::string_view s) {
    std::size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
}

/// A bound or limit as DRF's messages print it: whole numbers below 1e15 without a fraction ("10", "-3"), others
/// as printf's %g ("2.5", "1e+15"). Used by the schema's value checks and the serializer's, which must agree.
inline std::string FormatNumber(double v) {
    char buf[32];
    if (std::floor(v) == v && std::fabs(v) < 1e15) {
        std::snprintf(buf, sizeof buf, "%.0f", v);
    } else {
        std::snprintf(buf, sizeof buf, "%g", v);
    }
    return buf;
}

}  // namespace syncline
