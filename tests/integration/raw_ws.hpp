#pragma once
// A websocket client on a raw TCP socket that reads only when told to: for tests of readers that stop reading
// (the regular test client drains its socket on a background thread, so it never pushes back).

#include <syncline/test_support/ws_client.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace syncline::testing {

class RawWebSocket {
public:
    /// Connects and performs the handshake; nullopt on failure.
    static std::optional<RawWebSocket> Open(std::uint16_t port, const std::string& path) {
        auto tcp = test_support::TcpConnection::Connect("127.0.0.1", port);
        if (!tcp) return std::nullopt;
        std::string request = "GET " + path +
                              " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        if (!tcp->SendAll(request)) return std::nullopt;
        auto response = tcp->ReadUntil("\r\n\r\n");
        if (!response || response->find(" 101 ") == std::string::npos) return std::nullopt;
        return RawWebSocket(std::move(*tcp));
    }

    /// Caps the kernel's receive buffer (SO_RCVBUF): a peer that stops reading then makes the server queue soon (the
    /// autotuned buffer can grow to tcp_rmem's maximum, 32 MB on these machines).
    bool SetReceiveBufferBytes(int bytes) { return tcp_.SetReceiveBufferBytes(bytes); }

    /// Sends one masked text frame.
    bool SendText(const std::string& text) { return SendFrame(0x81, text); }

    /// Sends one masked frame with this first header byte (FIN + opcode).
    bool SendFrame(unsigned char first_byte, const std::string& text) { return tcp_.SendAll(Frame(first_byte, text)); }

    /// Sends bytes as they are (e.g. many frames built with Frame at once).
    bool SendBytes(const std::string& bytes) { return tcp_.SendAll(bytes); }

    /// Bounds each blocking send, so that a test never blocks for long on a server that stopped reading.
    bool SetSendTimeout(std::chrono::milliseconds timeout) { return tcp_.SetSendTimeout(timeout); }

    /// One masked client frame with this first header byte (FIN + opcode); payloads up to 64 KiB.
    static std::string Frame(unsigned char first_byte, const std::string& text) {
        std::string frame;
        frame.push_back(static_cast<char>(first_byte));
        const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
        if (text.size() < 126) {
            frame.push_back(static_cast<char>(0x80 | text.size()));
        } else {
            frame.push_back(static_cast<char>(0x80 | 126));
            frame.push_back(static_cast<char>((text.size() >> 8) & 0xff));
            frame.push_back(static_cast<char>(text.size() & 0xff));
        }
        frame.append(reinterpret_cast<const char*>(mask), 4);
        for (std::size_t i = 0; i < text.size(); ++i) frame.push_back(static_cast<char>(text[i] ^ mask[i % 4]));
        return frame;
    }

    /// Reads the next data or close frame: (opcode, payload); nullopt on timeout or when the connection ended.
    /// Pings are answered (a slow test must not be closed for not answering them) and skipped, and so are pongs.
    std::optional<std::pair<int, std::string>> ReadFrame(std::chrono::milliseconds timeout) {
        while (true) {
            auto frame = ReadAnyFrame(timeout);
            if (!frame) return frame;
            if (frame->first == 9) {
                SendFrame(0x8A, frame->second);  // pong
            } else if (frame->first != 10) {
                return frame;
            }
        }
    }

    std::optional<std::pair<int, std::string>> ReadAnyFrame(std::chrono::milliseconds timeout) {
        auto head = tcp_.ReadExactly(2, timeout);
        if (!head) return std::nullopt;
        int opcode = static_cast<unsigned char>((*head)[0]) & 0x0f;
        std::uint64_t length = static_cast<unsigned char>((*head)[1]) & 0x7f;
        if (length == 126 || length == 127) {
            auto ext = tcp_.ReadExactly(length == 126 ? 2 : 8, timeout);
            if (!ext) return std::nullopt;
            length = 0;
            for (unsigned char c : *ext) length = (length << 8) | c;
        }
        auto payload = length ? tcp_.ReadExactly(static_cast<std::size_t>(length), timeout) : std::string();
        if (!payload) return std::nullopt;
        return std::make_pair(opcode, std::move(*payload));
    }

    RawWebSocket(RawWebSocket&& other) noexcept : RawWebSocket(std::move(other.tcp_)) {}
    RawWebSocket& operator=(RawWebSocket&& other) noexcept {
        tcp_ = std::move(other.tcp_);
        InstallNudge();
        return *this;
    }

private:
    // While a read waits, a ping every second: a client segment carries this socket's receive window. After the test
    // has not read for a long time, the server's writes stall on a zero window, and Linux does not always send the
    // window update once the test drains its buffer; the server then learns that the window opened only from its
    // zero-window probes, whose interval has backed off to over 10 s by then (seen with ss: the client's receive queue
    // empty, the server in "persist" with backoff 6 and megabytes unsent). The server answers with a pong (skipped).
    explicit RawWebSocket(test_support::TcpConnection tcp) : tcp_(std::move(tcp)) { InstallNudge(); }
    void InstallNudge() {
        tcp_.SetIdleHandler(std::chrono::milliseconds(1000), [this] { tcp_.SendAll(Frame(0x89, "")); });
    }
    test_support::TcpConnection tcp_;
};

}  // namespace syncline::testing
