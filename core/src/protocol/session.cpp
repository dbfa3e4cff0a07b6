#include <syncline/core/protocol/session.hpp>

#include <algorithm>

namespace syncline {

void PushGate::Push(std::shared_ptr<const SharedFrame> frame, const std::string& key) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (requests_ > 0 || flushing_) {
            auto same = std::find_if(deferred_.begin(), deferred_.end(), [&](const auto& p) { return p.first == key; });
            if (same != deferred_.end()) {
                same->second = std::move(frame);
            } else {
                deferred_.emplace_back(key, std::move(frame));
            }
            return;
        }
    }
    outbox_->SendSharedPush(std::move(frame), key);
}

void PushGate::Begin() {
    std::lock_guard<std::mutex> lock(mutex_);
    ++requests_;
}

void PushGate::End() {
    std::unique_lock<std::mutex> lock(mutex_);
    if (requests_ > 0) --requests_;
    if (requests_ > 0 || flushing_) return;
    flushing_ = true;
    // Send outside the lock; pushes arriving meanwhile join deferred_ and go out after these, keeping the order. A
    // request may end on another thread (a detached writer) while the next one begins: the flush then stops, and
    // that request's End sends the rest after its reply.
    while (!deferred_.empty() && requests_ == 0) {
        auto batch = std::move(deferred_);
        deferred_.clear();
        lock.unlock();
        for (auto& [key, frame] : batch) outbox_->SendSharedPush(std::move(frame), key);
        lock.lock();
    }
    flushing_ = false;
}

}  // namespace syncline
