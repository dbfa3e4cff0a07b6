// Detached actions, custom actions and streamed lists at the consumer level, with an outbox the test controls: the
// executor, pushes held as a count, needs_object, backpressure of a stream, list_cancel and cancellation on close.
// The same behaviour over real sockets is in tests/integration/actions_stream_test.cpp.

#include <syncline/core/consumer/consumer.hpp>
#include <syncline/core/consumer/subscriptions.hpp>
#include <syncline/core/protocol/consumer_endpoint.hpp>
#include <syncline/core/protocol/frame_dispatch.hpp>
#include <syncline/storage/database.hpp>
#include <syncline/test_support/same_json.hpp>
#include <syncline/transport/thread_pool_executor.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "../storage/test_db.hpp"
#include "recording_outbox.hpp"

namespace syncline {
namespace {

using ::testing::HasSubstr;
constexpr auto kDeadline = std::chrono::seconds(10);

// An outbox whose unwritten byte count the test sets, and which lets the test wait for frames and for polls.
class ControlledOutbox final : public Outbox {
public:
    void Send(std::string frame) override {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            frames_.push_back(std::move(frame));
        }
        changed_.notify_all();
    }
    void SendPush(std::string frame, const std::string& key) override {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (held_.Keep(frame, key)) return;
            frames_.push_back(std::move(frame));
        }
        changed_.notify_all();
    }
    void HoldPushes() override {
        std::lock_guard<std::mutex> lock(mutex_);
        ++held_.holds;
    }
    void ReleasePushes() override {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            for (auto& held : held_.Release()) frames_.push_back(std::move(held.second));
        }
        changed_.notify_all();
    }
    void Close(int code, std::string reason) override {
        (void)code;
        (void)reason;
    }
    std::size_t BufferedBytes() const override {
        std::size_t bytes;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            ++polls_;
            bytes = buffered_;
        }
        changed_.notify_all();
        return bytes;
    }
    void SetBuffered(std::size_t bytes) {
        std::lock_guard<std::mutex> lock(mutex_);
        buffered_ = bytes;
    }
    // Waits until `count` frames were sent; returns a copy of all frames sent.
    std::vector<std::string> WaitFrames(std::size_t count) {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait_for(lock, kDeadline, [&] { return frames_.size() >= count; });
        return frames_;
    }
    // Waits until BufferedBytes was asked `more` times after this call (a stream is polling a full queue).
    bool WaitPolls(int more) {
        std::unique_lock<std::mutex> lock(mutex_);
        int target = polls_ + more;
        return changed_.wait_for(lock, kDeadline, [&] { return polls_ >= target; });
    }
    std::vector<std::string> frames() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return frames_;
    }

private:
    mutable std::mutex mutex_;
    mutable std::condition_variable changed_;
    std::vector<std::string> frames_;
    testing::HeldPushes held_;  // guarded by mutex_
    std::size_t buffered_ = 0;
    mutable int polls_ = 0;
};

// A latch the test opens; handlers wait on it, polling the request's cancel flag.
struct Latch {
    std::mutex mutex;
    std::condition_variable cv;
    bool open = false;
    int entered = 0;
    bool saw_cancel = false;
    void Open() {
        {
            std::lock_guard<std::mutex> lock(mutex);
            open = true;
        }
        cv.notify_all();
    }
    // In a handler: waits for Open or the request's cancellation; returns false when cancelled.
    bool Wait(const ActionRequest& request) {
        std::unique_lock<std::mutex> lock(mutex);
        ++entered;
        cv.notify_all();
        while (!open) {
            if (request.cancelled()) {
                saw_cancel = true;
                cv.notify_all();
                return false;
            }
            cv.wait_for(lock, std::chrono::milliseconds(2));
        }
        return true;
    }
    bool WaitEntered(int count) {
        std::unique_lock<std::mutex> lock(mutex);
        return cv.wait_for(lock, kDeadline, [&] { return entered >= count; });
    }
    bool WaitSawCancel() {
        std::unique_lock<std::mutex> lock(mutex);
        return cv.wait_for(lock, kDeadline, [&] { return saw_cancel; });
    }
};

// Subscriptions that hold nothing.
class NoPending final : public PendingSubscriptions {
public:
    void Start(std::int64_t, std::vector<std::pair<Value, std::int64_t>>) override {}
};

