// Issue 9, item 7, over real sockets: streams of sockets that never read hold no executor thread, so with
// `action_threads` 2 other clients' streamed lists and detached actions are still answered promptly; and a socket may
// have only so many detached actions in progress (`max_pending_actions`), the next one answers 429.

#include <syncline/config/config.hpp>
#include <syncline/test_support/ws_client.hpp>
#include <syncline/transport/server.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "../storage/test_db.hpp"
#include "raw_ws.hpp"

namespace syncline {
namespace {

using test_support::WsClient;
using ::testing::HasSubstr;

// Generous for a loaded 2-core machine under ASan; the old executor never answered at all (36 s and counting).
constexpr auto kPrompt = std::chrono::seconds(15);

constexpr const char* kConfig = R"({
  "database": "big.db", "listen": {"port": 0}, "workers": 2, "action_threads": 2, "max_pending_actions": 4,
  "models": {"notes": {"fields": {"id": {"type": "integer", "primary_key": true}, "text": {"type": "text"}}}},
  "routes": {"/ws/notes/": {"model": "notes", "pagination": "streamed", "page_size": 50, "max_page_size": 100,
                            "mixins": ["retrieve"]}}})";

// A detached action that answers at once, and one that waits for the test's latch.
struct Latch {
    std::mutex mutex;
    std::condition_variable cv;
    bool open = false;
    int entered = 0;
    void Open() {
        {
            std::lock_guard<std::mutex> lock(mutex);
            open = true;
        }
        cv.notify_all();
    }
};

std::shared_ptr<GenericConsumer> DetachedConsumer(const std::shared_ptr<Latch>& latch) {
    ConsumerOptions o;
    o.model = "notes";
    o.mixins = {RetrieveModelMixin()};
    o.mixins.push_back(Mixin{{
        CustomAction("ping_later", [](GenericConsumer&, ActionRequest&) { return ActionResult::Ok(200, "\"pong\""); })
            .Detached(),
        CustomAction("hold",
                     [latch](GenericConsumer&, ActionRequest& r) {
                         std::unique_lock<std::mutex> lock(latch->mutex);
                         ++latch->entered;
                         latch->cv.notify_all();
                         while (!latch->open && !r.cancelled()) latch->cv.wait_for(lock, std::chrono::milliseconds(5));
                         return ActionResult::Ok(200, "\"held\"");
                     })
            .Detached(),
    }});
    return std::make_shared<GenericConsumer>(o);
}

class StarvationTest : public ::testing::Test {
protected:
    void SetUp() override {
        server_ = config::BuildServer(config::ParseConfig(kConfig), dir_.File(""));
        server_->Route("/ws/detached/", DetachedConsumer(latch_), [] {
            EndpointOptions options;
            options.limits = ConnectionLimits{};
            options.limits->max_pending_actions = 4;
            return options;
        }());
        server_->Start();
        // 20 MB of rows: more than the socket buffers hold (the attackers cap theirs), so a stream to a socket that
        // never reads fills its queue and has to wait for room, forever.
        auto tx = server_->database().Begin();
        for (int i = 0; i < 10000; ++i) tx->Insert("notes", {{"text", std::string(2000, 'n')}});
        tx->Commit();
    }
    void TearDown() override { latch_->Open(); }

    std::unique_ptr<WsClient> Connect(const std::string& path) {
        auto result = WsClient::Connect("127.0.0.1", server_->port(), path);
        EXPECT_TRUE(result) << result.error;
        return std::move(result.client);
    }

    testing::TempDir dir_;
    std::shared_ptr<Latch> latch_ = std::make_shared<Latch>();
    std::unique_ptr<transport::Server> server_;
};

// Reads one streamed list to its last page; returns the number of rows, or -1 when a page did not come in time.
int ReadWholeStream(WsClient& ws, const std::string& request_id, std::chrono::steady_clock::time_point deadline) {
    int rows = 0;
    for (;;) {
        auto now = std::chrono::steady_clock::now();
        if (now >= deadline) return -1;
        auto text = ws.Receive(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now));
        if (!text) return -1;
        rapidjson::Document doc;
        doc.Parse(text->c_str());
        if (!doc.IsObject() || !doc["request_id"].IsString() || doc["request_id"].GetString() != request_id) continue;
        if (doc["response_status"].GetInt() != 200) return -1;
        const auto& data = doc["data"];
        auto got = static_cast<int>(data["results"].Size());
        rows += got;
        if (got < data["limit"].GetInt() || data["offset"].GetInt() + got >= data["count"].GetInt()) return rows;
    }
}

