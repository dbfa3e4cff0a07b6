// Plain HTTP on the websocket port: /healthz (200, or 503 while stopping; 405 for another method), 404 for any other
// path, and the 503 a handshake gets when there is no room for it.

#include "websocket_server_impl.hpp"

#include <string_view>

namespace syncline::transport {
namespace {

std::string_view PathOf(std::string_view resource) { return resource.substr(0, resource.find('?')); }

}  // namespace

void WebSocketServer::Impl::RefuseBusy(WsConnection& connection, const std::string& body) {
    connection.set_status(websocketpp::http::status_code::service_unavailable);
    connection.append_header("Content-Type", "application/json");
    connection.append_header("Retry-After", "1");
    connection.set_body(body);
}

void WebSocketServer::Impl::OnHttp(const websocketpp::connection_hdl& hdl) {
    ConnectionPtr connection = ConnectionOf(hdl);
    if (!connection) {
        return;
    }
    const std::string_view path = PathOf(connection->get_resource());
    connection->append_header("Content-Type", "application/json");
    if (path != "/healthz") {
        connection->set_status(websocketpp::http::status_code::not_found);
        connection->set_body(R"({"detail":"Not found."})");
    } else if (connection->get_request().get_method() != "GET") {
        connection->set_status(websocketpp::http::status_code::method_not_allowed);
        connection->append_header("Allow", "GET");
        connection->set_body(R"({"detail":"Method not allowed."})");
    } else if (stopping_.load()) {
        connection->set_status(websocketpp::http::status_code::service_unavailable);
        connection->set_body(R"({"status":"stopping"})");
    } else {
        connection->set_status(websocketpp::http::status_code::ok);
        connection->set_body(R"({"status":"ok"})");
    }
}

}  // namespace syncline::transport
