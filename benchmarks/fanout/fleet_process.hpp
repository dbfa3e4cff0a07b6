#pragma once
// syncline_fanout: where the client fleet runs. In this process (its own io threads), or in a child process forked
// at start-up: a process may hold at most `ulimit -Hn` descriptors (20,000 here, not raisable), and 10,000 client
// sockets plus the server's 10,000 do not fit in one process. Both share the counters through SharedState.

#include <sys/types.h>

#include <memory>
#include <string>

#include "fleet.hpp"
#include "shared_state.hpp"

namespace syncline::fanout {

class FleetControl {
public:
    virtual ~FleetControl() = default;
    /// See Fleet::Open: "" when every socket is subscribed, else the first error.
    virtual std::string Open(const FleetSpec& spec) = 0;
    /// See Fleet::Close.
    virtual void Close() = 0;
    virtual const char* where() const = 0;
    /// The process the fleet's threads run in.
    virtual pid_t pid() const = 0;
};

/// The fleet in this process.
std::unique_ptr<FleetControl> MakeLocalFleet(SharedState& shared);

/// Forks a child process that runs the fleet on command (a socketpair carries the commands). Call it while this
/// process has a single thread (at start-up). The child ends when the returned object is destroyed.
std::unique_ptr<FleetControl> ForkFleetProcess(SharedState& shared);

}  // namespace syncline::fanout