TEST_F(StarvationTest, SocketsThatNeverReadDoNotStarveOtherClientsStreamsAndDetachedActions) {
    // Three sockets start long streams (each as long as the table) and never read a byte: in the old executor each
    // held a thread, waiting for room, and with action_threads 2 nothing else ever ran again.
    std::vector<testing::RawWebSocket> attackers;
    for (int i = 0; i < 3; ++i) {
        auto raw = testing::RawWebSocket::Open(server_->port(), "/ws/notes/");
        ASSERT_TRUE(raw);
        ASSERT_TRUE(raw->SetReceiveBufferBytes(64 * 1024));  // or the kernel could take in the whole table
        ASSERT_TRUE(raw->SendText(R"({"action": "list", "request_id": "flood", "limit": 100})"));
        attackers.push_back(std::move(*raw));
    }
    // Wait until the attackers' streams are in progress (queued, running or waiting for room).
    auto started = std::chrono::steady_clock::now() + kPrompt;
    while (server_->executor().busy() < 3 && std::chrono::steady_clock::now() < started) std::this_thread::yield();
    ASSERT_GE(server_->executor().busy(), 3u);

    // A victim on the same route: a whole streamed list (of a filtered window), several times over, and detached
    // custom actions on another route, each within the deadline.
    auto victim = Connect("/ws/notes/");
    auto custom = Connect("/ws/detached/");
    auto deadline = std::chrono::steady_clock::now() + kPrompt;
    for (int round = 0; round < 3; ++round) {
        std::string id = "victim-" + std::to_string(round);
        ASSERT_TRUE(
            victim->SendText(R"({"action": "list", "request_id": ")" + id + R"(", "limit": 100, "offset": 9500})"));
        EXPECT_EQ(ReadWholeStream(*victim, id, deadline), 500) << "round " << round;
        EXPECT_THAT(custom
                        ->Request(R"({"action": "ping_later", "request_id": 1})",
                                  std::chrono::duration_cast<std::chrono::milliseconds>(
                                      deadline - std::chrono::steady_clock::now()))
                        .value_or("no reply in time"),
                    HasSubstr(R"("data":"pong")"));
    }
    // The attackers' streams are still there, waiting without a thread.
    EXPECT_GE(server_->executor().busy(), 3u);
    // Once they close, their streams stop and the executor drains.
    attackers.clear();
    auto drained = std::chrono::steady_clock::now() + kPrompt;
    while (server_->executor().busy() > 0 && std::chrono::steady_clock::now() < drained) std::this_thread::yield();
    EXPECT_EQ(server_->executor().busy(), 0u);
}

TEST_F(StarvationTest, ASocketMayHaveOnlySoManyDetachedActionsInProgress) {
    auto hog = Connect("/ws/detached/");
    for (int i = 0; i < 4; ++i)
        ASSERT_TRUE(hog->SendText(R"({"action": "hold", "request_id": )" + std::to_string(i) + "}"));
    // The fifth answers at once, naming the limit; the socket stays open and its other requests are answered.
    EXPECT_EQ(hog->Request(R"({"action": "hold", "request_id": 4})", kPrompt).value_or(""),
              R"({"errors":["Too many detached actions in progress on this socket (at most 4); wait for a reply, or )"
              R"(cancel a streamed list with list_cancel."],"data":null,"action":"hold","response_status":429,)"
              R"("request_id":4})");
    EXPECT_THAT(hog->Request(R"({"action": "retrieve", "pk": 1, "request_id": "r"})", kPrompt).value_or(""),
                HasSubstr(R"("response_status":200)"));
    // Another socket is not limited by the hog's count (its action waits for a thread: the hog's two run).
    auto other = Connect("/ws/detached/");
    ASSERT_TRUE(other->SendText(R"({"action": "ping_later", "request_id": "o"})"));
    latch_->Open();
    EXPECT_THAT(other->Receive(kPrompt).value_or(""), HasSubstr(R"("data":"pong")"));
    for (int i = 0; i < 4; ++i) EXPECT_THAT(hog->Receive(kPrompt).value_or(""), HasSubstr(R"("data":"held")"));
    // Their end makes room again.
    EXPECT_THAT(hog->Request(R"({"action": "ping_later", "request_id": 5})", kPrompt).value_or(""),
                HasSubstr(R"("response_status":200)"));
}

}  // namespace
}  // namespace syncline
