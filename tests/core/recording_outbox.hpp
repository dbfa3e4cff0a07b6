#pragma once
// The fake connection of the core tests: an Outbox that records what a session sends (thread-safe).

#include <syncline/core/protocol/session.hpp>

#include <cstddef>
#include <mutex>
#include <string>
#include <vector>

namespace syncline::testing {

/// Records frames (pushes with their keys too) and the close; reports `buffered` as its unsent bytes.
class RecordingOutbox final : public Outbox {
public:
    explicit RecordingOutbox(std::size_t buffered_bytes = 0) : buffered(buffered_bytes) {}
    void Send(std::string frame) override {
        std::lock_guard<std::mutex> lock(mutex_);
        frames.push_back(std::move(frame));
    }
    void SendPush(std::string frame, const std::string& key) override {
        std::lock_guard<std::mutex> lock(mutex_);
        frames.push_back(std::move(frame));
        push_keys.push_back(key);
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
    std::mutex mutex_;
};

}  // namespace syncline::testing
