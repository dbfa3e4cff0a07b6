#pragma once
// Redis URLs (redis://[[user]:password@]host[:port][/db]) as the Redis bus reads them. Private to the observer module.
//
// A URL holds a password: every error message quotes the URL redacted (core/support/redact.hpp), never the password.

#include <string>

namespace syncline::observer::detail {

/// Where a Redis bus connects, and as whom.
struct RedisAddress {
    std::string host;
    int port = 6379;
    long db = 0;
    std::string username;
    std::string password;
    bool has_password = false;

    /// "host:port/db" (an IPv6 host in brackets), for log lines: no credentials.
    std::string Describe() const;
};

/// Parses `url`. Throws std::invalid_argument naming what is wrong, with the URL redacted; pure, thread-safe.
RedisAddress ParseRedisUrl(const std::string& url);

}  // namespace syncline::observer::detail
