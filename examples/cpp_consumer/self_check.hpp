#pragma once
// `syncline_example_cpp --self-check DATABASE`: a short run that proves a build of the example works end to end,
// without a client program. It starts the server on a free port, asks GET /healthz, opens a websocket on the posts
// route, creates a post and checks the reply went through the consumer's PerformCreate hook (author "anonymous",
// status 201). tests/install runs it against an installed syncline (find_package(syncline)).
//
// The client below is the least a check needs (plain POSIX sockets, one masked text frame, unfragmented replies); it
// is not a websocket client to copy.

#include <syncline/transport/server.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdint>
#include <iostream>
#include <string>

namespace self_check {

// One blocking TCP connection to 127.0.0.1 whose reads give up after 10 s.
class Connection {
public:
    explicit Connection(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
        timeval timeout{10, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(port);
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        connected_ = ::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
    }
    ~Connection() { ::close(fd_); }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    bool Send(const std::string& bytes) {
        for (std::size_t sent = 0; connected_ && sent < bytes.size();) {
            ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
            if (n <= 0) return false;
            sent += static_cast<std::size_t>(n);
        }
        return connected_;
    }
    // Reads until `count` bytes are buffered; false on timeout or end of stream.
    bool Fill(std::size_t count) {
        char chunk[4096];
        while (connected_ && buffer_.size() < count) {
            ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
            if (n <= 0) return false;
            buffer_.append(chunk, static_cast<std::size_t>(n));
        }
        return connected_;
    }
    // The HTTP head of a response (up to the blank line), or "" on failure.
    std::string ReadHead() {
        std::size_t end;
        while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
            if (!Fill(buffer_.size() + 1)) return "";
        }
        return Take(end + 4);
    }
    std::string Take(std::size_t count) {
        std::string taken = buffer_.substr(0, count);
        buffer_.erase(0, count);
        return taken;
    }
    // The payload of the next text frame (other frames skipped), or "" on failure.
    std::string ReadText() {
        while (Fill(2)) {
            const int opcode = static_cast<unsigned char>(buffer_[0]) & 0x0f;
            std::size_t length = static_cast<unsigned char>(buffer_[1]) & 0x7f;
            std::size_t header = 2;
            if (length >= 126) {
                header = length == 126 ? 4 : 10;
                if (!Fill(header)) return "";
                length = 0;
                for (std::size_t i = 2; i < header; ++i)
                    length = (length << 8) | static_cast<unsigned char>(buffer_[i]);
            }
            if (!Fill(header + length)) return "";
            Take(header);
            std::string payload = Take(length);
            if (opcode == 1) return payload;
            if (opcode == 8) return "";  // closed
        }
        return "";
    }

private:
    int fd_;
    bool connected_ = false;
    std::string buffer_;
};

// One masked client text frame (RFC 6455 §5.3); payloads under 64 KiB.
inline std::string TextFrame(const std::string& text) {
    std::string frame(1, '\x81');
    if (text.size() < 126) {
        frame.push_back(static_cast<char>(0x80 | text.size()));
    } else {
        frame.push_back(static_cast<char>(0x80 | 126));
        frame.push_back(static_cast<char>(text.size() >> 8));
        frame.push_back(static_cast<char>(text.size() & 0xff));
    }
    const char mask[4] = {0x1b, 0x2c, 0x3d, 0x4e};
    frame.append(mask, 4);
    for (std::size_t i = 0; i < text.size(); ++i) frame.push_back(static_cast<char>(text[i] ^ mask[i % 4]));
    return frame;
}

inline bool Expect(bool ok, const std::string& what, const std::string& seen) {
    if (!ok) std::cerr << "self-check failed: " << what << "; got: " << seen << "\n";
    return ok;
}

// Starts `server` (configured, not started), runs the checks and stops it. Returns the process's exit code.
inline int Run(syncline::transport::Server& server, const std::string& route) {
    server.Start();
    const std::uint16_t port = server.port();
    bool ok = false;
    {
        Connection http(port);
        http.Send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        std::string head = http.ReadHead();
        ok = Expect(head.rfind("HTTP/1.1 200", 0) == 0, "GET /healthz answers 200", head);
    }
    if (ok) {
        Connection ws(port);
        ws.Send("GET " + route +
                " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: c2VsZi1jaGVjay1rZXktMDE=\r\nSec-WebSocket-Version: 13\r\n\r\n");
        std::string head = ws.ReadHead();
        ok = Expect(head.rfind("HTTP/1.1 101", 0) == 0, "the websocket handshake answers 101", head);
        if (ok) {
            ws.Send(TextFrame(R"({"action": "create", "data": {"title": "self-check"}, "request_id": 1})"));
            std::string reply = ws.ReadText();
            ok = Expect(reply.find("\"response_status\":201") != std::string::npos &&
                            reply.find("\"author\":\"anonymous\"") != std::string::npos,
                        "create answers 201 with the author PerformCreate set", reply);
            if (ok) std::cout << "self-check ok: " << reply << "\n";
        }
    }
    server.Stop();
    return ok ? 0 : 1;
}

}  // namespace self_check