// A registry that only counts the connections dropped.
class CountingRegistry final : public SubscriptionRegistry {
public:
    std::unique_ptr<PendingSubscriptions> SubscribeInstance(ConnectionContext&, GenericConsumer&,
                                                            InstanceSubscription) override {
        return std::make_unique<NoPending>();
    }
    void UnsubscribeInstance(ConnectionContext&, GenericConsumer&, const Value&,
                             const std::optional<std::string>&) override {}
    std::unique_ptr<PendingSubscriptions> SubscribeGroups(ConnectionContext&, GenericConsumer&,
                                                          std::shared_ptr<const GroupObserver>,
                                                          const std::vector<std::string>&,
                                                          const std::string&) override {
        return std::make_unique<NoPending>();
    }
    void UnsubscribeGroups(ConnectionContext&, GenericConsumer&, const GroupObserver&, const std::vector<std::string>&,
                           const std::optional<std::string>&) override {}
    std::unique_ptr<PendingSubscriptions> SubscribeList(ConnectionContext&, GenericConsumer&, std::vector<Filter>,
                                                        const std::string&) override {
        return std::make_unique<NoPending>();
    }
    void UnsubscribeList(ConnectionContext&, GenericConsumer&, const std::optional<std::string>&) override {}
    void DropConnection(ConnectionContext&) override { ++dropped; }
    std::atomic<int> dropped{0};
};

using test_support::SameJson;

bool WaitIdle(const transport::ThreadPoolExecutor& executor) {
    auto deadline = std::chrono::steady_clock::now() + kDeadline;
    while (executor.busy() > 0) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::yield();
    }
    return true;
}

class ActionsTest : public ::testing::Test {
protected:
    void SetUp() override {
        storage::DatabaseOptions options;
        options.path = dir_.File("blog.db");
        db_ = storage::Database::Open(options, {testing::PostsSchema()});
        for (const char* author : {"alice", "bob", "alice", "carol", "alice"}) {
            db_->Insert("posts", {{"title", std::string("by ") + author}, {"author", author}});
        }
        ConsumerOptions o;
        o.model = "posts";
        o.serializer.fields = {"id", "author"};
        o.filter_fields = {"author"};
        o.ordering_fields = {"id"};
        o.page_size = 2;
        o.max_page_size = 3;
        o.mixins = {RetrieveModelMixin(), PatchModelMixin(), StreamedPaginatedListMixin()};
        o.mixins.push_back(Mixin{{
            CustomAction("title_of",
                         [](GenericConsumer& c, ActionRequest& r) {
                             const Row& row = r.object();
                             return ActionResult::Ok(
                                 202,
                                 "{\"title\":\"" + row.at(c.schema().FieldIndex("title").value()).AsText() + "\"}");
                         })
                .NeedsObject(),
            CustomAction("hold",
                         [latch = latch_](GenericConsumer&, ActionRequest& r) {
                             return latch->Wait(r) ? ActionResult::Ok(200, "\"held\"")
                                                   : ActionResult::Ok(200, "\"cancelled\"");
                         })
                .Detached(),
            CustomAction("hold_write",
                         [latch = latch_](GenericConsumer&, ActionRequest& r) {
                             latch->Wait(r);
                             return ActionResult::Ok(200, "\"written\"");
                         })
                .Detached()
                .Writes(),
            CustomAction("hold_subscribe",
                         [latch = latch_](GenericConsumer&, ActionRequest& r) {
                             // A real one would subscribe here, possibly after the socket's subscriptions were dropped.
                             latch->Wait(r);
                             return ActionResult::Ok(201);
                         })
                .Detached()
                .Subscribes(),
        }});
        consumer_ = std::make_shared<GenericConsumer>(o);
        consumer_->Bind(*db_, &registry_);
    }
    void Serve(const std::string& frame) { ServeTextFrame(consumer_, context_, frame, executor_.get()); }
    void TearDown() override {
        latch_->Open();
        outbox_->SetBuffered(0);
        executor_->Shutdown();
    }

