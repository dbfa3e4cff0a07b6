// Each connection's life, on its strand: the handshake (route, limits, Endpoint::Admit), the open (outbox, session,
// pings), frames, the server's pings and the client's, and the close (Session::OnClose once, last).

#include "websocket_server_impl.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cassert>
#include <exception>

namespace syncline::transport {
namespace {

std::string FormatRemote(const asio::ip::tcp::endpoint& endpoint) {
    asio::ip::address address = endpoint.address();
    if (address.is_v6() && address.to_v6().is_v4_mapped()) {
        address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
    }
    std::string text = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
    return text + ":" + std::to_string(endpoint.port());
}

std::string AsciiLower(std::string text) {
    for (char& c : text) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return text;
}

std::string Describe(const ConnectionState& state) { return state.request.path + " from " + state.request.remote; }

}  // namespace

ConnectionPtr WebSocketServer::Impl::ConnectionOf(const websocketpp::connection_hdl& hdl) {
    ErrorCode ec;
    ConnectionPtr connection = server_.get_con_from_hdl(hdl, ec);
    assert(!connection || connection->get_strand()->running_in_this_thread());
    return connection;
}

void WebSocketServer::Impl::OnTcpPostInit(const websocketpp::connection_hdl& hdl) {
    // Without TCP_NODELAY a second small frame waits for the peer's delayed ACK (~40 ms).
    if (ConnectionPtr connection = ConnectionOf(hdl)) {
        boost::system::error_code ec;
        connection->get_raw_socket().set_option(asio::ip::tcp::no_delay(true), ec);
    }
}

bool WebSocketServer::Impl::OnValidate(const websocketpp::connection_hdl& hdl) {
    ConnectionPtr connection = ConnectionOf(hdl);
    if (!connection) {
        return false;
    }
    auto state = std::make_shared<ConnectionState>();
    const std::string& resource = connection->get_resource();
    const std::size_t question = resource.find('?');
    state->request.path = resource.substr(0, question);
    state->request.query = question == std::string::npos ? std::string() : resource.substr(question + 1);
    const auto& headers = connection->get_request().get_headers();
    state->request.headers.reserve(headers.size());  // kept as long as the socket: no spare capacity
    for (const auto& [name, value] : headers) state->request.headers.emplace_back(AsciiLower(name), value);
    boost::system::error_code ec;
    const asio::ip::tcp::endpoint remote = connection->get_raw_socket().remote_endpoint(ec);
    state->request.remote = ec ? std::string("unknown") : FormatRemote(remote);

    if (stopping_.load()) {
        connection->set_status(websocketpp::http::status_code::service_unavailable);
        return false;
    }
    const auto route = routes_.find(state->request.path);
    if (route == routes_.end()) {
        connection->set_status(websocketpp::http::status_code::not_found);
        return false;
    }
    if (connection->socket_slot && connection->socket_slot->overflow) {
        // On the spare descriptor: answered, but not kept (it must be free for the next /healthz).
        RefuseBusy(*connection, R"({"detail":"The server is out of file descriptors. Try again later."})");
        return false;
    }
    if (connections_->open.fetch_add(1) >= max_connections_) {
        connections_->open.fetch_sub(1);
        RefuseBusy(*connection, "{\"detail\":\"Too many connections: the server's limit (max_connections " +
                                    std::to_string(max_connections_) + ") is reached. Try again later.\"}");
        if (!connections_->full_logged.exchange(true)) {
            spdlog::warn("websocket server: {} connections open (max_connections); refusing handshakes with 503",
                         max_connections_);
        }
        return false;
    }
    // Released with the state: when the connection closes, or goes without opening.
    state->websocket_slot =
        std::shared_ptr<void>(nullptr, [connections = connections_, quiet_below = max_connections_ * 3 / 4](void*) {
            if (connections->open.fetch_sub(1) - 1 <= quiet_below) {
                connections->full_logged.store(false);  // the next time the limit is reached is logged again
            }
        });
    int status = 500;
    try {
        status = route->second.endpoint->Admit(state->request);
    } catch (const std::exception& e) {
        spdlog::error("websocket: Endpoint::Admit threw for {}: {}", Describe(*state), e.what());
    } catch (...) {
        spdlog::error("websocket: Endpoint::Admit threw for {}: unknown exception", Describe(*state));
    }
    if (status == 101) {
        state->endpoint = route->second.endpoint;
        state->route_open = &route->second.open;
        connection->syncline_state = std::move(state);
        if (connection->socket_slot) {
            tracker_->Promote(*connection->socket_slot);
        }
        return true;
    }
    if (status < 100 || status > 599) {
        status = 500;
    }
    connection->set_status(static_cast<websocketpp::http::status_code::value>(status));
    return false;
}

void WebSocketServer::Impl::OnOpen(const websocketpp::connection_hdl& hdl) {
    ConnectionPtr connection = ConnectionOf(hdl);
    if (!connection || !connection->syncline_state) {
        return;
    }
    ConnectionState& state = *connection->syncline_state;
    state.outbox =
        std::make_shared<ConnectionOutbox>(connection,
                                           QueueLimits{options_.write_high_water, options_.max_queue_bytes,
                                                       options_.slow_reader_timeout, options_.coalesce_after},
                                           outbox_counters_);
    // Registered with or without a session, so that Stop() reaches every outbox it may have to mark closed.
    bool stopping = false;
    {
        std::lock_guard<std::mutex> lock(registry_mutex_);
        registry_.emplace(&state, connection->syncline_state);
        stopping = stopping_.load();
    }
    if (stopping) {
        // Stop() took its snapshot before this connection registered: close it here, without a session.
        state.outbox->Close(kGoingAway, kShutdownReason);
        return;
    }
    try {
        state.session = state.endpoint->Open(state.request, state.outbox);
        if (!state.session) {
            spdlog::error("websocket: Endpoint::Open returned no session for {}", Describe(state));
        }
    } catch (const std::exception& e) {
        spdlog::error("websocket: Endpoint::Open threw for {}: {}", Describe(state), e.what());
    } catch (...) {
        spdlog::error("websocket: Endpoint::Open threw for {}: unknown exception", Describe(state));
    }
    if (!state.session) {
        state.outbox->Close(kInternalError, "internal error");
        return;
    }
    open_count_.fetch_add(1);
    if (state.route_open) state.route_open->fetch_add(1);
    std::vector<std::pair<std::string, std::string>>().swap(state.request.headers);
    std::string().swap(state.request.query);
    if (options_.ping_interval.count() > 0) {
        state.ping_sent = std::chrono::steady_clock::now();
        SchedulePing(connection, state, options_.ping_interval);
    }
}

void WebSocketServer::Impl::OnMessage(const websocketpp::connection_hdl& hdl, const MessagePtr& message) {
    ConnectionPtr connection = ConnectionOf(hdl);
    if (!connection || !connection->syncline_state || !connection->syncline_state->session) {
        return;
    }
    ConnectionState& state = *connection->syncline_state;
    const std::string& payload = message->get_payload();
    frames_in_.fetch_add(1, std::memory_order_relaxed);
    try {
        if (message->get_opcode() == websocketpp::frame::opcode::text) {
            state.session->OnText(payload);
        } else {
            state.session->OnBinary(payload);
        }
    } catch (const std::exception& e) {
        spdlog::error("websocket: session threw on a frame ({}): {}", Describe(state), e.what());
    } catch (...) {
        spdlog::error("websocket: session threw on a frame ({}): unknown exception", Describe(state));
    }
}

void WebSocketServer::Impl::OnClose(const websocketpp::connection_hdl& hdl) {
    ConnectionPtr connection = ConnectionOf(hdl);
    if (!connection || !connection->syncline_state) {
        return;
    }
    std::shared_ptr<ConnectionState> state = connection->syncline_state;
    if (state->ping_timer) {
        state->ping_timer->cancel();
        state->ping_timer.reset();
    }
    FinishConnection(*state);
    // Break the connection -> state link now rather than when the connection object goes.
    connection->syncline_state.reset();
}

void WebSocketServer::Impl::FinishConnection(ConnectionState& state) {
    if (state.outbox) {
        state.outbox->MarkClosed();
    }
    if (state.session) {
        open_count_.fetch_sub(1);  // before OnClose: whoever sees the close also sees the count drop
        if (state.route_open) state.route_open->fetch_sub(1);
        try {
            state.session->OnClose();
        } catch (const std::exception& e) {
            spdlog::error("websocket: Session::OnClose threw ({}): {}", Describe(state), e.what());
        } catch (...) {
            spdlog::error("websocket: Session::OnClose threw ({}): unknown exception", Describe(state));
        }
        state.session.reset();
    }
    bool now_empty = false;
    {
        std::lock_guard<std::mutex> lock(registry_mutex_);
        registry_.erase(&state);
        now_empty = registry_.empty();
    }
    if (now_empty) {
        registry_cv_.notify_all();
    }
}

void WebSocketServer::Impl::OnPing(const websocketpp::connection_hdl& hdl, std::string payload) {
    ConnectionPtr connection = ConnectionOf(hdl);
    if (connection && connection->syncline_state && connection->syncline_state->outbox) {
        connection->syncline_state->outbox->QueuePong(std::move(payload));
    }
}

void WebSocketServer::Impl::OnPong(const websocketpp::connection_hdl& hdl) {
    ConnectionPtr connection = ConnectionOf(hdl);
    if (connection && connection->syncline_state) {
        connection->syncline_state->awaiting_pong = false;
    }
}

void WebSocketServer::Impl::SchedulePing(const ConnectionPtr& connection, ConnectionState& state,
                                         std::chrono::milliseconds delay) {
    const long delay_ms = std::max<long>(1, static_cast<long>(delay.count()));
    state.ping_timer = connection->set_timer(delay_ms, [this, hdl = connection->get_handle()](const ErrorCode& ec) {
        if (!ec) {
            OnPingTimer(hdl);
        }
    });
}

void WebSocketServer::Impl::OnPingTimer(const websocketpp::connection_hdl& hdl) {
    ConnectionPtr connection = ConnectionOf(hdl);
    if (!connection || !connection->syncline_state || !connection->syncline_state->session) {
        return;
    }
    ConnectionState& state = *connection->syncline_state;
    const auto now = std::chrono::steady_clock::now();
    const bool pong_deadline = options_.pong_timeout.count() > 0;
    if (state.awaiting_pong && state.outbox->reading_paused()) {
        // The socket is not read while its write waits in the write pool (for the database, or a custom writer):
        // a pong the peer sent waits unread, through no fault of the peer. Its deadline starts again, and runs out
        // only once reading has resumed.
        state.ping_sent = now;
    }
    if (state.awaiting_pong && pong_deadline && now - state.ping_sent >= options_.pong_timeout) {
        spdlog::debug("websocket: no pong within {} ms, closing {}", options_.pong_timeout.count(), Describe(state));
        state.outbox->Close(kGoingAway, kPongTimeoutReason);
        return;
    }
    if (!(state.awaiting_pong && pong_deadline) && now - state.ping_sent >= options_.ping_interval) {
        ErrorCode ec;
        connection->ping(std::string(), ec);
        if (ec) {
            return;  // the connection is closing
        }
        state.awaiting_pong = true;
        state.ping_sent = now;
    }
    auto next = state.ping_sent + options_.ping_interval;
    if (state.awaiting_pong && pong_deadline) {
        const auto deadline = state.ping_sent + options_.pong_timeout;
        next = next > now ? std::min(next, deadline) : deadline;
    }
    const auto delay = std::max(next - now, std::chrono::steady_clock::duration::zero());
    SchedulePing(connection, state, std::chrono::ceil<std::chrono::milliseconds>(delay));
}

}  // namespace syncline::transport
