#pragma once
// Private to transport: the websocketpp types the server's files share (the endpoint config, its connection and
// message types), the connection base that carries our per-connection state, and the server's constants. Every file
// that includes this one includes websocketpp and Asio (see SYNCLINE_ASIO_TU_OPTIONS in transport/CMakeLists.txt).

#include <syncline/core/protocol/close_code.hpp>

#include <syncline/wspp/quiet_config.hpp>
#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/server.hpp>

#include <chrono>
#include <cstddef>
#include <memory>

namespace syncline::transport {

namespace asio = websocketpp::lib::asio;
using ErrorCode = websocketpp::lib::error_code;

inline constexpr int kGoingAway = ToInt(CloseCode::kGoingAway);
inline constexpr int kInternalError = ToInt(CloseCode::kInternalError);
inline constexpr int kTryAgainLater = ToInt(CloseCode::kTryAgainLater);
inline constexpr char kShutdownReason[] = "server shutting down";
inline constexpr char kPongTimeoutReason[] = "pong timeout";
inline constexpr std::size_t kMaxHttpBodyBytes = 64 * 1024;
inline constexpr std::chrono::milliseconds kAcceptRetryDelay{100};
inline constexpr std::size_t kDescriptorReserve = 256;
inline constexpr std::size_t kMaxDefaultConnections = 65536;

struct ConnectionState;
struct SocketSlot;

// websocketpp derives every connection from config::connection_base; ours carries the connection's state so a frame
// handler reaches it without a lookup in a shared map, and the slot of its socket.
struct ConnectionData {
    std::shared_ptr<ConnectionState> syncline_state;
    std::shared_ptr<SocketSlot> socket_slot;  // set when accepted, before the connection starts
};

// Bytes each server connection reads into at a time. websocketpp's 16 KiB buffer is a member of every connection and
// was most of an idle connection's memory; frames of any size still arrive (in more reads), and the requests clients
// send are mostly far smaller. 768 bytes: 10,146 bytes of server RSS per idle connection, against 10,405 with 1 KiB and
// 14.4 KB with 16 KiB; 8 KB request frames are about 8 % slower than with 1 KiB, small ones the same
// (benchmarks/README.md, "Memory per idle connection").
inline constexpr std::size_t kServerReadBuffer = 768;

// The stock asio config with our connection base, a smaller read buffer and websocketpp's logging compiled out: we
// log through spdlog.
using WsppConfig = syncline::wspp::QuietConfig<websocketpp::config::asio, websocketpp::config::asio::rng_type,
                                               ConnectionData, kServerReadBuffer>;

using WsServer = websocketpp::server<WsppConfig>;
using WsConnection = WsServer::connection_type;
using ConnectionPtr = WsServer::connection_ptr;
using MessageType = WsppConfig::message_type;
using MessagePtr = MessageType::ptr;
using TimerPtr = WsConnection::timer_ptr;

}  // namespace syncline::transport