    testing::TempDir dir_;
    std::unique_ptr<storage::Database> db_;
    CountingRegistry registry_;
    std::shared_ptr<Latch> latch_ = std::make_shared<Latch>();
    std::shared_ptr<GenericConsumer> consumer_;
    std::shared_ptr<transport::ThreadPoolExecutor> executor_ = std::make_shared<transport::ThreadPoolExecutor>(2);
    std::shared_ptr<ControlledOutbox> outbox_ = std::make_shared<ControlledOutbox>();
    std::shared_ptr<ConnectionContext> context_ =
        std::make_shared<ConnectionContext>(HandshakeRequest{"/ws/posts/", "", {}, "127.0.0.1:1"}, outbox_);
};

TEST_F(ActionsTest, AStreamWaitingForRoomHoldsNoThread) {
    // One executor thread, and a stream whose socket has no room: another socket's detached action still runs.
    auto executor = std::make_shared<transport::ThreadPoolExecutor>(1);
    // Before the executor goes, whatever the outcome: a stream that held the thread (the bug) then finishes.
    struct Unblock {
        ControlledOutbox* outbox;
        ~Unblock() { outbox->SetBuffered(0); }
    } unblock{outbox_.get()};
    outbox_->SetBuffered(ActionRequest::kStreamQueueBytes + 1);
    ServeTextFrame(consumer_, context_, R"({"action": "list", "request_id": "s"})", executor.get());
    ASSERT_TRUE(outbox_->WaitPolls(3));  // the stream is waiting for room
    auto other_outbox = std::make_shared<ControlledOutbox>();
    auto other =
        std::make_shared<ConnectionContext>(HandshakeRequest{"/ws/posts/", "", {}, "127.0.0.1:2"}, other_outbox);
    latch_->Open();
    ServeTextFrame(consumer_, other, R"({"action": "hold", "request_id": "h"})", executor.get());
    auto frames = other_outbox->WaitFrames(1);
    ASSERT_EQ(frames.size(), 1u) << "the other socket's action did not run while the stream waited";
    EXPECT_THAT(frames[0], HasSubstr(R"("data":"held")"));
    EXPECT_TRUE(outbox_->frames().empty());
    // What is left is the stream, waiting without a thread (the other action counts until its task returned).
    auto deadline = std::chrono::steady_clock::now() + kDeadline;
    while (executor->busy() > 1 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    EXPECT_EQ(executor->busy(), 1u);
    // Room again: the stream goes on to its end.
    outbox_->SetBuffered(0);
    EXPECT_EQ(outbox_->WaitFrames(3).size(), 3u);
    ASSERT_TRUE(WaitIdle(*executor));
    executor->Shutdown();
}

TEST_F(ActionsTest, DetachedActionsBeyondTheLimitAnswer429) {
    ConnectionLimits limits;
    limits.max_pending_actions = 3;
    context_ = std::make_shared<ConnectionContext>(HandshakeRequest{"/ws/posts/", "", {}, "127.0.0.1:1"}, outbox_,
                                                   User{}, limits);
    for (int i = 0; i < 3; ++i) {
        ServeTextFrame(consumer_, context_, R"({"action": "hold", "request_id": )" + std::to_string(i) + "}",
                       executor_.get());
    }
    ASSERT_TRUE(latch_->WaitEntered(2));  // two run, one queued: three in progress
    EXPECT_EQ(context_->detached(), 3u);
    ServeTextFrame(consumer_, context_, R"({"action": "hold", "request_id": 3})", executor_.get());
    ServeTextFrame(consumer_, context_, R"({"action": "list", "request_id": 4})", executor_.get());
    auto frames = outbox_->frames();
    ASSERT_EQ(frames.size(), 2u);
    for (int i = 0; i < 2; ++i) {
        EXPECT_TRUE(SameJson(
            frames[static_cast<std::size_t>(i)],
            std::string(R"({"errors": ["Too many detached actions in progress on this socket (at most )"
                        R"(3); wait for a reply, or cancel a streamed list with list_cancel."],)"
                        R"( "data": null, "action": ")") +
                (i ? "list" : "hold") + R"(", "response_status": 429, "request_id": )" + std::to_string(i + 3) + "}"))
            << frames[static_cast<std::size_t>(i)];
    }
    // Other requests are answered meanwhile, and once the actions end there is room again.
    EXPECT_THAT(HandleTextFrame(*consumer_, *context_, R"({"action": "retrieve", "pk": 1})"),
                HasSubstr(R"("response_status":200)"));
    latch_->Open();
    ASSERT_TRUE(WaitIdle(*executor_));
    EXPECT_EQ(context_->detached(), 0u);
    ServeTextFrame(consumer_, context_, R"({"action": "list", "request_id": 5})", executor_.get());
    ASSERT_TRUE(WaitIdle(*executor_));
    EXPECT_EQ(outbox_->frames().size(), 2u + 3u + 3u);  // the 429s, three held replies, three pages
}

