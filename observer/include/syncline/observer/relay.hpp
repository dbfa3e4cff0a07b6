#pragma once
/// \file
/// The relay: moves committed changes from the change feed onto the bus, one event per changed row, in order.
///
/// Threads: the relay runs its own thread; Start and Stop are called from the controlling thread, OnAck from any
/// thread (the bus's).

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>

#include <syncline/core/model/change_source.hpp>
#include <syncline/core/model/schema.hpp>
#include <syncline/observer/row_event.hpp>

namespace syncline::observer {

/// How a relay runs.
struct RelayOptions {
    /// With a bus that crosses processes (Redis), exactly one relay per database may publish: it must hold this
    /// lease in the database, and it persists its cursor there so that a successor continues where it stopped.
    /// With the in-process bus every process relays for itself, from the newest change at start.
    bool use_lease = false;
    std::string name = "relay";                        ///< The lease and cursor name.
    std::chrono::milliseconds lease_ttl{1000};         ///< A dead holder's lease is taken over within this.
    std::size_t batch = 512;                           ///< Changes read per batch.
    std::chrono::milliseconds trim_horizon{600000};    ///< Changes are kept this long (catch-up window).
    std::chrono::milliseconds trim_interval{10000};
    std::chrono::milliseconds cursor_save_interval{100};
    /// When true, the cursor persisted is the last seq the bus confirmed (OnAck); else the last one published.
    bool acknowledged_publishes = false;
};

/// Publishes a row event on its channel. A bus between processes encodes it (EncodeEvent with the schema) and
/// acknowledges `event.position` (Relay::OnAck); the in-process bus hands it to the observer as it is, with no encoding.
using Publisher = std::function<void(const std::string& channel, const RowEvent& event, const Schema& schema)>;

class Relay {
public:
    Relay(std::unique_ptr<ChangeSource> source, std::vector<Schema> models, ChannelLayout layout, Publisher publish,
          RelayOptions options);
    ~Relay();
    Relay(const Relay&) = delete;
    Relay& operator=(const Relay&) = delete;

    void Start();
    /// Stops the thread (and gives the lease up). Idempotent.
    void Stop();
    /// The bus confirmed the publish of `version`.
    void OnAck(std::int64_t position);
    /// True while this relay publishes (holds the lease, or needs none).
    bool publishing() const { return publishing_.load(); }
    /// The last seq read from the feed.
    std::int64_t cursor() const { return cursor_.load(); }
    /// Changes folded into a later change of the same row in the same batch (one event per row is published).
    std::uint64_t coalesced() const { return coalesced_.load(std::memory_order_relaxed); }

    /// What readiness needs to know of the relay (any thread).
    struct Health {
        /// Why the relay's last attempt failed (the database unreachable or busy, a refused publish); empty while it
        /// works. Cleared by the next attempt that succeeds.
        std::string error;
        /// How long the relay has been reading full batches without reaching the end of the feed: zero while it keeps
        /// up (and while it stands by for another process's relay).
        std::chrono::steady_clock::duration behind{};
        /// Changes in the feed after the last batch the relay read, as of that read: zero when the read reached the
        /// end of the feed (and while standing by); after a full batch, the feed's newest seq minus the batch's last.
        std::int64_t behind_changes = 0;
    };
    Health health() const;

private:
    void Loop();
    bool SleepFor(std::chrono::milliseconds duration);  // false when stopping

    std::unique_ptr<ChangeSource> source_;
    std::vector<Schema> models_;
    std::unordered_map<std::string, const Schema*> schemas_;
    ChannelLayout layout_;
    Publisher publish_;
    RelayOptions options_;
    std::string holder_;
    std::int64_t start_cursor_ = 0;  // without a lease: where to start, fixed in Start()
    std::thread thread_;
    std::atomic<bool> running_{false};
    std::atomic<bool> publishing_{false};
    std::atomic<std::int64_t> cursor_{0};
    std::atomic<std::int64_t> acked_{0};
    std::atomic<std::uint64_t> coalesced_{0};
    mutable std::mutex health_mutex_;
    std::string error_;                                        // guarded by health_mutex_
    std::optional<std::chrono::steady_clock::time_point> behind_since_;  // guarded by health_mutex_
    std::int64_t behind_changes_ = 0;                                    // guarded by health_mutex_
    std::mutex sleep_mutex_;
    std::condition_variable sleep_cv_;
};

}  // namespace syncline::observer
