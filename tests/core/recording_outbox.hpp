#pragma once
// The fake connection of the core tests: an Outbox that records what a session sends (thread-safe).

#include <syncline/core/protocol/session.hpp>

#include <algorithm>
#include <cstddef>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace syncline::testing {

/// What a fake outbox needs of the transport's hold contract (Outbox::HoldPushes): holds nest as a count, a push
/// queued while held waits (replacing a waiting one with its key), and the last release hands the waiting pushes on in
/// order. Not thread-safe: the fake calls it under its own lock.
struct HeldPushes {
    int holds = 0;
    std::vector<std::pair<std::string, std::string>> waiting;  ///< (key, frame), in order

    /// Whether this push waits (it is kept here).
    bool Keep(std::string& frame, const std::string& key) {
        if (holds == 0) return false;
        auto same = std::find_if(waiting.begin(), waiting.end(), [&](const auto& p) { return p.first == key; });
        if (same != waiting.end()) waiting.erase(same);
        waiting.emplace_back(key, std::move(frame));
        return true;
    }
    /// One release: the pushes to hand on now (none while a hold remains).
    std::vector<std::pair<std::string, std::string>> Release() {
        if (holds > 0) --holds;
        if (holds > 0) return {};
        return std::exchange(waiting, {});
    }
};

/// Records frames (pushes with their keys too) and the close; reports `buffered` as its unsent bytes. Pushes wait while
/// held, as the transport's do (HeldPushes).
class RecordingOutbox final : public Outbox {
public:
    explicit RecordingOutbox(std::size_t buffered_bytes = 0) : buffered(buffered_bytes) {}
    void Send(std::string frame) override {
        std::lock_guard<std::mutex> lock(mutex_);
        frames.push_back(std::move(frame));
    }
    void SendPush(std::string frame, const std::string& key) override {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!held_.Keep(frame, key)) RecordPush(std::move(frame), key);
    }
    void HoldPushes() override {
        std::lock_guard<std::mutex> lock(mutex_);
        ++held_.holds;
    }
    void ReleasePushes() override {
        std::lock_guard<std::mutex> lock(mutex_);
        for (auto& [key, frame] : held_.Release()) RecordPush(std::move(frame), key);
    }
    void Close(int code, std::string reason) override {
        std::lock_guard<std::mutex> lock(mutex_);
        close_code = code;
        close_reason = std::move(reason);
    }
    std::size_t BufferedBytes() const override { return buffered; }

    std::vector<std::string> frames;
    std::vector<std::string> push_keys;  ///< One per push, in order.
    int close_code = 0;
    std::string close_reason;
    std::size_t buffered;

private:
    void RecordPush(std::string frame, const std::string& key) {
        frames.push_back(std::move(frame));
        push_keys.push_back(key);
    }

    std::mutex mutex_;
    HeldPushes held_;  // guarded by mutex_
};

}  // namespace syncline::testing