TEST_F(ActionsTest, StreamedListSendsOneFramePerPage) {
    // Synchronously (HandleTextFrame): the frames go to the outbox, and there is no reply of its own.
    EXPECT_EQ(HandleTextFrame(*consumer_, *context_, R"({"action": "list", "request_id": "s"})"), "");
    auto frames = outbox_->frames();
    ASSERT_EQ(frames.size(), 3u);
    EXPECT_TRUE(SameJson(frames[0], R"({"errors": [], "data": {"count": 5, "results": [{"id": 1, "author": "alice"},
        {"id": 2, "author": "bob"}], "limit": 2, "offset": 0}, "action": "list", "response_status": 200,
        "request_id": "s"})"));
    EXPECT_TRUE(SameJson(frames[1], R"({"errors": [], "data": {"count": 5, "results": [{"id": 3, "author": "alice"},
        {"id": 4, "author": "carol"}], "limit": 2, "offset": 2}, "action": "list", "response_status": 200,
        "request_id": "s"})"));
    EXPECT_TRUE(SameJson(frames[2], R"({"errors": [], "data": {"count": 5, "results": [{"id": 5, "author": "alice"}],
        "limit": 2, "offset": 4}, "action": "list", "response_status": 200, "request_id": "s"})"));
    // An error before the first page is one ordinary reply.
    EXPECT_TRUE(SameJson(HandleTextFrame(*consumer_, *context_, R"({"action": "list", "filter": {"title": "x"}})"),
                         R"({"errors": ["Filtering on \"title\" is not allowed."], "data": null, "action": "list",
                             "response_status": 400, "request_id": null})"));
}

TEST_F(ActionsTest, DispatchRunsAResumableActionToItsEnd) {
    // A caller of Dispatch (a routed consumer, custom code) gets the final result: the steps ran one after the other.
    rapidjson::Document doc;
    doc.Parse(R"({"action": "list", "request_id": "d", "limit": 2})");
    ActionRequest request(*context_, "list", doc);
    ActionResult result = consumer_->Dispatch(request);
    EXPECT_TRUE(result.streamed);
    EXPECT_FALSE(result.next);
    auto frames = outbox_->frames();
    ASSERT_EQ(frames.size(), 3u);
    EXPECT_THAT(frames[2], HasSubstr(R"("offset":4},"action":"list","response_status":200,"request_id":"d")"));
}

TEST_F(ActionsTest, AStreamWaitsWhileTheQueueIsFullThenGoesOn) {
    outbox_->SetBuffered(ActionRequest::kStreamQueueBytes + 1);
    Serve(R"({"action": "list", "request_id": 1})");
    ASSERT_TRUE(outbox_->WaitPolls(3));  // polling the full queue, nothing sent
    EXPECT_TRUE(outbox_->frames().empty());
    outbox_->SetBuffered(ActionRequest::kStreamQueueBytes);  // at the bound: room again
    auto frames = outbox_->WaitFrames(3);
    ASSERT_EQ(frames.size(), 3u);
    EXPECT_THAT(frames[2], HasSubstr(R"("offset":4)"));
    ASSERT_TRUE(WaitIdle(*executor_));
}

TEST_F(ActionsTest, ClosingTheSocketStopsABlockedStream) {
    ConsumerEndpoint endpoint(
        consumer_, EndpointOptions{{}, std::nullopt, executor_, std::nullopt, std::nullopt, nullptr, nullptr});
    auto session = endpoint.Open(context_->request(), outbox_);
    outbox_->SetBuffered(ActionRequest::kStreamQueueBytes + 1);
    session->OnText(R"({"action": "list", "request_id": 1})");
    ASSERT_TRUE(outbox_->WaitPolls(3));
    session->OnClose();
    // The stream returns while the queue is still full: only its cancellation can end it.
    EXPECT_TRUE(WaitIdle(*executor_));
    EXPECT_TRUE(outbox_->frames().empty());
}

