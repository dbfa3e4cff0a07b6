// The observer's share of a push (the relay thread's work with the in-process bus, the delivery thread's with Redis):
// Observer::Deliver of one change to every subscriber of its row, that is per subscriber the version check, the
// permission checks (HasPermission and CanSee), the frame (serialized once per event, stamped once per request_id) and
// one Outbox::SendSharedPush, here to outboxes that only count. No socket, no bus encoding, no old row to parse.
// Run: build-bench/bin/syncline_bench_observer (benchmarks/README.md records the figures).

#include <syncline/core/consumer/consumer.hpp>
#include <syncline/core/consumer/subscriptions.hpp>
#include <syncline/observer/bus.hpp>
#include <syncline/observer/observer.hpp>
#include <syncline/storage/database.hpp>

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace syncline {
namespace {

// Counts the pushes it is given; the observer never sends replies.
class CountingOutbox final : public Outbox {
public:
    void Send(std::string) override {}
    void SendSharedPush(std::shared_ptr<const SharedFrame>, const std::string&) override { ++pushes; }
    void Close(int, std::string) override {}
    std::size_t BufferedBytes() const override { return 0; }
    std::atomic<std::int64_t> pushes{0};
};

// One row of "items" in a fresh SQLite file, `subscribers` connections subscribed to it with request_id "s", and the
// observer that pushes its changes (in-process bus, started).
class Setup {
public:
    explicit Setup(int subscribers) {
        char tmpl[] = "/tmp/syncline-bench-observer-XXXXXX";
        dir_ = mkdtemp(tmpl);
        storage::DatabaseOptions options;
        options.path = dir_ + "/bench.db";
        db_ = storage::Database::Open(
            options, {Schema::FromJson("items", R"({"fields": {"n": {"type": "integer"}, "pad": {"type": "text"}}})")});
        db_->Insert("items", {{"n", Value(0)}, {"pad", Value(std::string(64, 'x'))}});
        observer_ = std::make_unique<observer::Observer>(db_->models(), bus_, observer::ChannelLayout("b", 4), nullptr);
        observer_->Start();
        ConsumerOptions consumer_options;
        consumer_options.model = "items";
        consumer_ = std::make_shared<GenericConsumer>(consumer_options);
        consumer_->Bind(*db_, observer_.get());
        ConnectionLimits limits;
        for (int i = 0; i < subscribers; ++i) {
            auto outbox = std::make_shared<CountingOutbox>();
            auto context = std::make_shared<ConnectionContext>(HandshakeRequest{"/ws/items/", "", {}, "127.0.0.1:1"},
                                                               outbox, User{}, limits);
            auto pending = observer_->SubscribeInstance(*context, *consumer_,
                                                        InstanceSubscription{Value(1), Value(1), "\"s\""});
            if (pending) pending->Start(0, {});
            outboxes_.push_back(std::move(outbox));
            contexts_.push_back(std::move(context));
        }
        event_.table = "items";
        event_.pk = Value(1);
        event_.row = db_->Get("items", "id", Value(1));
    }
    ~Setup() {
        for (const auto& context : contexts_) observer_->DropConnection(*context);
        observer_.reset();
        db_.reset();
        std::filesystem::remove_all(dir_);
    }

    // Delivers the next version of the row.
    void DeliverNext() {
        ++version_;
        event_.version = version_;
        event_.position = version_;
        observer_->Deliver(event_);
    }
    // Pushes every subscriber received: each must have one per version.
    bool EveryoneGotEveryVersion() const {
        for (const auto& outbox : outboxes_) {
            if (outbox->pushes.load() != version_) return false;
        }
        return true;
    }

private:
    std::string dir_;
    std::unique_ptr<storage::Database> db_;
    observer::InProcessBus bus_;
    std::unique_ptr<observer::Observer> observer_;
    std::shared_ptr<GenericConsumer> consumer_;
    std::vector<std::shared_ptr<CountingOutbox>> outboxes_;
    std::vector<std::shared_ptr<ConnectionContext>> contexts_;
    observer::RowEvent event_;
    std::int64_t version_ = 0;
};

// Items are pushes: one per subscriber per change.
void BM_InstanceFanOut(benchmark::State& state) {
    const int subscribers = static_cast<int>(state.range(0));
    Setup setup(subscribers);
    for (auto _ : state) setup.DeliverNext();
    if (!setup.EveryoneGotEveryVersion()) state.SkipWithError("a subscriber missed a version");
    state.SetItemsProcessed(state.iterations() * subscribers);
}
BENCHMARK(BM_InstanceFanOut)->Arg(1)->Arg(1000)->Arg(10000)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace syncline

BENCHMARK_MAIN();
