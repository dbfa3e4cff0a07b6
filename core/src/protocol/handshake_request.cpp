// The helpers of syncline::HandshakeRequest (declared in core's session.hpp). They live in core because core's
// authenticators read headers, query parameters and cookies; nothing here depends on websocketpp.
#include <syncline/core/protocol/session.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace syncline {
namespace {

char AsciiLower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (AsciiLower(a[i]) != AsciiLower(b[i])) {
            return false;
        }
    }
    return true;
}

int HexValue(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

// application/x-www-form-urlencoded decoding, as browsers and Django produce and read it. A '%' not followed by two
// hex digits is kept literally rather than rejected: a malformed token should simply not match.
std::string FormDecode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '+') {
            out.push_back(' ');
        } else if (c == '%' && i + 2 < text.size() && HexValue(text[i + 1]) >= 0 && HexValue(text[i + 2]) >= 0) {
            out.push_back(static_cast<char>(HexValue(text[i + 1]) * 16 + HexValue(text[i + 2])));
            i += 2;
        } else {
            out.push_back(c);
        }
    }
    return out;
}

std::string_view TrimSpaces(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
        text.remove_prefix(1);
    }
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) {
        text.remove_suffix(1);
    }
    return text;
}

}  // namespace

std::optional<std::string> HandshakeRequest::Header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
        if (EqualsIgnoreCase(key, name)) {
            return value;
        }
    }
    return std::nullopt;
}

std::optional<std::string> HandshakeRequest::QueryParam(std::string_view name) const {
    std::string_view rest = query;
    while (!rest.empty()) {
        const std::size_t amp = rest.find('&');
        const std::string_view pair = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
        if (pair.empty()) {
            continue;
        }
        const std::size_t eq = pair.find('=');
        const std::string_view raw_key = pair.substr(0, eq);
        if (FormDecode(raw_key) != name) {
            continue;
        }
        return eq == std::string_view::npos ? std::string() : FormDecode(pair.substr(eq + 1));
    }
    return std::nullopt;
}

std::optional<std::string> HandshakeRequest::Cookie(std::string_view name) const {
    // Several Cookie headers may exist (HTTP/2 proxies split them); look through all of them, first match wins.
    for (const auto& [key, value] : headers) {
        if (!EqualsIgnoreCase(key, "cookie")) {
            continue;
        }
        std::string_view rest = value;
        while (!rest.empty()) {
            const std::size_t semi = rest.find(';');
            const std::string_view item = TrimSpaces(rest.substr(0, semi));
            rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
            const std::size_t eq = item.find('=');
            if (eq == std::string_view::npos || TrimSpaces(item.substr(0, eq)) != name) {
                continue;
            }
            std::string_view cookie_value = TrimSpaces(item.substr(eq + 1));
            if (cookie_value.size() >= 2 && cookie_value.front() == '"' && cookie_value.back() == '"') {
                cookie_value = cookie_value.substr(1, cookie_value.size() - 2);
            }
            return std::string(cookie_value);
        }
    }
    return std::nullopt;
}

}  // namespace syncline
