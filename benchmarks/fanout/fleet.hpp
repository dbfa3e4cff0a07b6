#pragma once
// syncline_fanout: the client fleet (websocket subscribers) and the bare websocketpp broadcast server (the ceiling).
// This header names no websocketpp or Asio type; fleet.cpp is the tool's one translation unit that includes them.

#include <cstdint>
#include <memory>
#include <string>

#include "shared_state.hpp"

namespace syncline::fanout {

/// What a fleet connects to and how.
struct FleetSpec {
    std::uint16_t port = 0;
    std::string path = "/";
    int sockets = 0;
    int rows = 1;          ///< Socket i subscribes to pk 1 + i % rows.
    unsigned threads = 1;  ///< Client io threads.
    int timeout_s = 120;   ///< Bound on connecting and subscribing every socket.
};

/// The subscribers. Every socket sends {"action":"subscribe_instance","pk":N,"request_id":"s"}, waits for the 201,
/// then counts push frames into SharedState: it reads the counter the writer put in the row ("n"), marks the counters
/// of its row up to it as done, and records the first receipt time of each counter. Client frames are masked with a
/// cheap PRNG (tests/support/.../fast_client_config.hpp), TCP_NODELAY is on, websocketpp logging is off.
class Fleet {
public:
    explicit Fleet(SharedState& shared);
    ~Fleet();
    Fleet(const Fleet&) = delete;
    Fleet& operator=(const Fleet&) = delete;

    /// Connects and subscribes every socket (at most 64 handshakes in flight). Returns "" when all got their 201,
    /// else the first error. Prints progress to stderr while it takes more than a second.
    std::string Open(const FleetSpec& spec);
    /// Closes every socket (bounded wait) and stops the io threads. Idempotent.
    void Close();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// A bare websocketpp server on a free loopback port (stock asio config, logging off, TCP_NODELAY): it answers any
/// text frame carrying "pk": N with a 201 subscribe reply and remembers the socket for row N; Broadcast sends one
/// prepared frame (built once, shared by every socket) to a row's sockets. No syncline code is involved.
class BareServer {
public:
    explicit BareServer(unsigned threads);
    ~BareServer();
    BareServer(const BareServer&) = delete;
    BareServer& operator=(const BareServer&) = delete;

    std::uint16_t port() const;
    std::size_t subscribers() const;
    /// Sends `frame` to every socket subscribed to `pk`. Any thread.
    void Broadcast(std::int64_t pk, std::string frame);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace syncline::fanout
