#pragma once
/// \file
/// Tokens as a user's backend would mint them, with libjwt (the including target links it).

#include <jwt.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>

namespace syncline::test_support {

/// Seconds since the epoch (what exp and nbf are measured in).
inline std::int64_t NowSeconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

/// A JWT of `payload_json` signed with `secret` under `alg`; JWT_ALG_NONE gives an unsigned "header.payload." token.
inline std::string MintJwt(const std::string& payload_json, const std::string& secret, jwt_alg_t alg = JWT_ALG_HS256) {
    jwt_t* raw = nullptr;
    if (jwt_new(&raw) != 0) throw std::runtime_error("jwt_new");
    std::unique_ptr<jwt_t, void (*)(jwt_t*)> jwt(raw, &jwt_free);
    if (jwt_add_grants_json(jwt.get(), payload_json.c_str()) != 0) throw std::runtime_error("bad payload");
    if (alg != JWT_ALG_NONE && jwt_set_alg(jwt.get(), alg, reinterpret_cast<const unsigned char*>(secret.data()),
                                           static_cast<int>(secret.size())) != 0) {
        throw std::runtime_error("jwt_set_alg");
    }
    std::unique_ptr<char, void (*)(void*)> text(jwt_encode_str(jwt.get()), &std::free);
    if (!text) throw std::runtime_error("jwt_encode_str");
    return text.get();
}

}  // namespace syncline::test_support
