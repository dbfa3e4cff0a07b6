// Writes off the network threads (issue 13, SerialRequests, `write_threads` and `batch_writes`), over real sockets on
// SQLite, with the batch writer and with the write pool: while the database's writer is held, a socket's pipelined
// requests wait behind its write and are answered in order, other sockets are still served by the one network thread,
// the writes of many sockets meet in one transaction (and one that fails answers its own error alone), and a
// multiplexed stream (whose socket cannot stop being read) gets 429 past `max_waiting_request_bytes`.

#include <syncline/storage/database.hpp>
#include <syncline/test_support/server_fixture.hpp>
#include <syncline/test_support/ws_client.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace syncline {
namespace {

using namespace std::chrono_literals;
using test_support::WsClient;
using ::testing::HasSubstr;

// One network thread: a write that held it would leave every other socket unanswered.
constexpr const char* kConfig = R"({
  "database": "lane.db", "listen": {"port": 0}, "workers": 1, "write_threads": 16,
  "max_waiting_request_bytes": 300,
  "models": {"posts": {"fields": {"id": {"type": "integer", "primary_key": true}, "title": {"type": "text"}}}},
  "routes": {"/ws/posts/": {"model": "posts", "mixins": ["retrieve", "create", "patch"]},
             "/ws/": {"streams": {"posts": "/ws/posts/"}}}})";

// The config with "batch_writes" set.
std::string WithBatchWrites(const std::string& config, bool batched) {
    const std::string key = R"("write_threads")";
    const std::size_t at = config.find(key);
    return config.substr(0, at) + R"("batch_writes": )" + (batched ? "true" : "false") + ", " + config.substr(at);
}

class WriteLaneTest : public test_support::ServerTest {
protected:
    void SetUp() override { StartFromConfig(WithBatchWrites(kConfig, batched())); }

    virtual bool batched() const { return true; }

    storage::Database& Sqlite() { return dynamic_cast<storage::Database&>(server_->database()); }

    // Creates posts 1..count through a socket.
    void CreatePosts(int count) {
        auto ws = Connect();
        ASSERT_TRUE(ws);
        for (int i = 1; i <= count; ++i) {
            auto reply = ws->Request(R"({"action": "create", "request_id": 0, "data": {"title": "t)" +
                                     std::to_string(i) + R"("}})");
            ASSERT_TRUE(reply && reply->find("\"response_status\":201") != std::string::npos) << reply.value_or("");
        }
    }

    // Writes queued for the writer: submitted to the batch writer and not yet answered, or waiting in group commit.
    std::size_t Queued() { return batched() ? server_->batched_writes().queued : Sqlite().group_commit().queued; }

    // Waits until `count` writes are queued for the writer (the test holds it).
    bool WaitQueued(std::size_t count) {
        const auto deadline = std::chrono::steady_clock::now() + test_support::kServerWait;
        while (Queued() < count) {
            if (std::chrono::steady_clock::now() > deadline) return false;
            std::this_thread::sleep_for(2ms);  // polls a counter with a deadline; nothing to wait on
        }
        return true;
    }
};

// Batched (the default) or on the write pool.
class WriteModesTest : public WriteLaneTest, public ::testing::WithParamInterface<bool> {
protected:
    bool batched() const override { return GetParam(); }
};

INSTANTIATE_TEST_SUITE_P(Modes, WriteModesTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& mode) { return mode.param ? "Batched" : "Pool"; });

TEST_P(WriteModesTest, ASocketsRequestsWaitBehindItsWriteInOrderWhileOtherSocketsAreServed) {
    CreatePosts(1);
    auto writer = Connect();
    auto other = Connect();
    ASSERT_TRUE(writer && other);
    std::unique_ptr<storage::Transaction> held = Sqlite().Begin();  // the database's writer, held by the test
    ASSERT_TRUE(writer->SendText(R"({"action": "patch", "request_id": "p", "pk": 1, "data": {"title": "new"}})"));
    ASSERT_TRUE(writer->SendText(R"({"action": "retrieve", "request_id": "r", "pk": 1})"));
    ASSERT_TRUE(WaitQueued(1));
    // The network thread is free: another socket's read is answered while the write waits for the database.
    auto read = other->Request(R"({"action": "retrieve", "request_id": "o", "pk": 1})");
    ASSERT_TRUE(read) << "the write held the only network thread";
    EXPECT_THAT(*read, HasSubstr("\"title\":\"t1\""));
    // The writing socket's retrieve waits behind its patch: nothing is answered yet.
    EXPECT_EQ(writer->Receive(200ms), std::nullopt);
    held.reset();  // rolls back, releasing the writer
    auto patched = writer->Receive();
    ASSERT_TRUE(patched);
    EXPECT_THAT(*patched, HasSubstr("\"request_id\":\"p\""));
    EXPECT_THAT(*patched, HasSubstr("\"response_status\":200"));
    auto retrieved = writer->Receive();
    ASSERT_TRUE(retrieved);
    EXPECT_THAT(*retrieved, HasSubstr("\"request_id\":\"r\""));
    EXPECT_THAT(*retrieved, HasSubstr("\"title\":\"new\"")) << "the read ran before the write it followed";
    // And the socket is served as before afterwards.
    auto again = writer->Request(R"({"action": "retrieve", "request_id": "a", "pk": 1})");
    ASSERT_TRUE(again);
    EXPECT_THAT(*again, HasSubstr("\"title\":\"new\""));
}