TEST_F(ActionsTest, ListCancelStopsTheStreamsRunningAndNoFrameFollowsItsReply) {
    outbox_->SetBuffered(ActionRequest::kStreamQueueBytes + 1);
    Serve(R"({"action": "list", "request_id": "a"})");
    Serve(R"({"action": "list", "request_id": "b", "limit": 1})");
    ASSERT_TRUE(outbox_->WaitPolls(6));
    Serve(R"({"action": "list_cancel", "request_id": "c"})");
    auto frames = outbox_->frames();
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_TRUE(SameJson(frames[0], R"({"errors": [], "data": null, "action": "list_cancel", "response_status": 200,
                                        "request_id": "c"})"));
    ASSERT_TRUE(WaitIdle(*executor_));  // both streams returned with the queue still full
    outbox_->SetBuffered(0);
    // A stream started after the cancel runs to its end.
    Serve(R"({"action": "list", "request_id": "d", "limit": 3})");
    frames = outbox_->WaitFrames(3);
    ASSERT_TRUE(WaitIdle(*executor_));
    frames = outbox_->frames();
    ASSERT_EQ(frames.size(), 3u);
    EXPECT_THAT(frames[1], HasSubstr(R"("offset":0},"action":"list","response_status":200,"request_id":"d")"));
    EXPECT_THAT(frames[2], HasSubstr(R"("offset":3},"action":"list","response_status":200,"request_id":"d")"));
}

// The session holds the outbox's pushes from a request's frame to its reply, and the holds nest: the transport's queue
// does the waiting (its tests: HeldPushesTest), this fake models it.
TEST_F(ActionsTest, RequestsHoldTheOutboxsPushesAsACount) {
    context_->BeginRequest();
    context_->BeginRequest();
    context_->Push("p1", "k");
    context_->EndRequest();
    EXPECT_TRUE(outbox_->frames().empty());
    context_->Push("p2", "k");  // replaces the held push with the same key
    context_->EndRequest();
    EXPECT_EQ(outbox_->frames(), std::vector<std::string>{"p2"});
    context_->Push("p3", "k");
    EXPECT_EQ(outbox_->frames().size(), 2u);
}

TEST_F(ActionsTest, ADetachedWriterHoldsPushesUntilItsReplyAReaderDoesNot) {
    Serve(R"({"action": "hold", "request_id": "r"})");
    ASSERT_TRUE(latch_->WaitEntered(1));
    context_->Push("push-1", "k1");  // a non-writing detached action does not hold pushes back
    EXPECT_EQ(outbox_->frames(), std::vector<std::string>{"push-1"});
    Serve(R"({"action": "hold_write", "request_id": "w"})");
    ASSERT_TRUE(latch_->WaitEntered(2));
    context_->Push("push-2", "k2");
    Serve(R"({"action": "retrieve", "pk": 2, "request_id": "x"})");  // the socket is still answered meanwhile
    auto frames = outbox_->frames();
    ASSERT_EQ(frames.size(), 2u);
    EXPECT_THAT(frames[1], HasSubstr(R"("request_id":"x")"));
    latch_->Open();
    ASSERT_TRUE(WaitIdle(*executor_));
    frames = outbox_->frames();
    ASSERT_EQ(frames.size(), 5u);
    // The writer's reply comes before the push held back; the reader's reply whenever it finished.
    auto writer = std::find_if(frames.begin(), frames.end(),
                               [](const std::string& f) { return f.find(R"("request_id":"w")") != std::string::npos; });
    auto push = std::find(frames.begin(), frames.end(), "push-2");
    ASSERT_NE(writer, frames.end());
    ASSERT_NE(push, frames.end());
    EXPECT_LT(writer - frames.begin(), push - frames.begin());
    EXPECT_TRUE(SameJson(*writer, R"({"errors": [], "data": "written", "action": "hold_write", "response_status": 200,
                                      "request_id": "w"})"));
}

TEST_F(ActionsTest, ADetachedActionSeesTheCloseAndItsReplyIsNotSent) {
    Serve(R"({"action": "hold", "request_id": "r"})");
    ASSERT_TRUE(latch_->WaitEntered(1));
    context_->MarkClosed();
    EXPECT_TRUE(latch_->WaitSawCancel());
    ASSERT_TRUE(WaitIdle(*executor_));
    EXPECT_TRUE(outbox_->frames().empty());
    // After the close a detached action never starts.
    Serve(R"({"action": "hold", "request_id": "late"})");
    ASSERT_TRUE(WaitIdle(*executor_));
    std::lock_guard<std::mutex> lock(latch_->mutex);
    EXPECT_EQ(latch_->entered, 1);
}

