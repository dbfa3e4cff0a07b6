// Parsing of the Redis bus's URL (redis_url.hpp): scheme, optional credentials, host (IPv6 in brackets), port and
// database number. Errors quote the URL redacted and never any part of the password.
#include "redis_url.hpp"

#include <syncline/core/support/redact.hpp>

#include <charconv>
#include <stdexcept>
#include <string_view>
#include <system_error>

namespace syncline::observer::detail {
namespace {

// The message never holds the password: the URL is redacted, and `why` only quotes text after the userinfo.
[[noreturn]] void BadUrl(const std::string& url, const std::string& why) {
    throw std::invalid_argument("RedisBus: bad Redis URL \"" + RedactUrl(url) + "\": " + why +
                                " (expected redis://[[user]:password@]host[:port][/db])");
}

bool ParseNumber(std::string_view text, long max, long& out) {
    if (text.empty()) return false;
    long value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || value < 0 || value > max) return false;
    out = value;
    return true;
}

}  // namespace

std::string RedisAddress::Describe() const {
    std::string host_text = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    return host_text + ":" + std::to_string(port) + "/" + std::to_string(db);
}

RedisAddress ParseRedisUrl(const std::string& url) {
    constexpr std::string_view kScheme = "redis://";
    std::string_view rest(url);
    if (rest.substr(0, kScheme.size()) != kScheme) BadUrl(url, "the scheme must be redis://");
    rest.remove_prefix(kScheme.size());

    RedisAddress address;
    // The userinfo ends at the last '@' of the URL, as RedactUrl reads it: a password may hold '/', '?', '#' or '@',
    // and no part of it may end up quoted in an error message as a port or a database.
    if (auto at = rest.rfind('@'); at != std::string_view::npos) {
        std::string_view userinfo = rest.substr(0, at);
        rest.remove_prefix(at + 1);
        auto colon = userinfo.find(':');
        if (colon == std::string_view::npos) BadUrl(url, "credentials must be written user:password or :password");
        address.username = std::string(userinfo.substr(0, colon));
        address.password = std::string(userinfo.substr(colon + 1));
        address.has_password = true;
    }
    if (rest.find_first_of("?#") != std::string_view::npos) {
        BadUrl(url, "query strings and fragments are not supported");
    }
    std::string_view authority = rest.substr(0, rest.find('/'));
    std::string_view path = rest.substr(authority.size());

    std::string_view port_text;
    if (!authority.empty() && authority.front() == '[') {
        auto close = authority.find(']');
        if (close == std::string_view::npos) BadUrl(url, "unterminated [ in the host");
        address.host = std::string(authority.substr(1, close - 1));
        std::string_view after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') BadUrl(url, "unexpected text after ]");
            port_text = after.substr(1);
            if (port_text.empty()) BadUrl(url, "empty port");
        }
    } else {
        auto colon = authority.find(':');
        address.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) {
            port_text = authority.substr(colon + 1);
            if (port_text.empty()) BadUrl(url, "empty port");
        }
    }
    if (address.host.empty()) BadUrl(url, "missing host");
    if (!port_text.empty()) {
        long port = 0;
        if (!ParseNumber(port_text, 65535, port) || port == 0) {
            BadUrl(url, "port \"" + std::string(port_text) + "\" is not a number from 1 to 65535");
        }
        address.port = static_cast<int>(port);
    }
    if (path.size() > 1) {  // "" and "/" both mean database 0
        std::string_view db_text = path.substr(1);
        if (!ParseNumber(db_text, 2147483647L, address.db)) {
            BadUrl(url, "database \"" + std::string(db_text) + "\" is not a non-negative number");
        }
    }
    return address;
}

}  // namespace syncline::observer::detail
