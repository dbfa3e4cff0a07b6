#pragma once
/// \file
/// HS256 JSON Web Tokens (docs/protocol.md §8), verified with libjwt (which stays out of this header).

#include <syncline/auth/token_authenticator.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace syncline::auth {

/// Options of JwtAuthenticator.
struct JwtOptions {
    std::string secret;         ///< The HMAC key (HS256). Required.
    std::int64_t leeway_s = 0;  ///< Clock skew tolerated on `exp` and `nbf`, in seconds.
};

/// HS256 JSON Web Tokens, verified with libjwt. Valid when: the signature matches `secret` with alg HS256 (`none`
/// and every other alg are invalid), `exp` (required, NumericDate) is after now minus the leeway, `nbf` (when
/// present) is before now plus the leeway, and the payload names the user: `sub` or `id` (a string or an integer)
/// → User::id; `name` or `user` → User::name; `groups` (a list of strings) → User::groups; the whole payload →
/// User::claims.
class JwtAuthenticator final : public TokenAuthenticator {
public:
    /// Throws std::invalid_argument for an empty secret or a negative leeway.
    explicit JwtAuthenticator(JwtOptions options, TokenSources sources = {});
    /// Verifies the token at the current time (see the class comment).
    AuthResult VerifyToken(std::string_view token) const override;
    /// VerifyToken at a given time (seconds since the epoch); for tests.
    AuthResult VerifyTokenAt(std::string_view token, std::int64_t now_s) const;

private:
    JwtOptions options_;
};

}  // namespace syncline::auth
