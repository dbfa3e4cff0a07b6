#pragma once
/// \file
/// The change feed as the relay and the observer see it. storage implements it (storage::FeedSource); observer uses
/// it; neither includes the other.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <syncline/core/model/change.hpp>

namespace syncline {

/// Committed changes in seq order plus the bookkeeping a relay needs. Not thread-safe: one thread at a time, except
/// Interrupt, which any thread may call.
class ChangeSource {
public:
    virtual ~ChangeSource() = default;
    /// Up to `max_batch` changes with seq > cursor, in order, each with the row's state in one snapshot.
    virtual std::vector<ChangeEvent> ReadAfter(std::int64_t cursor, std::size_t max_batch) = 0;
    /// Waits (without busy looping) until a change after `cursor` exists, the timeout passes, or Interrupt.
    virtual bool WaitForChanges(std::int64_t cursor, std::chrono::milliseconds timeout) = 0;
    /// Ends a current or future wait at once. Any thread.
    virtual void Interrupt() = 0;
    /// The newest committed seq, 0 when none.
    virtual std::int64_t LatestSeq() = 0;
    /// The oldest seq still retained, 0 when none (changes before it were trimmed).
    virtual std::int64_t OldestSeq() = 0;
    /// A named cursor saved earlier, or nullopt.
    virtual std::optional<std::int64_t> LoadCursor(const std::string& name) = 0;
    /// Saves a named cursor; trimming never removes changes after the lowest saved cursor.
    virtual void SaveCursor(const std::string& name, std::int64_t seq) = 0;
    /// Trims changes older than `horizon` (see storage::Database::Trim); returns how many went.
    virtual std::int64_t Trim(std::chrono::milliseconds horizon) = 0;
    /// Takes, or renews, the named lease for `holder` until now + ttl; true while `holder` holds it. A lease whose
    /// holder stopped renewing is taken over once it expires.
    virtual bool HoldLease(const std::string& name, const std::string& holder, std::chrono::milliseconds ttl) = 0;
    /// Gives the lease up (if `holder` holds it).
    virtual void ReleaseLease(const std::string& name, const std::string& holder) = 0;
};

}  // namespace syncline
