#pragma once
/// \file
/// websocketpp endpoint configs with websocketpp's own logging compiled out (syncline logs through spdlog). The one
/// definition shared by the transport's server, the test client, and the benchmarks' bare servers and clients.
/// Internal: not part of syncline's public headers (which never name websocketpp types).

#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/config/asio_no_tls_client.hpp>

#include <cstddef>

namespace syncline::wspp {

/// `Base` (websocketpp::config::asio or asio_client) with logging off, plain TCP sockets, and optionally another
/// masking RNG (`Rng`), a per-connection base class (`ConnectionBase`, reachable from every connection) and another
/// size for the buffer each connection reads into (`ReadBuffer`, bytes; websocketpp's default is 16 KiB, part of
/// every connection object).
template <class Base, class Rng = typename Base::rng_type, class ConnectionBase = typename Base::connection_base,
          std::size_t ReadBuffer = Base::connection_read_buffer_size>
struct QuietConfig : Base {
    using type = QuietConfig;
    using base = Base;

    using concurrency_type = typename base::concurrency_type;
    using request_type = typename base::request_type;
    using response_type = typename base::response_type;
    using message_type = typename base::message_type;
    using con_msg_manager_type = typename base::con_msg_manager_type;
    using endpoint_msg_manager_type = typename base::endpoint_msg_manager_type;
    using alog_type = typename base::alog_type;
    using elog_type = typename base::elog_type;
    using rng_type = Rng;
    using connection_base = ConnectionBase;

    static const websocketpp::log::level elog_level = websocketpp::log::elevel::none;
    static const websocketpp::log::level alog_level = websocketpp::log::alevel::none;
    static const std::size_t connection_read_buffer_size = ReadBuffer;

    struct transport_config : public base::transport_config {
        using concurrency_type = typename type::concurrency_type;
        using alog_type = typename type::alog_type;
        using elog_type = typename type::elog_type;
        using request_type = typename type::request_type;
        using response_type = typename type::response_type;
        using socket_type = websocketpp::transport::asio::basic_socket::endpoint;
    };
    using transport_type = websocketpp::transport::asio::endpoint<transport_config>;
};

}  // namespace syncline::wspp
