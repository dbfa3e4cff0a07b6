#pragma once
// Captures what syncline writes through spdlog's default logger at info level and above (the Redis bus, the server, and
// core's Log lines once a Server has installed its spdlog sink), for tests that check what reaches a log. Install it
// before starting the code that logs and destroy it after that code has stopped: spdlog's sink list is not safe to
// change while others log.

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

namespace syncline::testing {

class SpdlogCapture {
public:
    SpdlogCapture() : sink_(std::make_shared<Sink>()) { spdlog::default_logger()->sinks().push_back(sink_); }
    ~SpdlogCapture() {
        auto& sinks = spdlog::default_logger()->sinks();
        sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
    }
    SpdlogCapture(const SpdlogCapture&) = delete;
    SpdlogCapture& operator=(const SpdlogCapture&) = delete;

    /// Everything logged so far, one line per message.
    std::string Text() const { return sink_->Text(); }
    /// Waits until a line containing `needle` has been logged; false after `timeout`.
    bool WaitFor(const std::string& needle, std::chrono::milliseconds timeout = std::chrono::seconds(20)) const {
        return sink_->WaitFor(needle, timeout);
    }

private:
    class Sink final : public spdlog::sinks::base_sink<std::mutex> {
    public:
        std::string Text() const {
            std::lock_guard<std::mutex> lock(text_mutex_);
            return text_;
        }
        bool WaitFor(const std::string& needle, std::chrono::milliseconds timeout) const {
            std::unique_lock<std::mutex> lock(text_mutex_);
            return changed_.wait_for(lock, timeout, [&] { return text_.find(needle) != std::string::npos; });
        }

    protected:
        void sink_it_(const spdlog::details::log_msg& message) override {
            {
                std::lock_guard<std::mutex> lock(text_mutex_);
                text_.append(message.payload.data(), message.payload.size());
                text_ += '\n';
            }
            changed_.notify_all();
        }
        void flush_() override {}

    private:
        mutable std::mutex text_mutex_;
        mutable std::condition_variable changed_;
        std::string text_;
    };

    std::shared_ptr<Sink> sink_;
};

}  // namespace syncline::testing
