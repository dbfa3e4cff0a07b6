#pragma once
// The fixture of the observer's own tests (registry and delivery): a blog database, an observer on a bus that records
// which channels it was asked to carry, consumers over `posts`, and connections whose outbox records every push with
// its key and the shared frame it came as. Real changes come from the database's change feed, coalesced as the relay
// does.

#include <syncline/core/consumer/consumer.hpp>
#include <syncline/core/consumer/subscriptions.hpp>
#include <syncline/observer/observer.hpp>
#include <syncline/storage/backend.hpp>
#include <syncline/test_support/engines.hpp>

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "started.hpp"

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "../storage/test_db.hpp"

namespace syncline::observer::testing {

using syncline::testing::Started;

/// The in-process bus, plus the set of channels subscribed now and a count of Subscribe calls per channel.
class RecordingBus final : public Bus {
public:
    using Bus::Publish;
    using Bus::Subscribe;
    void Publish(std::string channel, std::string payload) override { bus_.Publish(channel, payload); }
    void Subscribe(std::string channel) override {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            channels_.insert(channel);
            ++subscribes_[channel];
        }
        bus_.Subscribe(std::move(channel));
    }
    void Unsubscribe(std::string channel) override {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            channels_.erase(channel);
        }
        bus_.Unsubscribe(std::move(channel));
    }
    void SetHandler(Handler handler) override { bus_.SetHandler(std::move(handler)); }
    /// Set before the observer starts: a bus that says it crosses processes gets the observer's delivery queue.
    bool crosses = false;
    bool crosses_processes() const override { return crosses; }

    std::set<std::string> channels() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return channels_;
    }
    int subscribes(const std::string& channel) const {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = subscribes_.find(channel);
        return it == subscribes_.end() ? 0 : it->second;
    }

private:
    InProcessBus bus_;
    mutable std::mutex mutex_;
    std::set<std::string> channels_;
    std::map<std::string, int> subscribes_;
};

/// One push as a socket received it.
struct ReceivedPush {
    std::shared_ptr<const SharedFrame> shared;  ///< The frame object (shared by subscribers of one request_id).
    std::string key;
    std::string action;
    int status = 0;
    std::string request_id;  ///< Its JSON text.
    std::string data;        ///< Its JSON text.
    std::int64_t version = 0;
};

/// Records shared pushes, parsed.
class PushOutbox final : public Outbox {
public:
    void Send(std::string) override { ADD_FAILURE() << "the observer only pushes"; }
    void SendSharedPush(std::shared_ptr<const SharedFrame> frame, const std::string& key) override {
        rapidjson::Document doc;
        doc.Parse(frame->text().c_str());
        ReceivedPush push;
        if (doc.HasParseError() || !doc.IsObject()) {
            ADD_FAILURE() << "not a JSON object: " << frame->text();
        } else {
            push.action = doc["action"].GetString();
            push.status = doc["response_status"].GetInt();
            push.request_id = Json(doc["request_id"]);
            push.data = Json(doc["data"]);
            push.version = doc["version"].GetInt64();
        }
        push.shared = std::move(frame);
        push.key = key;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            pushes_.push_back(std::move(push));
        }
        std::unique_lock<std::mutex> gate(gate_mutex_);
        if (hold_) {
            holding_ = true;
            gate_cv_.notify_all();
            gate_cv_.wait(gate, [this] { return !hold_; });
        }
    }
    void Close(int, std::string) override {}
    std::size_t BufferedBytes() const override { return 0; }

    /// The next push waits (in SendSharedPush, on the pushing thread) until Release: a socket that cannot keep up.
    void HoldNextPush() {
        std::lock_guard<std::mutex> lock(gate_mutex_);
        hold_ = true;
        holding_ = false;
    }
    /// Waits up to 10 s until a push is held; true if one is.
    bool WaitHolding() {
        std::unique_lock<std::mutex> lock(gate_mutex_);
        return gate_cv_.wait_for(lock, std::chrono::seconds(10), [this] { return holding_; });
    }
    void Release() {
        std::lock_guard<std::mutex> lock(gate_mutex_);
        hold_ = false;
        gate_cv_.notify_all();
    }

    std::vector<ReceivedPush> pushes() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return pushes_;
    }