TEST_P(WriteModesTest, TheWritesOfManySocketsShareOneTransaction) {
    constexpr int kSockets = 12;
    CreatePosts(kSockets);
    std::vector<std::unique_ptr<WsClient>> sockets;
    for (int i = 0; i < kSockets; ++i) {
        sockets.push_back(Connect());
        ASSERT_TRUE(sockets.back());
    }
    const storage::GroupCommitStats before = Sqlite().group_commit();
    const std::uint64_t batched_before = server_->batched_writes().writes;
    std::unique_ptr<storage::Transaction> held = Sqlite().Begin();
    for (int i = 0; i < kSockets; ++i) {
        ASSERT_TRUE(sockets[i]->SendText(R"({"action": "patch", "request_id": )" + std::to_string(i) + R"(, "pk": )" +
                                         std::to_string(i + 1) + R"(, "data": {"title": "w)" + std::to_string(i) +
                                         R"("}})"));
    }
    // With the writes on the network thread at most one (workers 1) would ever wait here.
    ASSERT_TRUE(WaitQueued(kSockets)) << "queued: " << Queued();
    held.reset();
    for (int i = 0; i < kSockets; ++i) {
        auto reply = sockets[i]->Receive();
        ASSERT_TRUE(reply) << "socket " << i;
        EXPECT_THAT(*reply, HasSubstr("\"response_status\":200"));
        EXPECT_THAT(*reply, HasSubstr("\"title\":\"w" + std::to_string(i) + "\""));
    }
    const storage::GroupCommitStats after = Sqlite().group_commit();
    EXPECT_EQ(after.writes - before.writes, static_cast<std::uint64_t>(kSockets));
    // The first write (or the first few, batched) went to the writer alone; the next transaction took every write
    // queued by then.
    EXPECT_LE(after.batches - before.batches, 2u);
    EXPECT_GE(after.largest_batch, static_cast<std::uint64_t>(kSockets / 2));
    // And the mode is the one asked for: the batch writer ran them, or nothing did.
    EXPECT_EQ(server_->batched_writes().writes - batched_before, batched() ? static_cast<std::uint64_t>(kSockets) : 0u);
}

TEST_P(WriteModesTest, AWriteThatFailsInASharedTransactionAnswersItsOwnErrorAndTheOthersCommit) {
    constexpr int kSockets = 6;
    constexpr int kBad = 3;  // its title is not text: a 400 of its own
    CreatePosts(kSockets);
    auto watcher = Connect();
    ASSERT_TRUE(watcher);
    std::vector<std::unique_ptr<WsClient>> sockets;
    for (int i = 0; i < kSockets; ++i) {
        sockets.push_back(Connect());
        ASSERT_TRUE(sockets.back());
    }
    const storage::GroupCommitStats before = Sqlite().group_commit();
    std::unique_ptr<storage::Transaction> held = Sqlite().Begin();
    for (int i = 0; i < kSockets; ++i) {
        const std::string title = i == kBad ? "{\"not\": \"text\"}" : "\"w" + std::to_string(i) + "\"";
        ASSERT_TRUE(sockets[i]->SendText(R"({"action": "patch", "request_id": )" + std::to_string(i) + R"(, "pk": )" +
                                         std::to_string(i + 1) + R"(, "data": {"title": )" + title + "}}"));
    }
    // On the pool the bad write is refused before it queues for the database; batched, its whole request queues.
    ASSERT_TRUE(WaitQueued(batched() ? kSockets : kSockets - 1)) << "queued: " << Queued();
    held.reset();
    for (int i = 0; i < kSockets; ++i) {
        auto reply = sockets[i]->Receive();
        ASSERT_TRUE(reply) << "socket " << i;
        if (i == kBad) {
            EXPECT_THAT(*reply, HasSubstr("\"response_status\":400"));
            EXPECT_THAT(*reply, HasSubstr("\"title\""));
        } else {
            EXPECT_THAT(*reply, HasSubstr("\"response_status\":200"));
            EXPECT_THAT(*reply, HasSubstr("\"title\":\"w" + std::to_string(i) + "\""));
        }
    }
    EXPECT_LE(Sqlite().group_commit().batches - before.batches, 2u) << "the failure split the batch";
    for (int i = 0; i < kSockets; ++i) {
        auto read =
            watcher->Request(R"({"action": "retrieve", "request_id": "r", "pk": )" + std::to_string(i + 1) + "}");
        ASSERT_TRUE(read);
        EXPECT_THAT(*read, HasSubstr(i == kBad ? "\"title\":\"t" + std::to_string(i + 1) + "\""
                                               : "\"title\":\"w" + std::to_string(i) + "\""));
    }
}

