#include <syncline/observer/relay.hpp>

#include <syncline/core/support/log.hpp>

#include <unistd.h>

#include <algorithm>
#include <random>

namespace syncline::observer {
namespace {

std::string MakeHolderId() {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    std::random_device rd;
    return std::string(host) + ":" + std::to_string(getpid()) + ":" + std::to_string(rd());
}

}  // namespace

Relay::Relay(std::unique_ptr<ChangeSource> source, std::vector<Schema> models, ChannelLayout layout, Publisher publish,
             RelayOptions options)
    : source_(std::move(source)),
      models_(std::move(models)),
      layout_(std::move(layout)),
      publish_(std::move(publish)),
      options_(std::move(options)),
      holder_(MakeHolderId()) {
    for (const auto& s : models_) schemas_[s.table()] = &s;
}

Relay::~Relay() { Stop(); }

void Relay::Start() {
    if (running_.exchange(true)) return;
    // Without a lease the relay starts at the newest change, fixed here and not on its thread: a write committed
    // between Start and the thread's first read must be published (a late thread start would skip it).
    if (!options_.use_lease) start_cursor_ = source_->LatestSeq();
    thread_ = std::thread([this] { Loop(); });
}

void Relay::Stop() {
    if (!running_.exchange(false)) return;
    {
        std::lock_guard<std::mutex> lock(sleep_mutex_);
    }
    sleep_cv_.notify_all();
    source_->Interrupt();
    if (thread_.joinable()) thread_.join();
}

void Relay::OnAck(std::int64_t position) {
    std::int64_t current = acked_.load();
    while (position > current && !acked_.compare_exchange_weak(current, position)) {
    }
}

bool Relay::SleepFor(std::chrono::milliseconds duration) {
    std::unique_lock<std::mutex> lock(sleep_mutex_);
    sleep_cv_.wait_for(lock, duration, [this] { return !running_.load(); });
    return running_.load();
}

void Relay::Loop() {
    using Clock = std::chrono::steady_clock;
    std::int64_t cursor = -1;  // unknown until this relay publishes
    Clock::time_point last_renew{};
    Clock::time_point last_save = Clock::now();
    Clock::time_point last_trim = Clock::now();
    std::int64_t saved = -1;
    bool logged_waiting = false;
    bool failing = false;
    std::uint64_t failures = 0;
    std::string last_error;
    auto recovered = [&] {
        if (!failing) return;
        {
            std::lock_guard<std::mutex> lock(health_mutex_);
            error_.clear();
        }
        Log(LogLevel::kInfo, "relay: working again after " + std::to_string(failures) + " failed attempts");
        failing = false;
        failures = 0;
        last_error.clear();
    };
    const auto renew_every = options_.lease_ttl / 4;
    while (running_.load()) {
        try {
            if (options_.use_lease && Clock::now() - last_renew >= renew_every) {
                bool held = source_->HoldLease(options_.name, holder_, options_.lease_ttl);
                last_renew = Clock::now();
                recovered();
                if (held != publishing_.load()) {
                    Log(LogLevel::kInfo, held ? "relay " + holder_ + " holds the lease and publishes"
                                              : "relay " + holder_ + " lost the lease");
                    publishing_.store(held);
                    if (!held) cursor = -1;
                }
                if (!held) {
                    {
                        std::lock_guard<std::mutex> lock(health_mutex_);
                        behind_since_.reset();  // another process's relay publishes: nothing for this one to keep up
                        behind_changes_ = 0;
                    }
                    if (!logged_waiting) {
                        Log(LogLevel::kInfo, "relay " + holder_ + " standing by (another process publishes)");
                        logged_waiting = true;
                    }
                    SleepFor(renew_every);
                    continue;
                }
            } else if (!options_.use_lease) {
                publishing_.store(true);
            }
            if (cursor < 0) {
                std::optional<std::int64_t> stored =
                    options_.use_lease ? source_->LoadCursor(options_.name) : std::nullopt;
                cursor = stored ? *stored : (options_.use_lease ? source_->LatestSeq() : start_cursor_);
                acked_.store(cursor);
                saved = stored ? *stored : -1;
                if (options_.use_lease && !stored) {
                    // The first holder records where publishing starts at once: a successor taking over after this
                    // holder dies resumes here instead of at its own newest change, which would skip the writes
                    // committed between the death and the takeover.
                    source_->SaveCursor(options_.name, cursor);
                    saved = cursor;
                }
            }
            cursor_.store(cursor);
            std::vector<ChangeEvent> changes = source_->ReadAfter(cursor, options_.batch);
            {
                // A full batch: there may be more (one more query, per full batch, says how many); fewer: this read
                // reached the end of the feed.
                const bool full = !changes.empty() && changes.size() >= options_.batch;
                const std::int64_t behind =
                    full ? std::max<std::int64_t>(source_->LatestSeq() - changes.back().seq, 0) : 0;
                std::lock_guard<std::mutex> lock(health_mutex_);
                behind_changes_ = behind;
                if (!full) {
                    behind_since_.reset();
                } else if (!behind_since_) {
                    behind_since_ = Clock::now();
                }
            }
            if (!changes.empty()) {
                std::int64_t last = changes.back().seq;
                const std::size_t read = changes.size();
                std::vector<RowEvent> events = Coalesce(std::move(changes));
                coalesced_.fetch_add(read - events.size(), std::memory_order_relaxed);
                for (RowEvent& event : events) {
                    auto schema = schemas_.find(event.table);
                    if (schema == schemas_.end()) continue;  // a table this server does not declare
                    publish_(layout_.ForRow(event.table, event.pk), event, *schema->second);
                }
                cursor = last;
                cursor_.store(cursor);
                if (!options_.acknowledged_publishes) acked_.store(cursor);
            }
            auto now = Clock::now();
            if (options_.use_lease && acked_.load() != saved && now - last_save >= options_.cursor_save_interval) {
                saved = acked_.load();
                source_->SaveCursor(options_.name, saved);
                last_save = now;
            }
            if (now - last_trim >= options_.trim_interval) {
                source_->Trim(options_.trim_horizon);
                last_trim = now;
            }
            if (changes.empty()) {
                auto wait = options_.use_lease ? renew_every : std::chrono::milliseconds(500);
                source_->WaitForChanges(cursor, wait);
            }
            recovered();
        } catch (const std::exception& e) {
            // A busy or unreachable database or a failed publish must not kill the relay: retry from the same cursor
            // every 100 ms. Logged when the failure starts or changes, not at every attempt.
            ++failures;
            if (!failing || last_error != e.what()) {
                Log(LogLevel::kError, std::string("relay: ") + e.what() + " (retrying every 100 ms)");
                last_error = e.what();
            }
            failing = true;
            {
                std::lock_guard<std::mutex> lock(health_mutex_);
                error_ = e.what();
            }
            SleepFor(std::chrono::milliseconds(100));
        }
    }
    if (options_.use_lease && publishing_.load()) {
        try {
            if (acked_.load() != saved) source_->SaveCursor(options_.name, acked_.load());
            source_->ReleaseLease(options_.name, holder_);
        } catch (const std::exception& e) {
            Log(LogLevel::kWarn, std::string("relay: releasing the lease: ") + e.what());
        }
    }
    publishing_.store(false);
}

Relay::Health Relay::health() const {
    std::lock_guard<std::mutex> lock(health_mutex_);
    Health health;
    health.error = error_;
    if (behind_since_) health.behind = std::chrono::steady_clock::now() - *behind_since_;
    health.behind_changes = behind_changes_;
    return health;
}

}  // namespace syncline::observer
