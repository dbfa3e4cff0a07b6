// Which pages may open sockets (allowed_origins) and which credentials a handshake may use (cookies only where origins
// are restricted): the handshake checks every endpoint runs before it authenticates.

#include <syncline/core/protocol/origins.hpp>

#include <syncline/core/support/log.hpp>

#include <algorithm>
#include <cctype>
#include <optional>
#include <stdexcept>

#include "text_util.hpp"

namespace syncline {
namespace {

// An origin split into its parts, scheme and host lower-cased; nullopt when the text is not scheme://host[:port].
struct OriginParts {
    std::string scheme;
    std::string host;
    std::string port;  // "" when absent
    bool operator==(const OriginParts& other) const {
        return scheme == other.scheme && host == other.host && port == other.port;
    }
};

std::optional<OriginParts> ParseOrigin(std::string_view text, std::string* error = nullptr) {
    auto fail = [&](const std::string& why) -> std::optional<OriginParts> {
        if (error) *error = why;
        return std::nullopt;
    };
    const std::size_t sep = text.find("://");
    if (sep == std::string_view::npos || sep == 0) {
        return fail("expected scheme://host[:port], e.g. https://example.com");
    }
    OriginParts parts;
    for (std::size_t i = 0; i < sep; ++i) {
        const char c = text[i];
        const bool ok = std::isalpha(static_cast<unsigned char>(c)) ||
                        (i > 0 && (std::isdigit(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.'));
        if (!ok) return fail("invalid scheme");
    }
    parts.scheme = AsciiLower(text.substr(0, sep));
    std::string_view rest = text.substr(sep + 3);
    std::string_view host = rest;
    if (!rest.empty() && rest.front() == '[') {  // an IPv6 literal
        const std::size_t close = rest.find(']');
        if (close == std::string_view::npos) return fail("unterminated IPv6 address");
        host = rest.substr(0, close + 1);
        rest.remove_prefix(close + 1);
        if (!rest.empty() && rest.front() != ':') return fail("expected scheme://host[:port] with nothing after it");
    } else {
        const std::size_t colon = rest.find(':');
        host = rest.substr(0, colon);
        rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon);
    }
    if (host.empty()) return fail("missing host");
    for (char c : host) {
        if (c == '/' || c == '?' || c == '#' || c == '@' || c == '\\' || static_cast<unsigned char>(c) <= ' ' ||
            c == 0x7f) {
            return fail("expected scheme://host[:port] with no path, query, fragment or user info (\"" +
                        std::string(host) + "\" is not a host)");
        }
    }
    parts.host = AsciiLower(host);
    if (!rest.empty()) {
        std::string_view port = rest.substr(1);  // after ':'
        if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) {
                return std::isdigit(static_cast<unsigned char>(c));
            })) {
            return fail("invalid port (expected scheme://host[:port] with no path)");
        }
        const long number = std::stol(std::string(port));
        if (number < 1 || number > 65535) return fail("port out of range");
        parts.port = std::string(port);
    }
    return parts;
}

// An Origin header for a log line: bounded, printable.
std::string Printable(std::string_view text) {
    std::string out;
    for (char c : text.substr(0, 100)) out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
    if (text.size() > 100) out += "...";
    return out;
}

}  // namespace

int CheckOrigin(const AllowedOrigins& allowed, const HandshakeRequest& request) {
    if (OriginAllowed(allowed, request)) return 101;
    Log(LogLevel::kWarn, "refused handshake of " + request.remote + " on " + request.path + ": origin \"" +
                             Printable(request.Header("origin").value_or("")) + "\" is not in allowed_origins");
    return 403;
}

std::string OriginEntryError(std::string_view entry) {
    if (entry == "*") return "";
    std::string error;
    return ParseOrigin(entry, &error) ? "" : error;
}

void CheckOriginEntries(const AllowedOrigins& allowed) {
    if (!allowed) return;
    for (const auto& entry : *allowed) {
        if (std::string error = OriginEntryError(entry); !error.empty()) {
            throw std::invalid_argument("allowed_origins: \"" + entry + "\": " + error);
        }
    }
}

bool OriginAllowed(const AllowedOrigins& allowed, const HandshakeRequest& request) {
    if (!allowed) return true;
    const std::optional<std::string> origin = request.Header("origin");
    if (!origin) return true;  // not a browser: nothing to hijack
    const std::optional<OriginParts> sent = ParseOrigin(*origin);
    for (const auto& entry : *allowed) {
        if (entry == "*") return true;
        if (sent && ParseOrigin(entry) == sent) return true;
    }
    return false;
}

bool RestrictsOrigins(const AllowedOrigins& allowed) {
    return allowed && std::find(allowed->begin(), allowed->end(), "*") == allowed->end();
}

bool ReadsCookies(const Authenticator& authenticator) { return authenticator.ReadsCookies(); }

const HandshakeRequest& CredentialsView(const AllowedOrigins& allowed, const HandshakeRequest& request,
                                        std::optional<HandshakeRequest>& storage) {
    if (RestrictsOrigins(allowed) || !request.Header("cookie")) return request;
    HandshakeRequest& copy = storage.emplace(request);
    copy.headers.erase(std::remove_if(copy.headers.begin(), copy.headers.end(),
                                      [](const auto& header) { return header.first == "cookie"; }),
                       copy.headers.end());
    return copy;
}

}  // namespace syncline
