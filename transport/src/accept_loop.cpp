// The accept loop, on the accept strand: accepts sockets, pauses when out of descriptors (the spare one lets one
// connection in), and closes the oldest sockets still in their handshake beyond max_handshakes.

#include "websocket_server_impl.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/bind_executor.hpp>

#include <cassert>
#include <cerrno>

namespace syncline::transport {

void WebSocketServer::Impl::DoAccept() {
    assert(accept_strand_.running_in_this_thread());
    if (!acceptor_.is_open()) {
        return;
    }
    ConnectionPtr connection = server_.get_connection();
    if (!connection) {
        spdlog::error("websocket server: cannot create a connection; retrying");
        RetryAcceptLater();
        return;
    }
    auto on_accept = [this, connection](const boost::system::error_code& ec) { OnAccept(connection, ec); };
    acceptor_.async_accept(connection->get_raw_socket(), asio::bind_executor(accept_strand_, on_accept));
}

void WebSocketServer::Impl::OnAccept(const ConnectionPtr& connection, const boost::system::error_code& ec) {
    assert(accept_strand_.running_in_this_thread());
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) {
        return;
    }
    if (ec) {
        // Out of descriptors or memory: retrying at once would spin. Log the first of a series only.
        if (ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space || ec == asio::error::no_memory ||
            ec.value() == ENFILE) {
            if (!accept_error_logged_) {
                spdlog::warn("websocket server: accept failed ({}); pausing accepts", ec.message());
                accept_error_logged_ = true;
            }
            // The spare descriptor lets the next accept through (a /healthz probe is answered on it); while it is
            // lent, accepts wait.
            if ((ec == asio::error::no_descriptors || ec.value() == ENFILE) && tracker_->LendSpare()) {
                lend_spare_ = true;
                DoAccept();
            } else {
                RetryAcceptLater();
            }
            return;
        }
        DoAccept();
        return;
    }
    accept_error_logged_ = false;
    connection->socket_slot = tracker_->Track(connection->get_handle(), lend_spare_);
    if (lend_spare_) {
        connection->socket_slot->socket = &connection->get_raw_socket();
        lend_spare_ = false;
    }
    EvictOverdueHandshakes();
    // start() runs the first steps of the connection (socket init, the tcp post-init handler, the first read)
    // synchronously: run it on the connection's strand, like every later step, not on the accept strand.
    asio::post(*connection->get_strand(), [connection] { connection->start(); });
    DoAccept();
}

void WebSocketServer::Impl::EvictOverdueHandshakes() {
    std::vector<websocketpp::connection_hdl> evict;
    const auto next = tracker_->TakeOverdue(std::chrono::steady_clock::now(), evict);
    for (const auto& hdl : evict) {
        Evict(hdl);
    }
    if (!next || (handshake_timer_armed_ && handshake_timer_at_ <= *next)) {
        return;
    }
    handshake_timer_armed_ = true;
    handshake_timer_at_ = *next;
    handshake_timer_.expires_at(*next);
    handshake_timer_.async_wait(asio::bind_executor(accept_strand_, [this](const boost::system::error_code& ec) {
        if (ec == asio::error::operation_aborted) {
            return;  // re-armed earlier, or stopping
        }
        handshake_timer_armed_ = false;
        if (acceptor_.is_open()) {
            EvictOverdueHandshakes();
        }
    }));
}

void WebSocketServer::Impl::Evict(const websocketpp::connection_hdl& hdl) {
    ErrorCode ec;
    ConnectionPtr victim = server_.get_con_from_hdl(hdl, ec);
    if (!victim) {
        return;
    }
    if (evictions_++ % 1000 == 0) {
        spdlog::warn("websocket server: more than {} sockets in their handshake; closing the oldest ({} so far)",
                     options_.max_handshakes, evictions_);
    }
    asio::post(*victim->get_strand(), [victim] {
        // Not if it became a websocket connection meanwhile.
        if (victim->get_state() == websocketpp::session::state::connecting && !victim->syncline_state) {
            victim->terminate(websocketpp::error::make_error_code(websocketpp::error::open_handshake_timeout));
        }
    });
}

void WebSocketServer::Impl::RetryAcceptLater() {
    accept_retry_timer_.expires_after(kAcceptRetryDelay);
    accept_retry_timer_.async_wait(asio::bind_executor(accept_strand_, [this](const boost::system::error_code& ec) {
        if (!ec) {
            DoAccept();
        }
    }));
}

}  // namespace syncline::transport