TEST_P(WriteModesTest, AMultiplexedStreamGets429PastTheWaitingBytesAndTheRestInOrder) {
    CreatePosts(1);
    auto mux = Connect("/ws/");
    ASSERT_TRUE(mux);
    std::unique_ptr<storage::Transaction> held = Sqlite().Begin();
    ASSERT_TRUE(mux->SendText(
        R"({"stream": "posts", "payload": {"action": "patch", "request_id": "p", "pk": 1, "data": {"title": "m"}}})"));
    ASSERT_TRUE(WaitQueued(1));
    // Each retrieve is about 200 bytes: the first waits (the first always does), the next ones pass the 300 bytes.
    const std::string padding(150, 'x');
    for (const char* id : {"r1", "r2", "r3"}) {
        ASSERT_TRUE(mux->SendText(R"({"stream": "posts", "payload": {"action": "retrieve", "pk": 1, "request_id": ")" +
                                  std::string(id) + padding + "\"}}"));
    }
    for (const char* id : {"r2", "r3"}) {
        auto refused = mux->Receive();
        ASSERT_TRUE(refused) << id;
        EXPECT_THAT(*refused, HasSubstr(std::string("\"request_id\":\"") + id));
        EXPECT_THAT(*refused, HasSubstr("\"response_status\":429"));
        EXPECT_THAT(*refused, HasSubstr("at most 300 bytes"));
    }
    held.reset();
    auto patched = mux->Receive();
    ASSERT_TRUE(patched);
    EXPECT_THAT(*patched, HasSubstr("\"request_id\":\"p\""));
    EXPECT_THAT(*patched, HasSubstr("\"response_status\":200"));
    auto retrieved = mux->Receive();
    ASSERT_TRUE(retrieved);
    EXPECT_THAT(*retrieved, HasSubstr("\"request_id\":\"r1"));
    EXPECT_THAT(*retrieved, HasSubstr("\"title\":\"m\""));
    EXPECT_EQ(mux->Receive(200ms), std::nullopt);
}

// A value of an unlabelled metric in a GET /metrics answer; -1 when absent.
double MetricValue(const std::string& body, const std::string& name) {
    const std::string prefix = "\n" + name + " ";
    const std::size_t at = body.find(prefix);
    if (at == std::string::npos) return -1;
    return std::stod(body.substr(at + prefix.size()));
}

// One write thread (writes on the pool, not batched), one network thread, no bound on waiting frames; pings every
// 200 ms, 1 s to answer.
constexpr const char* kOneWriteThread = R"({
  "database": "lane.db", "listen": {"port": 0}, "workers": 1, "batch_writes": false, "write_threads": 1,
  "max_waiting_request_bytes": 0, "ping_interval_ms": 200, "pong_timeout_ms": 1000,
  "models": {"posts": {"fields": {"id": {"type": "integer", "primary_key": true}, "title": {"type": "text"}}}},
  "routes": {"/ws/posts/": {"model": "posts", "mixins": ["retrieve", "create", "patch"]},
             "/ws/": {"streams": {"posts": "/ws/posts/"}}}})";

class WritePoolTurnsTest : public WriteLaneTest {
protected:
    void SetUp() override { StartFromConfig(kOneWriteThread); }
    bool batched() const override { return false; }

