// Plain HTTP on the websocket port: /healthz (liveness: 200, or 503 while stopping), /readyz (readiness: 200, or 503
// with the reason WebSocketOptions::readiness gives), /metrics (WebSocketOptions::metrics, when set), 405 for another
// method, 404 for any other path, and the 503 a handshake gets when there is no room for it. Static files come first
// (static_files.cpp), on the paths they cover.

#include "websocket_server_impl.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <string>
#include <string_view>

namespace syncline::transport {
namespace {

std::string_view PathOf(std::string_view resource) { return resource.substr(0, resource.find('?')); }

// {"status":"not ready","reason":"..."}, the reason escaped as JSON.
std::string NotReadyBody(const std::string& reason) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    writer.StartObject();
    writer.Key("status");
    writer.String("not ready");
    writer.Key("reason");
    writer.String(reason.data(), static_cast<rapidjson::SizeType>(reason.size()));
    writer.EndObject();
    return buffer.GetString();
}

}  // namespace

void WebSocketServer::Impl::RefuseBusy(WsConnection& connection, const std::string& body) {
    connection.set_status(websocketpp::http::status_code::service_unavailable);
    connection.append_header("Content-Type", "application/json");
    connection.append_header("Retry-After", "1");
    connection.set_body(body);
}

void WebSocketServer::Impl::AnswerMetrics(WsConnection& connection) {
    if (connection.get_request().get_method() != "GET") {
        connection.set_status(websocketpp::http::status_code::method_not_allowed);
        connection.append_header("Allow", "GET");
        connection.append_header("Content-Type", "application/json");
        connection.set_body(R"({"detail":"Method not allowed."})");
        return;
    }
    connection.set_status(websocketpp::http::status_code::ok);
    connection.append_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    connection.set_body(options_.metrics());
}

void WebSocketServer::Impl::OnHttp(const websocketpp::connection_hdl& hdl) {
    ConnectionPtr connection = ConnectionOf(hdl);
    if (!connection) {
        return;
    }
    const std::string_view path = PathOf(connection->get_resource());
    if (ServeStatic(*connection, path)) return;
    if (path == "/metrics" && options_.metrics) {
        AnswerMetrics(*connection);
        return;
    }
    connection->append_header("Content-Type", "application/json");
    if (path != "/healthz" && path != "/readyz") {
        connection->set_status(websocketpp::http::status_code::not_found);
        connection->set_body(R"({"detail":"Not found."})");
    } else if (connection->get_request().get_method() != "GET") {
        connection->set_status(websocketpp::http::status_code::method_not_allowed);
        connection->append_header("Allow", "GET");
        connection->set_body(R"({"detail":"Method not allowed."})");
    } else if (stopping_.load()) {
        connection->set_status(websocketpp::http::status_code::service_unavailable);
        connection->set_body(R"({"status":"stopping"})");
    } else if (std::string reason = path == "/readyz" && options_.readiness ? options_.readiness() : std::string();
               !reason.empty()) {
        connection->set_status(websocketpp::http::status_code::service_unavailable);
        connection->set_body(NotReadyBody(reason));
    } else {
        connection->set_status(websocketpp::http::status_code::ok);
        connection->set_body(R"({"status":"ok"})");
    }
}

}  // namespace syncline::transport