private:
    static std::string Json(const rapidjson::Value& value) {
        rapidjson::StringBuffer buffer;
        rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
        value.Accept(writer);
        return std::string(buffer.GetString(), buffer.GetSize());
    }
    mutable std::mutex mutex_;
    std::vector<ReceivedPush> pushes_;
    std::mutex gate_mutex_;
    std::condition_variable gate_cv_;
    bool hold_ = false;
    bool holding_ = false;
};

/// A socket: its context (the user is named `name`) and what it received.
struct Socket {
    std::shared_ptr<PushOutbox> outbox;
    std::shared_ptr<ConnectionContext> context;
    std::vector<ReceivedPush> pushes() const { return outbox->pushes(); }
    /// Each push as "<request_id> <action>", in order.
    std::vector<std::string> Summary() const {
        std::vector<std::string> out;
        for (const ReceivedPush& push : pushes()) out.push_back(push.request_id + " " + push.action);
        return out;
    }
};

/// Runs on both engines: instantiate a suite derived from it with INSTANTIATE_TEST_SUITE_P(Engines, X, AllEngines(),
/// EngineParamName).
class ObserverFixture : public ::testing::TestWithParam<test_support::Engine> {
protected:
    void SetUp() override {
        engine_db_ = std::make_unique<test_support::EngineDatabase>(GetParam(), dir_);
        if (!engine_db_->available()) GTEST_SKIP() << test_support::kPgSkipReason;
        db_ = syncline::testing::OpenBlogBackend(engine_db_->database());
        db_->Insert("posts", {{"title", "one"}, {"author", "ann"}});
        db_->Insert("posts", {{"title", "two"}, {"author", "bob"}});
        feed_ = db_->OpenChangeSource();
        cursor_ = feed_->LatestSeq();
        observer_ = std::make_unique<Observer>(db_->models(), bus_, ChannelLayout("t", 4), nullptr);
        observer_->Start();
        consumer_ = Consumer({});
    }

    /// A consumer over posts (lookup by pk, filterable by author) with these permissions, bound to the observer.
    std::shared_ptr<GenericConsumer> Consumer(std::vector<std::shared_ptr<const Permission>> permissions) {
        ConsumerOptions options;
        options.model = "posts";
        options.filter_fields = {"author"};
        options.permissions = std::move(permissions);
        auto consumer = std::make_shared<GenericConsumer>(options);
        consumer->Bind(*db_, observer_.get());
        return consumer;
    }

    static Socket Connect(const std::string& user_name, std::size_t max_subscriptions = 1000) {
        User user;
        user.authenticated = true;
        user.id = user_name;
        user.name = user_name;
        ConnectionLimits limits;
        limits.max_subscriptions = max_subscriptions;
        Socket socket;
        socket.outbox = std::make_shared<PushOutbox>();
        socket.context = std::make_shared<ConnectionContext>(HandshakeRequest{"/ws/posts/", "", {}, "127.0.0.1:1"},
                                                             socket.outbox, user, limits);
        return socket;
    }

    bool SubscribeRow(const Socket& socket, GenericConsumer& consumer, std::int64_t pk, const std::string& request_id) {
        return Started(observer_->SubscribeInstance(
            *socket.context, consumer, InstanceSubscription{Value(pk), Value(pk), "\"" + request_id + "\""}));
    }

    /// Delivers what the change feed captured since the last call, coalesced as the relay does. Returns the events.
    std::vector<RowEvent> DeliverChanges() {
        std::vector<ChangeEvent> changes = feed_->ReadAfter(cursor_, 1000);
        if (!changes.empty()) cursor_ = changes.back().seq;
        std::vector<RowEvent> events = Coalesce(std::move(changes));
        for (const RowEvent& event : events) observer_->Deliver(event);
        return events;
    }

    syncline::testing::TempDir dir_;
    std::unique_ptr<test_support::EngineDatabase> engine_db_;
    std::unique_ptr<storage::Backend> db_;
    std::unique_ptr<ChangeSource> feed_;
    std::int64_t cursor_ = 0;
    RecordingBus bus_;
    std::unique_ptr<Observer> observer_;
    std::shared_ptr<GenericConsumer> consumer_;
};

}  // namespace syncline::observer::testing
