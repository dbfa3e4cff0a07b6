#pragma once
/// \file
/// Where a route reports each request it answers, for metrics: which action, the status of its reply, and the time
/// from reading its frame to queuing that reply. The core only reports; what is counted, and how, is the meter's
/// (transport's server metrics implement it with Prometheus families).

#include <chrono>
#include <string_view>

namespace syncline {

class ActionMeter {
public:
    virtual ~ActionMeter() = default;
    /// One answered request. `action` is an action name of the route, "(unknown)" for a name the route does not
    /// serve, or "(invalid)" for a frame refused before its action was read (malformed JSON, no action, a request_id
    /// over its limit): the caller keeps the set of names bounded, whatever clients send. A streamed action reports
    /// once, with the status of its last frame. Called from whichever thread answers (a network thread, a write or
    /// action thread), concurrently: implementations are thread-safe and quick.
    virtual void Record(std::string_view action, int status, std::chrono::steady_clock::duration elapsed) = 0;
};

}  // namespace syncline
