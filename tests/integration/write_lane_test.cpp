// Writes off the network threads (issue 13, SerialRequests and `write_threads`), over real sockets on SQLite: while
// the database's writer is held, a socket's pipelined requests wait behind its write and are answered in order, other
// sockets are still served by the one network thread, the writes of many sockets meet in one transaction, and a
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

class WriteLaneTest : public test_support::ServerTest {
protected:
    void SetUp() override { StartFromConfig(kConfig); }

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

    // Waits until `count` one-shot writes are queued for the writer (the test holds it).
    bool WaitQueued(std::size_t count) {
        const auto deadline = std::chrono::steady_clock::now() + test_support::kServerWait;
        while (Sqlite().group_commit().queued < count) {
            if (std::chrono::steady_clock::now() > deadline) return false;
            std::this_thread::sleep_for(2ms);  // polls a counter with a deadline; nothing to wait on
        }
        return true;
    }
};

TEST_F(WriteLaneTest, ASocketsRequestsWaitBehindItsWriteInOrderWhileOtherSocketsAreServed) {
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

TEST_F(WriteLaneTest, TheWritesOfManySocketsShareOneTransaction) {
    constexpr int kSockets = 12;
    CreatePosts(kSockets);
    std::vector<std::unique_ptr<WsClient>> sockets;
    for (int i = 0; i < kSockets; ++i) {
        sockets.push_back(Connect());
        ASSERT_TRUE(sockets.back());
    }
    const storage::GroupCommitStats before = Sqlite().group_commit();
    std::unique_ptr<storage::Transaction> held = Sqlite().Begin();
    for (int i = 0; i < kSockets; ++i) {
        ASSERT_TRUE(sockets[i]->SendText(R"({"action": "patch", "request_id": )" + std::to_string(i) + R"(, "pk": )" +
                                         std::to_string(i + 1) + R"(, "data": {"title": "w)" + std::to_string(i) +
                                         R"("}})"));
    }
    // With the writes on the network thread at most one (workers 1) would ever wait here.
    ASSERT_TRUE(WaitQueued(kSockets)) << "queued: " << Sqlite().group_commit().queued;
    held.reset();
    for (int i = 0; i < kSockets; ++i) {
        auto reply = sockets[i]->Receive();
        ASSERT_TRUE(reply) << "socket " << i;
        EXPECT_THAT(*reply, HasSubstr("\"response_status\":200"));
        EXPECT_THAT(*reply, HasSubstr("\"title\":\"w" + std::to_string(i) + "\""));
    }
    const storage::GroupCommitStats after = Sqlite().group_commit();
    EXPECT_EQ(after.writes - before.writes, static_cast<std::uint64_t>(kSockets));
    // The first write to queue leads; it took every write queued by then into its transaction.
    EXPECT_LE(after.batches - before.batches, 2u);
    EXPECT_GE(after.largest_batch, static_cast<std::uint64_t>(kSockets - 1));
}

TEST_F(WriteLaneTest, AMultiplexedStreamGets429PastTheWaitingBytesAndTheRestInOrder) {
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

}  // namespace
}  // namespace syncline
