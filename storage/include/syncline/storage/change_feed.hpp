#pragma once
/// \file
/// The change feed: committed changes in seq order, each with the row's current state.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <syncline/core/model/change.hpp>
#include <syncline/core/model/change_source.hpp>

namespace syncline::storage {

class Connection;
class Database;

/// Tuning of a ChangeFeed.
struct FeedOptions {
    /// How often WaitForChanges polls `PRAGMA data_version` for commits made by other processes. Commits made
    /// through the same Database object wake the waiter at once, whatever this is.
    std::chrono::microseconds poll_interval{1000};
};

/// Reads committed changes after a cursor. Owns one read connection: use a feed from one thread at a time
/// (asserted in debug builds), except Interrupt, which any thread may call. The Database must outlive it.
class ChangeFeed {
public:
    explicit ChangeFeed(Database& db, FeedOptions options = {});
    ~ChangeFeed();
    ChangeFeed(const ChangeFeed&) = delete;
    ChangeFeed& operator=(const ChangeFeed&) = delete;

    /// Up to `max_batch` committed changes with seq > cursor, in seq order, read in one snapshot: each carries the
    /// row's state in that snapshot (absent for deletes and rows deleted since). Changes of tables this Database
    /// does not declare come without a row.
    std::vector<ChangeEvent> ReadAfter(std::int64_t cursor, std::size_t max_batch = 1024);

    /// The highest committed seq (0 when none).
    std::int64_t LatestSeq();
    /// The lowest retained seq (0 when none).
    std::int64_t OldestSeq();

    /// Waits until a change with seq > cursor is committed, the timeout passes, or Interrupt is called. Returns true
    /// when such a change exists. Never busy-loops: it sleeps on this process's commits and polls data_version.
    bool WaitForChanges(std::int64_t cursor, std::chrono::milliseconds timeout);

    /// Makes a current or future WaitForChanges return at once (false unless changes exist). Any thread.
    void Interrupt();

private:
    Database& db_;
    FeedOptions options_;
    std::unique_ptr<Connection> conn_;
    std::atomic<bool> interrupted_{false};
    std::int64_t data_version_ = -1;
};

/// A ChangeSource over one database: a ChangeFeed plus cursors, trimming and leases kept in the database file, so
/// that every process sharing the file sees them. Same thread rules as ChangeFeed.
class FeedSource final : public ChangeSource {
public:
    explicit FeedSource(Database& db, FeedOptions options = {});
    std::vector<ChangeEvent> ReadAfter(std::int64_t cursor, std::size_t max_batch) override;
    bool WaitForChanges(std::int64_t cursor, std::chrono::milliseconds timeout) override;
    void Interrupt() override;
    std::int64_t LatestSeq() override;
    std::int64_t OldestSeq() override;
    std::optional<std::int64_t> LoadCursor(const std::string& name) override;
    void SaveCursor(const std::string& name, std::int64_t seq) override;
    std::int64_t Trim(std::chrono::milliseconds horizon) override;
    bool HoldLease(const std::string& name, const std::string& holder, std::chrono::milliseconds ttl) override;
    void ReleaseLease(const std::string& name, const std::string& holder) override;

private:
    Database& db_;
    ChangeFeed feed_;
};

}  // namespace syncline::storage