TEST_F(ActionsTest, ADetachedSubscriberThatOutlivesItsSocketDropsItsSubscriptionsAgain) {
    ConsumerEndpoint endpoint(
        consumer_, EndpointOptions{{}, std::nullopt, executor_, std::nullopt, std::nullopt, nullptr, nullptr});
    auto session = endpoint.Open(context_->request(), outbox_);
    session->OnText(R"({"action": "hold_subscribe", "request_id": "s"})");
    ASSERT_TRUE(latch_->WaitEntered(1));
    session->OnClose();
    EXPECT_EQ(registry_.dropped.load(), 1);
    ASSERT_TRUE(WaitIdle(*executor_));
    EXPECT_EQ(registry_.dropped.load(), 2);
    EXPECT_TRUE(outbox_->frames().empty());
}

TEST_F(ActionsTest, AnEndpointWithoutAnExecutorRunsDetachedActionsInline) {
    // Core owns no thread: an endpoint given no executor (none from a Server) runs a detached action on the thread
    // that calls OnText.
    const std::thread::id caller = std::this_thread::get_id();
    std::atomic<bool> on_caller{false};
    ConsumerOptions o;
    o.model = "posts";
    o.mixins = {Mixin{{CustomAction("where",
                                    [&](GenericConsumer&, ActionRequest&) {
                                        on_caller = std::this_thread::get_id() == caller;
                                        return ActionResult::Ok(200, "\"ran\"");
                                    })
                           .Detached()}}};
    auto consumer = std::make_shared<GenericConsumer>(o);
    consumer->Bind(*db_, &registry_);
    ConsumerEndpoint endpoint(consumer);
    auto session = endpoint.Open(context_->request(), outbox_);
    session->OnText(R"({"action": "where", "request_id": "w"})");
    auto frames = outbox_->WaitFrames(1);
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_THAT(frames[0], HasSubstr(R"("data":"ran")"));
    EXPECT_TRUE(on_caller.load());
}

TEST_F(ActionsTest, NeedsObjectHandsTheRowToTheHandler) {
    EXPECT_TRUE(SameJson(HandleTextFrame(*consumer_, *context_, R"({"action": "title_of", "pk": 2, "request_id": 1})"),
                         R"({"errors": [], "data": {"title": "by bob"}, "action": "title_of", "response_status": 202,
                             "request_id": 1})"));
    EXPECT_TRUE(SameJson(HandleTextFrame(*consumer_, *context_, R"({"action": "title_of"})"),
                         R"({"errors": ["Missing lookup argument \"pk\"."], "data": null, "action": "title_of",
                             "response_status": 400, "request_id": null})"));
    for (const char* pk : {"99", "\"x\"", "null", "[1]"}) {
        std::string frame = std::string(R"({"action": "title_of", "pk": )") + pk + "}";
        EXPECT_TRUE(SameJson(HandleTextFrame(*consumer_, *context_, frame),
                             R"({"errors": ["Not found"], "data": null, "action": "title_of", "response_status": 404,
                                 "request_id": null})"))
            << pk;
    }
    // The built-in detail actions get their row the same way (one lookup).
    EXPECT_THAT(HandleTextFrame(*consumer_, *context_, R"({"action": "patch", "pk": 4, "data": {"author": "dan"}})"),
                HasSubstr(R"("data":{"id":4,"author":"dan"})"));
}

// A WriteBatcher the test drives: it keeps what is submitted, and the test ends each write with the outcome it chooses.
class ScriptedBatcher final : public WriteBatcher {
public:
    bool Submit(std::function<void()> run, std::function<void(std::exception_ptr)> done) override {
        std::lock_guard<std::mutex> lock(mutex_);
        if (refusing_) return false;
        writes_.push_back({std::move(run), std::move(done)});
        return true;
    }
    void Refuse() {
        std::lock_guard<std::mutex> lock(mutex_);
        refusing_ = true;
    }
    std::size_t submitted() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return writes_.size();
    }
    // Ends the oldest write: runs it when `error` is null (it committed), else fails it with `error` without running
    // it (its batch could not begin).
    void EndOldest(std::exception_ptr error) {
        std::pair<std::function<void()>, std::function<void(std::exception_ptr)>> write;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            write = std::move(writes_.front());
            writes_.erase(writes_.begin());
        }
        if (!error) write.first();
        write.second(error);
    }

