#pragma once
// Subscriptions made straight on the observer in tests start at once, as a subscribe action starts them after its
// reply (PendingSubscriptions::Start).

#include <cstdint>
#include <memory>

#include <syncline/core/consumer/subscriptions.hpp>

namespace syncline::testing {

/// Starts what a Subscribe call added at `version`; false when the call refused (nullptr).
inline bool Started(std::unique_ptr<PendingSubscriptions> pending, std::int64_t version = 0) {
    if (!pending) return false;
    pending->Start(version, {});
    return true;
}

}  // namespace syncline::testing
