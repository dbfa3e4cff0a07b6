#pragma once
/// \file
/// A websocketpp client config for tests and load generation: websocketpp's logging compiled out, and a cheap
/// masking-key generator instead of std::random_device (23 us a call on our VMs, once per frame, which would make a
/// load generator measure itself). Only for code that already includes websocketpp (the test client's one .cpp and
/// the load generator); it pulls in websocketpp and Asio.
///
/// The keys are not cryptographically unpredictable. RFC 6455 wants unpredictable masks from browsers to protect
/// intermediaries from cache poisoning by hostile scripts; a test client talking to our own server needs none of it.

#include <syncline/wspp/quiet_config.hpp>
#include <websocketpp/config/asio_no_tls_client.hpp>

#include <cstdint>
#include <random>

namespace syncline::test_support {

/// A websocketpp rng policy: xorshift64* with one state per thread, seeded once from std::random_device.
/// Thread-safe without a lock (websocketpp shares one generator per endpoint across its threads).
template <typename IntType, typename Concurrency>
class FastMaskRng {
public:
    IntType operator()() {
        thread_local std::uint64_t state = Seed();
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        return static_cast<IntType>((state * 0x2545F4914F6CDD1DULL) >> 32);
    }

private:
    static std::uint64_t Seed() {
        std::random_device device;
        const std::uint64_t seed = (static_cast<std::uint64_t>(device()) << 32) ^ device();
        return seed != 0 ? seed : 0x9E3779B97F4A7C15ULL;  // xorshift must not start at 0
    }
};

/// websocketpp::config::asio_client with FastMaskRng and no websocketpp logging.
using FastClientConfig =
    wspp::QuietConfig<websocketpp::config::asio_client,
                      FastMaskRng<std::uint32_t, websocketpp::config::asio_client::concurrency_type>>;

}  // namespace syncline::test_support
