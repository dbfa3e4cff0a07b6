// Plain blocking TCP for tests (POSIX sockets, no Asio), and a minimal HTTP GET on top of it.
#include <syncline/test_support/ws_client.hpp>

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace syncline::test_support {

std::optional<TcpConnection> TcpConnection::Connect(const std::string& host, std::uint16_t port,
                                                    std::string* error) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* results = nullptr;
    const std::string service = std::to_string(port);
    const int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &results);
    if (rc != 0) {
        if (error != nullptr) {
            *error = std::string("getaddrinfo: ") + gai_strerror(rc);
        }
        return std::nullopt;
    }
    std::string last_error = "no address";
    for (addrinfo* ai = results; ai != nullptr; ai = ai->ai_next) {
        const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            last_error = std::strerror(errno);
            continue;
        }
        if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            const int one = 1;
            ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            freeaddrinfo(results);
            return TcpConnection(fd);
        }
        last_error = std::strerror(errno);
        ::close(fd);
    }
    freeaddrinfo(results);
    if (error != nullptr) {
        *error = "connect to " + host + ":" + service + ": " + last_error;
    }
    return std::nullopt;
}

TcpConnection::TcpConnection(TcpConnection&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      eof_(other.eof_),
      buffer_(std::move(other.buffer_)),
      idle_every_(other.idle_every_),
      idle_handler_(std::move(other.idle_handler_)) {}

TcpConnection& TcpConnection::operator=(TcpConnection&& other) noexcept {
    if (this != &other) {
        Close();
        fd_ = std::exchange(other.fd_, -1);
        eof_ = other.eof_;
        buffer_ = std::move(other.buffer_);
        idle_every_ = other.idle_every_;
        idle_handler_ = std::move(other.idle_handler_);
    }
    return *this;
}

void TcpConnection::SetIdleHandler(std::chrono::milliseconds every, std::function<void()> handler) {
    idle_every_ = every;
    idle_handler_ = std::move(handler);
}

TcpConnection::~TcpConnection() {
    Close();
}

bool TcpConnection::SetReceiveBufferBytes(int bytes) {
    return fd_ >= 0 && ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes)) == 0;
}

bool TcpConnection::SetSendTimeout(std::chrono::milliseconds timeout) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
    return fd_ >= 0 && ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == 0;
}

void TcpConnection::Close() {
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
}

bool TcpConnection::SendAll(std::string_view data) {
    while (!data.empty() && fd_ >= 0) {
        const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return false;
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return data.empty();
}

bool TcpConnection::Fill(std::chrono::steady_clock::time_point deadline) {
    if (fd_ < 0 || eof_) {
        return false;
    }
    for (;;) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            return false;
        }
        pollfd pfd{fd_, POLLIN, 0};
        long long wait_ms = std::min<long long>(left.count(), 60000);
        if (idle_handler_ && idle_every_.count() > 0) {
            wait_ms = std::min<long long>(wait_ms, idle_every_.count());
        }
        const int ready = ::poll(&pfd, 1, static_cast<int>(wait_ms));
        if (ready < 0 && errno == EINTR) {
            continue;
        }
        if (ready <= 0) {
            if (ready < 0) {
                return false;
            }
            if (idle_handler_ && idle_every_.count() > 0 && wait_ms == idle_every_.count()) {
                idle_handler_();
            }
            continue;  // poll timed out: the loop re-checks the deadline
        }
        char chunk[16384];
        const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            eof_ = true;
            return false;
        }
        buffer_.append(chunk, static_cast<std::size_t>(n));
        return true;
    }
}

std::optional<std::string> TcpConnection::ReadUntil(std::string_view delimiter, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        const std::size_t at = buffer_.find(delimiter);
        if (at != std::string::npos) {
            std::string out = buffer_.substr(0, at + delimiter.size());
            buffer_.erase(0, at + delimiter.size());
            return out;
        }
        if (!Fill(deadline)) {
            return std::nullopt;
        }
    }
}

std::optional<std::string> TcpConnection::ReadExactly(std::size_t count, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (buffer_.size() < count) {
        if (!Fill(deadline)) {
            return std::nullopt;
        }
    }
    std::string out = buffer_.substr(0, count);
    buffer_.erase(0, count);
    return out;
}

std::optional<std::string> TcpConnection::ReadToEof(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!eof_) {
        if (!Fill(deadline) && !eof_) {
            return std::nullopt;
        }
    }
    return std::exchange(buffer_, std::string());
}

namespace {

std::string Lower(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c); });
    return text;
}

std::string_view Trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
        text.remove_prefix(1);
    }
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) {
        text.remove_suffix(1);
    }
    return text;
}

}  // namespace

HttpResponse HttpGet(const std::string& host, std::uint16_t port, const std::string& path,
                     std::chrono::milliseconds timeout) {
    HttpResponse response;
    std::optional<TcpConnection> connection = TcpConnection::Connect(host, port, &response.error);
    if (!connection) {
        return response;
    }
    const std::string request = "GET " + path + " HTTP/1.1\r\nHost: " + host + ":" + std::to_string(port) +
                                "\r\nUser-Agent: syncline-test\r\nConnection: close\r\n\r\n";
    if (!connection->SendAll(request)) {
        response.error = "send failed";
        return response;
    }
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    const auto left = [&] {
        return std::max(std::chrono::milliseconds(0), std::chrono::duration_cast<std::chrono::milliseconds>(
                                                          deadline - std::chrono::steady_clock::now()));
    };
    std::optional<std::string> head = connection->ReadUntil("\r\n\r\n", left());
    if (!head) {
        response.error = "no complete response head";
        return response;
    }
    // Status line: HTTP/1.1 200 OK
    const std::size_t line_end = head->find("\r\n");
    const std::string status_line = head->substr(0, line_end);
    const std::size_t space = status_line.find(' ');
    if (status_line.rfind("HTTP/", 0) != 0 || space == std::string::npos) {
        response.error = "bad status line: " + status_line;
        return response;
    }
    const int status = std::atoi(status_line.c_str() + space + 1);
    std::optional<std::size_t> content_length;
    std::size_t pos = line_end + 2;
    while (pos < head->size()) {
        const std::size_t end = head->find("\r\n", pos);
        if (end == std::string::npos || end == pos) {
            break;
        }
        const std::string_view line(head->data() + pos, end - pos);
        pos = end + 2;
        const std::size_t colon = line.find(':');
        if (colon == std::string_view::npos) {
            continue;
        }
        std::string name = Lower(std::string(Trim(line.substr(0, colon))));
        std::string value(Trim(line.substr(colon + 1)));
        if (name == "content-length") {
            content_length = static_cast<std::size_t>(std::strtoull(value.c_str(), nullptr, 10));
        }
        response.headers.emplace_back(std::move(name), std::move(value));
    }
    std::optional<std::string> body =
        content_length ? connection->ReadExactly(*content_length, left()) : connection->ReadToEof(left());
    if (!body) {
        response.error = "incomplete body";
        return response;
    }
    response.status = status;
    response.body = std::move(*body);
    return response;
}

}  // namespace syncline::test_support
