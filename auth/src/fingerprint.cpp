// Keyed fingerprints of credentials for log lines (HMAC-SHA256, OpenSSL).

#include <syncline/auth/fingerprint.hpp>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <array>
#include <random>

namespace syncline::auth {

std::string TokenFingerprint(std::string_view token) {
    // Keyed: a plain hash of a short token (the FNV-1a this replaces, or even SHA-256) can be reversed by trying every
    // token against the log; without the key, which never leaves this process, a fingerprint tells nothing.
    static const std::array<unsigned char, 32> key = [] {
        std::array<unsigned char, 32> k{};
        if (RAND_bytes(k.data(), static_cast<int>(k.size())) != 1) {
            std::random_device device;  // the OS's random source as well; OpenSSL's failing is not expected
            for (unsigned char& byte : k) byte = static_cast<unsigned char>(device());
        }
        return k;
    }();
    static const unsigned char kEmpty = 0;
    const unsigned char* data = token.empty() ? &kEmpty : reinterpret_cast<const unsigned char*>(token.data());
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data, token.size(), mac, &length) == nullptr ||
        length < kFingerprintHexDigits / 2) {
        return std::string(kFingerprintHexDigits, '?');
    }
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < kFingerprintHexDigits / 2; ++i) {
        out += kHex[mac[i] >> 4];
        out += kHex[mac[i] & 0x0f];
    }
    return out;
}

}  // namespace syncline::auth
