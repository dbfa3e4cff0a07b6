// BatchWriter: the one thread that runs a Server's write requests in batches (batch_writer.hpp).

#include <syncline/transport/batch_writer.hpp>

#include <syncline/core/support/log.hpp>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace syncline::transport {

BatchWriter::BatchWriter(storage::Backend& backend, std::size_t max_batch)
    : backend_(backend), max_batch_(std::max<std::size_t>(max_batch, 1)) {
    if (!backend_.RunsBatches())
        throw std::invalid_argument("BatchWriter: " + backend_.Describe() + " runs no batches");
}

BatchWriter::~BatchWriter() { Shutdown(); }

bool BatchWriter::Submit(std::function<void()> run, std::function<void(std::exception_ptr)> done) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stopping_) return false;
        if (!started_) {
            started_ = true;
            thread_ = std::thread([this] { Loop(); });
        }
        queue_.push_back(Write{std::move(run), std::move(done)});
        ++stats_.queued;
    }
    wake_.notify_one();
    return true;
}

void BatchWriter::Shutdown() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (thread_.joinable() && thread_.get_id() == std::this_thread::get_id()) {
            throw std::logic_error("BatchWriter::Shutdown from the writer's own thread");
        }
        stopping_ = true;
    }
    wake_.notify_one();
    if (thread_.joinable()) thread_.join();
}

BatchWriterStats BatchWriter::stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
}

void BatchWriter::Loop() {
    std::vector<storage::BatchedWrite> batch;
    std::vector<std::function<void(std::exception_ptr)>> dones;
    for (;;) {
        batch.clear();
        dones.clear();
        {
            std::unique_lock<std::mutex> lock(mutex_);
            wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stopping, and everything accepted has run
            const std::size_t take = std::min(queue_.size(), max_batch_);
            for (std::size_t i = 0; i < take; ++i) {
                batch.push_back(storage::BatchedWrite{std::move(queue_.front().run), nullptr});
                dones.push_back(std::move(queue_.front().done));
                queue_.pop_front();
            }
        }
        try {
            backend_.RunBatch(batch);
        } catch (...) {
            // Refused as a whole (a logic error): every write fails with it.
            for (storage::BatchedWrite& b : batch) b.error = std::current_exception();
        }
        {
            // Counted as run before their replies go out: a client that read its reply finds its write counted.
            std::lock_guard<std::mutex> lock(mutex_);
            stats_.writes += batch.size();
            stats_.batches += 1;
            stats_.largest_batch = std::max<std::uint64_t>(stats_.largest_batch, batch.size());
        }
        for (std::size_t i = 0; i < batch.size(); ++i) {
            try {
                dones[i](batch[i].error);
            } catch (const std::exception& e) {
                Log(LogLevel::kError, std::string("a batched write's completion threw: ") + e.what());
            } catch (...) {
                Log(LogLevel::kError, "a batched write's completion threw");
            }
        }
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stats_.queued -= batch.size();
        }
    }
}

}  // namespace syncline::transport
