#pragma once
// Private to transport: the descriptor guard. Every accepted socket has a SocketSlot; the SocketTracker keeps the ones
// still in their handshake, oldest first, so that the server can close the oldest beyond max_handshakes, and keeps a
// spare descriptor for when the process runs out of them. DefaultMaxConnections (public) and SoftDescriptorLimit read
// the open-file limit.

#include "wspp_types.hpp"

#include <chrono>
#include <cstddef>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

namespace syncline::transport {

class SocketTracker;

// One accepted socket, held by its connection (ConnectionData) until the connection object goes, which is when its
// descriptor is closed. Releases its place in the tracker, and the spare descriptor it borrowed, when destroyed.
struct SocketSlot {
    SocketSlot(std::shared_ptr<SocketTracker> owner, bool borrowed) : tracker(std::move(owner)), overflow(borrowed) {}
    // Destroyed with the connection's first base class, before the one that owns the socket: an overflow slot closes
    // the socket itself first, so that the spare descriptor can be opened again in its place.
    ~SocketSlot();
    SocketSlot(const SocketSlot&) = delete;
    SocketSlot& operator=(const SocketSlot&) = delete;

    std::shared_ptr<SocketTracker> tracker;
    // Accepted with the spare descriptor (the process was out of descriptors): serves plain HTTP such as /healthz,
    // refuses websocket handshakes with 503. Set before the connection starts; read on its strand.
    const bool overflow;
    // The connection's socket, set with the slot (accept strand) when `overflow`; closed by the destructor.
    asio::ip::tcp::socket* socket = nullptr;
    bool in_handshake = true;  // guarded by the tracker's mutex
    const std::chrono::steady_clock::time_point accepted_at = std::chrono::steady_clock::now();
    std::list<std::pair<websocketpp::connection_hdl, SocketSlot*>>::iterator position;  // guarded likewise
};

// The sockets accepted and not yet websocket connections (handshakes in progress, plain HTTP requests), oldest first,
// so that sockets that never finish a handshake cannot take every descriptor: beyond max_handshakes the oldest is
// closed once it has had handshake_grace to finish (a burst of honest clients, e.g. all reconnecting after a restart,
// is served even when it is larger than max_handshakes). Also keeps one spare descriptor, lent to accept one connection
// when the process is out of descriptors (so /healthz is answered then too). Thread-safe; shared with every slot, so it
// outlives the server if need be.
class SocketTracker : public std::enable_shared_from_this<SocketTracker> {
public:
    SocketTracker(std::size_t max_handshakes, std::chrono::milliseconds grace);
    ~SocketTracker();
    SocketTracker(const SocketTracker&) = delete;
    SocketTracker& operator=(const SocketTracker&) = delete;

    /// A socket just accepted (accept strand): its slot.
    std::shared_ptr<SocketSlot> Track(const websocketpp::connection_hdl& hdl, bool borrowed);

    /// While more than max_handshakes sockets are in their handshake, takes out the oldest ones that have had their
    /// grace (they are no longer tracked) into `evict`. Returns when to look again: when the oldest of those over the
    /// limit will have had its grace, or nullopt when they are within the limit.
    std::optional<std::chrono::steady_clock::time_point> TakeOverdue(std::chrono::steady_clock::time_point now,
                                                                     std::vector<websocketpp::connection_hdl>& evict);

    /// The socket became a websocket connection (its strand): it is no longer a candidate for eviction.
    void Promote(SocketSlot& slot);

    /// Out of descriptors (accept strand): closes the spare descriptor so that the next accept can take it. False
    /// when it is already lent.
    bool LendSpare();

private:
    friend struct SocketSlot;

    void Release(SocketSlot& slot);
    void Forget(SocketSlot& slot);

    const std::size_t max_handshakes_;
    const std::chrono::milliseconds grace_;
    std::mutex mutex_;
    std::list<std::pair<websocketpp::connection_hdl, SocketSlot*>> in_handshake_;  // guarded by mutex_
    int spare_fd_ = -1;                                                            // guarded by mutex_
};

/// The soft RLIMIT_NOFILE of the process; 0 when unknown or unlimited.
std::size_t SoftDescriptorLimit();

}  // namespace syncline::transport