    // Waits until the server has read `frames` frames in all and `queued` writes wait for the write pool's thread.
    // With one network thread, a /metrics answer comes after every frame counted before it was handled.
    bool WaitFramesAndQueuedWrites(double frames, double queued) {
        const auto deadline = std::chrono::steady_clock::now() + test_support::kServerWait;
        for (;;) {
            const std::string body = test_support::HttpGet("127.0.0.1", server_->port(), "/metrics").body;
            if (MetricValue(body, "syncline_frames_received_total") >= frames &&
                MetricValue(body, "syncline_writes_queued") == queued) {
                return true;
            }
            if (std::chrono::steady_clock::now() > deadline) return false;
            std::this_thread::sleep_for(5ms);  // polls an HTTP endpoint with a deadline; nothing to wait on
        }
    }
};

TEST_F(WritePoolTurnsTest, AStreamServingItsWaitingFramesGivesThePoolThreadToAnotherSocketEvery64Frames) {
    CreatePosts(2);  // 2 frames read
    auto mux = Connect("/ws/");
    auto other = Connect();
    ASSERT_TRUE(mux && other);
    std::unique_ptr<storage::Transaction> held = Sqlite().Begin();
    // The stream's write takes the one write thread and waits for the writer; its 300 reads wait behind it.
    ASSERT_TRUE(mux->SendText(
        R"({"stream": "posts", "payload": {"action": "patch", "request_id": "p", "pk": 2, "data": {"title": "a"}}})"));
    ASSERT_TRUE(WaitQueued(1));
    constexpr int kReads = 300;
    for (int i = 0; i < kReads; ++i) {
        ASSERT_TRUE(mux->SendText(R"({"stream": "posts", "payload": {"action": "retrieve", "pk": 1, "request_id": )" +
                                  std::to_string(i) + "}}"));
    }
    // Another socket's write waits for the thread.
    ASSERT_TRUE(other->SendText(R"({"action": "patch", "request_id": "o", "pk": 1, "data": {"title": "B"}})"));
    ASSERT_TRUE(WaitFramesAndQueuedWrites(2 + 1 + kReads + 1, 1));
    held.reset();
    auto patched = mux->Receive();
    ASSERT_TRUE(patched);
    EXPECT_THAT(*patched, HasSubstr("\"request_id\":\"p\""));
    // The first 64 waiting reads are served before the other socket's write, later ones after it.
    std::vector<std::string> reads;
    for (int i = 0; i < kReads; ++i) {
        auto reply = mux->Receive();
        ASSERT_TRUE(reply) << "read " << i;
        EXPECT_THAT(*reply, HasSubstr("\"request_id\":" + std::to_string(i) + "}")) << "out of order";
        reads.push_back(*reply);
    }
    for (int i = 0; i < 64; ++i) EXPECT_THAT(reads[i], HasSubstr("\"title\":\"t1\"")) << "read " << i;
    EXPECT_THAT(reads.back(), HasSubstr("\"title\":\"B\""))
        << "the other socket's write waited for all of the stream's reads";
    auto other_reply = other->Receive();
    ASSERT_TRUE(other_reply);
    EXPECT_THAT(*other_reply, HasSubstr("\"response_status\":200"));
}

TEST_F(WritePoolTurnsTest, ASocketWaitingForItsWriteLongerThanThePongTimeoutStaysOpen) {
    CreatePosts(1);
    auto writer = Connect();
    ASSERT_TRUE(writer);
    std::unique_ptr<storage::Transaction> held = Sqlite().Begin();
    ASSERT_TRUE(writer->SendText(R"({"action": "patch", "request_id": "p", "pk": 1, "data": {"title": "late"}})"));
    ASSERT_TRUE(WaitQueued(1));
    // Three pong timeouts: the socket is not read meanwhile, so its pongs wait unread.
    EXPECT_EQ(writer->WaitClosed(3000ms), std::nullopt) << "closed: " << writer->close_reason();
    held.reset();
    auto patched = writer->Receive();
    ASSERT_TRUE(patched) << "closed: " << writer->close_reason();
    EXPECT_THAT(*patched, HasSubstr("\"title\":\"late\""));
    // Read again: pongs are seen, the socket stays open past more pong timeouts.
    EXPECT_EQ(writer->WaitClosed(2000ms), std::nullopt) << "closed: " << writer->close_reason();
    auto read = writer->Request(R"({"action": "retrieve", "request_id": "r", "pk": 1})");
    ASSERT_TRUE(read);
    EXPECT_THAT(*read, HasSubstr("\"title\":\"late\""));
}

}  // namespace
}  // namespace syncline
