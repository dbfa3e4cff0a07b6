#include <syncline/core/consumer/connection.hpp>

#include <atomic>
#include <mutex>

namespace syncline {

namespace {
std::atomic<std::uint64_t> g_next_connection_id{1};
}  // namespace

ConnectionContext::ConnectionContext(HandshakeRequest request, std::shared_ptr<Outbox> outbox, User user,
                                     ConnectionLimits limits)
    : request_(std::move(request)),
      outbox_(std::move(outbox)),
      user_(std::move(user)),
      limits_(limits),
      id_(g_next_connection_id++) {}

void ConnectionContext::Push(std::string frame, const std::string& key) { outbox_->SendPush(std::move(frame), key); }

void ConnectionContext::Push(std::shared_ptr<const SharedFrame> frame, const std::string& key) {
    outbox_->SendSharedPush(std::move(frame), key);
}

void ConnectionContext::MarkClosed() {
    {
        std::lock_guard<std::mutex> lock(stream_mutex_);
        closed_ = true;
    }
    stream_changed_.notify_all();
}

bool ConnectionContext::closed() const {
    std::lock_guard<std::mutex> lock(stream_mutex_);
    return closed_;
}

std::uint64_t ConnectionContext::stream_epoch() const { return stream_epoch_.load(); }

bool ConnectionContext::SendStreamed(std::string frame, std::uint64_t epoch) {
    {
        std::lock_guard<std::mutex> lock(stream_mutex_);
        if (closed_ || stream_epoch_ != epoch) return false;
        ++streams_sending_;
    }
    // Sent outside the lock; CancelStreams waits for this send to finish instead.
    outbox_->Send(std::move(frame));
    {
        std::lock_guard<std::mutex> lock(stream_mutex_);
        --streams_sending_;
    }
    stream_changed_.notify_all();
    return true;
}

void ConnectionContext::CancelStreams() {
    std::unique_lock<std::mutex> lock(stream_mutex_);
    ++stream_epoch_;
    stream_changed_.notify_all();
    // Outbox::Send only queues, so this wait is as short as one queued frame.
    stream_changed_.wait(lock, [this] { return streams_sending_ == 0; });
}

bool ConnectionContext::WaitStreamCancelled(std::uint64_t epoch, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(stream_mutex_);
    return stream_changed_.wait_for(lock, timeout, [&] { return closed_ || stream_epoch_ != epoch; });
}

bool ConnectionContext::TryBeginDetached(std::size_t limit) {
    if (detached_.fetch_add(1) < limit || limit == 0) return true;
    detached_.fetch_sub(1);
    return false;
}

void ConnectionContext::EndDetached() { detached_.fetch_sub(1); }

}  // namespace syncline