private:
    mutable std::mutex mutex_;
    bool refusing_ = false;
    std::vector<std::pair<std::function<void()>, std::function<void(std::exception_ptr)>>> writes_;
};

TEST_F(ActionsTest, ABatchedWriteIsAnsweredAfterItsBatchAndAFailedBatchAnswersTheStoresErrorThenTheFramesBehind) {
    ScriptedBatcher batcher;
    auto lane = std::make_shared<SerialRequests>(consumer_, context_, executor_.get(), executor_.get(), &batcher);
    lane->OnText(R"({"action": "patch", "request_id": "p1", "pk": 1, "data": {"author": "zed"}})");
    lane->OnText(R"({"action": "retrieve", "request_id": "r1", "pk": 1})");  // waits behind the write
    ASSERT_EQ(batcher.submitted(), 1u);
    EXPECT_TRUE(outbox_->frames().empty()) << "answered before its batch ended";
    batcher.EndOldest(nullptr);  // committed
    auto frames = outbox_->WaitFrames(2);
    ASSERT_EQ(frames.size(), 2u);
    EXPECT_THAT(frames[0], HasSubstr(R"("request_id":"p1")"));
    EXPECT_THAT(frames[0], HasSubstr(R"("author":"zed")"));
    EXPECT_THAT(frames[1], HasSubstr(R"("request_id":"r1")"));
    EXPECT_THAT(frames[1], HasSubstr(R"("author":"zed")"));
    ASSERT_TRUE(WaitIdle(*executor_));  // the frames behind it were answered on the executor: the lane is free again

    // A batch that could not begin (the database busy past its timeout): the write is never run, its reply is the
    // store's 503, and the frame behind it is answered after it.
    lane->OnText(R"({"action": "patch", "request_id": "p2", "pk": 2, "data": {"author": "yan"}})");
    lane->OnText(R"({"action": "retrieve", "request_id": "r2", "pk": 2})");
    ASSERT_EQ(batcher.submitted(), 1u);
    batcher.EndOldest(std::make_exception_ptr(StoreError(StoreErrc::kBusy, "database is locked")));
    frames = outbox_->WaitFrames(4);
    ASSERT_EQ(frames.size(), 4u);
    EXPECT_THAT(frames[2], HasSubstr(R"("request_id":"p2")"));
    EXPECT_THAT(frames[2], HasSubstr(R"("response_status":503)"));
    EXPECT_THAT(frames[2], HasSubstr("The database is busy. Try again."));
    EXPECT_THAT(frames[3], HasSubstr(R"("request_id":"r2")"));
    EXPECT_THAT(frames[3], HasSubstr(R"("author":"bob")")) << "the failed write changed the row";
    ASSERT_TRUE(WaitIdle(*executor_));

    // Any other failure is a 500, logged; a batcher that no longer accepts writes answers 503 at once, and the socket
    // is served as before.
    lane->OnText(R"({"action": "patch", "request_id": "p3", "pk": 3, "data": {"author": "x"}})");
    batcher.EndOldest(std::make_exception_ptr(std::runtime_error("the commit failed")));
    frames = outbox_->WaitFrames(5);
    ASSERT_EQ(frames.size(), 5u);
    EXPECT_THAT(frames[4], HasSubstr(R"("response_status":500)"));
    batcher.Refuse();
    lane->OnText(R"({"action": "patch", "request_id": "p4", "pk": 3, "data": {"author": "x"}})");
    lane->OnText(R"({"action": "retrieve", "request_id": "r4", "pk": 3})");
    frames = outbox_->WaitFrames(7);
    ASSERT_EQ(frames.size(), 7u);
    EXPECT_THAT(frames[5], HasSubstr(R"("request_id":"p4")"));
    EXPECT_THAT(frames[5], HasSubstr("The server is shutting down."));
    EXPECT_THAT(frames[6], HasSubstr(R"("request_id":"r4")"));
    EXPECT_THAT(frames[6], HasSubstr(R"("author":"alice")"));
}

}  // namespace
}  // namespace syncline
