#pragma once
// syncline_fanout: the state shared between the tool (the writer and the measuring thread) and the client fleet,
// which may run in a forked child process. It lives in one MAP_SHARED anonymous mapping made before the fork, so
// every field is a lock-free atomic and the writer sleeps on a futex the clients wake (FUTEX_WAIT without
// FUTEX_PRIVATE_FLAG works across processes on a shared mapping).
//
// The bounded backlog. The writer writes counter c (0, 1, 2, ...) into row 1 + c % rows. A subscriber of row r that
// receives counter v after v' marks every counter of its row in (v', v] as done (versions syncline coalesced away
// count: the subscriber has a newer state). done[c % kRing] counts the subscribers done with c; the writer writes c
// only once done[c - window] reached the row's subscriber count, so at most `window` versions are in flight.

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ctime>

namespace syncline::fanout {

using Clock = std::chrono::steady_clock;

inline std::int64_t NowNs() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

struct SharedState {
    static constexpr std::size_t kRing = std::size_t{1} << 17;     // counters in flight are far fewer
    static constexpr std::size_t kRecords = std::size_t{1} << 21;  // counters whose receipt time is recorded

    std::atomic<std::uint32_t> done[kRing];
    std::atomic<std::uint32_t> waiting_done;      // slot + 1 of done[] the writer sleeps on; 0: none
    std::atomic<std::uint32_t> subs_per_row;      // subscribers per row: when a done counter is complete
    std::atomic<std::uint64_t> frames;            // push frames received (frames carrying the "n" counter)
    std::atomic<std::uint64_t> bytes;             // their payload bytes
    std::atomic<std::uint64_t> other_frames;      // any other frame after the subscription's 201
    std::atomic<std::uint64_t> out_of_order;      // a counter not newer than the socket's last one
    std::atomic<std::uint64_t> skipped;           // versions of a row a subscriber never saw (coalesced)
    std::atomic<std::uint64_t> subscribed;        // sockets that got their 201
    std::atomic<std::int64_t> recv_ns[kRecords];  // steady_clock ns of the first receipt of counter c; 0: none
    std::atomic<std::int64_t> recv_last_ns[kRecords];  // ... and of its last receipt (by the slowest subscriber)

    // Only while no client runs (between cases).
    void Reset(std::uint32_t subscribers_per_row) {
        for (auto& d : done) d.store(0, std::memory_order_relaxed);
        for (auto& r : recv_ns) r.store(0, std::memory_order_relaxed);
        for (auto& r : recv_last_ns) r.store(0, std::memory_order_relaxed);
        waiting_done.store(0);
        subs_per_row.store(subscribers_per_row);
        frames.store(0);
        bytes.store(0);
        other_frames.store(0);
        out_of_order.store(0);
        skipped.store(0);
        subscribed.store(0);
    }

    static std::size_t Slot(std::int64_t counter) { return static_cast<std::size_t>(counter) & (kRing - 1); }

    // Client side: one subscriber has `counter` (or a newer version of its row).
    void MarkDone(std::int64_t counter) {
        const std::size_t slot = Slot(counter);
        const std::uint32_t now = done[slot].fetch_add(1) + 1;
        if (now >= subs_per_row.load(std::memory_order_relaxed) && waiting_done.load() == slot + 1) Wake(done[slot]);
    }

    // Writer side: before writing `counter`, its ring slot (last used by counter - kRing, long done) is cleared.
    void Claim(std::int64_t counter) { done[Slot(counter)].store(0); }

    // Writer side: sleeps until every subscriber of its row has `counter`; false at `deadline`.
    bool WaitDone(std::int64_t counter, Clock::time_point deadline) {
        return WaitAtLeast(done, waiting_done, counter, subs_per_row.load(), deadline);
    }

    std::uint32_t DoneCount(std::int64_t counter) const { return done[Slot(counter)].load(); }

private:
    static void Wake(std::atomic<std::uint32_t>& word) {
        syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE, 1, nullptr, nullptr, 0);
    }

    static bool WaitAtLeast(std::atomic<std::uint32_t>* words, std::atomic<std::uint32_t>& waiting,
                            std::int64_t counter, std::uint32_t need, Clock::time_point deadline) {
        const std::size_t slot = Slot(counter);
        std::atomic<std::uint32_t>& word = words[slot];
        for (;;) {
            if (word.load() >= need) return true;
            waiting.store(static_cast<std::uint32_t>(slot + 1));
            const std::uint32_t value = word.load();
            if (value >= need) break;
            const auto left = deadline - Clock::now();
            if (left <= Clock::duration::zero()) {
                waiting.store(0);
                return false;
            }
            // At most 20 ms per sleep, so that the deadline and stop requests are noticed.
            const auto ns =
                std::min<std::int64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(left).count(), 20'000'000);
            timespec timeout{0, static_cast<long>(ns)};
            syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT, value, &timeout, nullptr, 0);
        }
        waiting.store(0);
        return true;
    }
};

static_assert(std::atomic<std::uint32_t>::is_always_lock_free && sizeof(std::atomic<std::uint32_t>) == 4,
              "futex words must be plain 32-bit integers");
static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "shared counters must be lock-free");

/// Maps a zeroed SharedState shared with children forked later. Never unmapped (lives as long as the process).
SharedState* MapSharedState();

}  // namespace syncline::fanout
