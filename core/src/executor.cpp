#include <syncline/core/executor.hpp>

#include <syncline/core/log.hpp>

#include <algorithm>
#include <stdexcept>

namespace syncline {

Executor::Executor(unsigned threads)
    : size_(threads > 0 ? threads : std::max(2u, std::thread::hardware_concurrency())) {}

Executor::~Executor() { Shutdown(); }

bool Executor::Post(std::function<void()> task) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stopping_) return false;
        // Started lazily: an endpoint whose consumer has no detached action never costs a thread.
        if (workers_.empty()) {
            for (unsigned i = 0; i < size_; ++i) workers_.emplace_back([this] { Work(); });
        }
        queue_.push_back(std::move(task));
    }
    wake_.notify_one();
    return true;
}

void Executor::Shutdown() {
    std::vector<std::thread> workers;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        auto self = std::find_if(workers_.begin(), workers_.end(),
                                 [](const std::thread& t) { return t.get_id() == std::this_thread::get_id(); });
        if (self != workers_.end()) throw std::logic_error("Executor::Shutdown called from one of its own threads");
        stopping_ = true;
        workers.swap(workers_);
    }
    wake_.notify_all();
    for (auto& worker : workers) worker.join();
}

std::size_t Executor::busy() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return queue_.size() + running_;
}

void Executor::Work() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
        wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        // Queued tasks still run after Shutdown began: they own shared state (a connection, a push gate) that only
        // they release, and a cancelled one returns at once.
        if (queue_.empty()) return;
        std::function<void()> task = std::move(queue_.front());
        queue_.pop_front();
        ++running_;
        lock.unlock();
        try {
            task();
        } catch (const std::exception& e) {
            Log(LogLevel::kError, std::string("executor: a task threw: ") + e.what());
        } catch (...) {
            Log(LogLevel::kError, "executor: a task threw");
        }
        task = nullptr;  // release what it holds before it counts as done
        lock.lock();
        --running_;
    }
}

}  // namespace syncline
