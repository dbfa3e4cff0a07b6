// The descriptor guard: sockets in their handshake, the spare descriptor, and the limits derived from RLIMIT_NOFILE.
// Thread-safe (one mutex); the accept strand and the connections' strands call in.

#include "socket_tracker.hpp"

#include <syncline/transport/websocket_server.hpp>

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>

namespace syncline::transport {

SocketTracker::SocketTracker(std::size_t max_handshakes, std::chrono::milliseconds grace)
    : max_handshakes_(std::max<std::size_t>(max_handshakes, 1)), grace_(grace) {
    spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

SocketTracker::~SocketTracker() {
    if (spare_fd_ >= 0) ::close(spare_fd_);
}

std::shared_ptr<SocketSlot> SocketTracker::Track(const websocketpp::connection_hdl& hdl, bool borrowed) {
    auto slot = std::make_shared<SocketSlot>(shared_from_this(), borrowed);
    std::lock_guard<std::mutex> lock(mutex_);
    in_handshake_.emplace_back(hdl, slot.get());
    slot->position = std::prev(in_handshake_.end());
    return slot;
}

std::optional<std::chrono::steady_clock::time_point> SocketTracker::TakeOverdue(
    std::chrono::steady_clock::time_point now, std::vector<websocketpp::connection_hdl>& evict) {
    std::lock_guard<std::mutex> lock(mutex_);
    while (in_handshake_.size() > max_handshakes_) {
        auto& [oldest, oldest_slot] = in_handshake_.front();
        if (oldest_slot->accepted_at + grace_ > now) {
            return oldest_slot->accepted_at + grace_;
        }
        evict.push_back(oldest);
        oldest_slot->in_handshake = false;
        in_handshake_.pop_front();
    }
    return std::nullopt;
}

void SocketTracker::Promote(SocketSlot& slot) {
    std::lock_guard<std::mutex> lock(mutex_);
    Forget(slot);
}

bool SocketTracker::LendSpare() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (spare_fd_ < 0) return false;
    ::close(spare_fd_);
    spare_fd_ = -1;
    return true;
}

void SocketTracker::Release(SocketSlot& slot) {
    std::lock_guard<std::mutex> lock(mutex_);
    Forget(slot);
    if (slot.overflow && spare_fd_ < 0) {
        spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);  // the borrowed descriptor was just closed
    }
}

void SocketTracker::Forget(SocketSlot& slot) {
    if (slot.in_handshake) {
        in_handshake_.erase(slot.position);
        slot.in_handshake = false;
    }
}

SocketSlot::~SocketSlot() {
    if (socket != nullptr) {
        boost::system::error_code ignored;
        socket->close(ignored);
    }
    tracker->Release(*this);
}

std::size_t DefaultMaxConnections() {
    rlimit limit{};
    std::size_t soft = 1024;
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) {
        soft = limit.rlim_cur == RLIM_INFINITY ? kMaxDefaultConnections + kDescriptorReserve
                                               : static_cast<std::size_t>(limit.rlim_cur);
    }
    const std::size_t reserve = std::min(kDescriptorReserve, soft / 2);
    return std::clamp<std::size_t>(soft - reserve, 1, kMaxDefaultConnections);
}

std::size_t SoftDescriptorLimit() {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return 0;
    return static_cast<std::size_t>(limit.rlim_cur);
}

}  // namespace syncline::transport
