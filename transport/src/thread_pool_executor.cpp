#include <syncline/transport/thread_pool_executor.hpp>

#include <syncline/core/support/log.hpp>

#include <algorithm>
#include <stdexcept>

namespace syncline::transport {

ThreadPoolExecutor::ThreadPoolExecutor(unsigned threads)
    : size_(threads > 0 ? threads : std::max(2u, std::thread::hardware_concurrency())) {}

ThreadPoolExecutor::~ThreadPoolExecutor() { Shutdown(); }

bool ThreadPoolExecutor::Post(std::function<void()> task) { return Post(0, std::move(task)); }

bool ThreadPoolExecutor::Post(std::uint64_t lane, std::function<void()> task) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stopping_) return false;
        StartLocked();
        EnqueueLocked(lane, std::move(task));
    }
    wake_.notify_one();
    return true;
}

bool ThreadPoolExecutor::PostAfter(std::uint64_t lane, std::chrono::milliseconds delay, std::function<void()> task) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stopping_) return false;
        StartLocked();
        delayed_.emplace(Clock::now() + delay, std::make_pair(lane, std::move(task)));
    }
    // A thread waiting for a later deadline (or for nothing) must now wait for this one.
    wake_.notify_one();
    return true;
}

void ThreadPoolExecutor::StartLocked() {
    // Started lazily: an endpoint whose consumer has no detached action never costs a thread.
    if (!workers_.empty()) return;
    for (unsigned i = 0; i < size_; ++i) workers_.emplace_back([this] { Work(); });
}

void ThreadPoolExecutor::EnqueueLocked(std::uint64_t lane, std::function<void()> task) {
    Lane& l = lanes_[lane];
    l.queue.push_back(std::move(task));
    ++queued_;
    if (!l.ready) {
        l.ready = true;
        l.turn = ready_.insert(ready_.end(), lane);
    }
}

void ThreadPoolExecutor::PromoteDueLocked(Clock::time_point now) {
    // While stopping, every delayed task is due: it owns state (a connection's stream) that only it releases, and its
    // connection is closed by then, so it returns at once.
    std::size_t promoted = 0;
    while (!delayed_.empty() && (stopping_ || delayed_.begin()->first <= now)) {
        auto first = delayed_.begin();
        std::uint64_t lane = first->second.first;
        std::function<void()> task = std::move(first->second.second);
        delayed_.erase(first);
        EnqueueLocked(lane, std::move(task));
        ++promoted;
    }
    if (promoted > 1) wake_.notify_all();  // this thread takes one; the others are for any idle thread
}

void ThreadPoolExecutor::Shutdown() {
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

std::size_t ThreadPoolExecutor::busy() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return queued_ + running_ + delayed_.size();
}

ThreadPoolExecutor::Load ThreadPoolExecutor::load() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return Load{queued_ + delayed_.size(), running_};
}

void ThreadPoolExecutor::Work() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
        PromoteDueLocked(Clock::now());
        if (ready_.empty()) {
            // Queued tasks still run after Shutdown began (above): they own shared state (a connection, a push gate)
            // that only they release, and a cancelled one returns at once.
            if (stopping_) return;
            if (delayed_.empty()) {
                wake_.wait(lock);
            } else {
                // A copy: the node may be gone (promoted by another thread) while this one waits.
                Clock::time_point deadline = delayed_.begin()->first;
                wake_.wait_until(lock, deadline);
            }
            continue;
        }
        // The ready lane with the fewest running tasks, the first in turn order among equals.
        auto pick = ready_.begin();
        for (auto it = ready_.begin(); it != ready_.end() && lanes_[*pick].running > 0; ++it) {
            if (lanes_[*it].running < lanes_[*pick].running) pick = it;
        }
        std::uint64_t id = *pick;
        Lane& lane = lanes_[id];
        std::function<void()> task = std::move(lane.queue.front());
        lane.queue.pop_front();
        --queued_;
        ++lane.running;
        ++running_;
        if (lane.queue.empty()) {
            ready_.erase(pick);
            lane.ready = false;
        } else {
            ready_.splice(ready_.end(), ready_, pick);  // its next task waits for the other lanes' turns
        }
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
        Lane& done = lanes_[id];
        --done.running;
        if (done.ready) {
            ready_.splice(ready_.end(), ready_, done.turn);  // it just had a turn: what it queued meanwhile waits
        } else if (done.running == 0) {
            lanes_.erase(id);
        }
    }
}

}  // namespace syncline::transport
