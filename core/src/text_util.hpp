#pragma once
// Small text helpers shared by core's sources (private to core).

#include <cctype>
#include <cstddef>
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

}  // namespace syncline
