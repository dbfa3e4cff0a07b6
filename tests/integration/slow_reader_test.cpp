// A client that stops reading while its subscribed row changes 100,000 times: the server's memory stays bounded
// (queued pushes of a row are replaced by the newest), and when the client reads again the last frame carries the
// final state; or, past the slow-reader timeout, the socket is closed with 1013.

#include <syncline/storage/database.hpp>
#include <syncline/test_support/serve_process.hpp>

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <sstream>

#include "../storage/test_db.hpp"
#include "raw_ws.hpp"

namespace syncline {
namespace {

using test_support::RssKiB;

class SlowReaderTest : public ::testing::Test {
protected:
    void StartServer(std::int64_t slow_reader_timeout_ms, std::int64_t max_queue_bytes = 1048576) {
        std::ostringstream json;
        json << R"({"database": "blog.db", "workers": 2, "ping_interval_ms": 0,
            "max_subscriptions_per_socket": 5000,
            "max_queue_bytes": )" << max_queue_bytes << R"(,
            "slow_reader_timeout_ms": )" << slow_reader_timeout_ms << R"(,
            "models": {"posts": {"fields": {
              "id": {"type": "integer", "primary_key": true}, "title": {"type": "text", "max_length": 100},
              "body": {"type": "text", "blank": true, "default": ""},
              "author": {"type": "text", "max_length": 50, "blank": true, "default": ""},
              "likes": {"type": "integer", "null": true}, "public": {"type": "boolean", "default": false}}},
              "tags": {"fields": {"slug": {"type": "text", "primary_key": true}, "label": {"type": "text", "unique": true}}}},
            "routes": {"/ws/posts/": {"model": "posts", "mixins": ["observe_instance"]}}})";
        const std::string config = test_support::WriteConfig(dir_, json.str());
        db_ = testing::OpenBlog(dir_.File("blog.db"));
        db_->Insert("posts", {{"title", "watched"}});
        server_ = std::make_unique<test_support::ServeProcess>(config, dir_.File("server.log"));
        port_ = server_->port();
        ASSERT_TRUE(server_->WaitHealthy()) << server_->Output();
    }
    // Subscribes through a socket that then reads nothing until told to.
    testing::RawWebSocket Subscribe() {
        auto ws = testing::RawWebSocket::Open(port_, "/ws/posts/");
        EXPECT_TRUE(ws);
        EXPECT_TRUE(ws->SendText(R"({"action": "subscribe_instance", "pk": 1, "request_id": "slow"})"));
        auto reply = ws->ReadFrame(std::chrono::seconds(10));
        EXPECT_TRUE(reply && reply->second.find("\"response_status\":201") != std::string::npos);
        return std::move(*ws);
    }
    // 100,000 committed changes of row 1, each its own transaction, with a 1 KiB body so that unbounded queuing would
    // cost over 100 MB.
    void Change100000Times() {
        std::string padding(1024, 'x');
        for (int i = 0; i < 100000; ++i) {
            db_->Patch("posts", Value(1), {{"body", padding + std::to_string(i)}, {"likes", i}});
        }
    }
    testing::TempDir dir_;
    std::unique_ptr<storage::Database> db_;
    std::uint16_t port_ = 0;
    std::unique_ptr<test_support::ServeProcess> server_;
};

TEST_F(SlowReaderTest, MemoryStaysBoundedAndTheLastFrameCarriesTheFinalState) {
    StartServer(600000);  // never closed here: this test is about replacement
    testing::RawWebSocket ws = Subscribe();
    long rss_before = RssKiB(server_->pid());
    Change100000Times();
    long rss_after = RssKiB(server_->pid());
    // 100,000 pushes of ~1.2 KB would be ~120 MB if queued; the bound is the queue limit plus coalesced pushes.
    // (Not under AddressSanitizer: its quarantine keeps freed memory resident, so RSS follows allocation churn.)
#if !defined(__SANITIZE_ADDRESS__)
    EXPECT_LT(rss_after - rss_before, 64 * 1024) << "server grew from " << rss_before << " to " << rss_after << " KiB";
#endif
    // Read again: frames come in version order, and the newest one carries the final state.
    std::int64_t last_version = 0;
    std::int64_t last_likes = -1;
    int frames = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (last_likes != 99999 && std::chrono::steady_clock::now() < deadline) {
        auto frame = ws.ReadFrame(std::chrono::seconds(10));
        ASSERT_TRUE(frame) << "the socket ended after " << frames << " frames";
        ASSERT_EQ(frame->first, 1) << "not a text frame";
        rapidjson::Document d;
        d.Parse(frame->second.c_str());
        ASSERT_TRUE(d.IsObject());
        std::int64_t version = d["version"].GetInt64();
        EXPECT_GT(version, last_version);
        last_version = version;
        last_likes = d["data"]["likes"].GetInt64();
        ++frames;
    }
    EXPECT_EQ(last_likes, 99999);
    EXPECT_LT(frames, 100000) << "nothing was coalesced";
    std::printf("slow reader: %d frames for 100000 changes, server RSS %ld -> %ld KiB\n", frames, rss_before,
                rss_after);
}

TEST_F(SlowReaderTest, AReaderStuckOverTheLimitIsClosedWith1013) {
    // One row's pushes replace each other, so a single subscription never stays over the limit. 2,000 rows with
    // 4 KiB each do: ~8 MB of distinct latest states per round, more than the kernel's socket buffers absorb,
    // against a 64 KiB limit.
    StartServer(200, 65536);
    constexpr int kRows = 2000;
    {
        auto tx = db_->Begin();
        for (int i = 1; i < kRows; ++i) tx->Insert("posts", {{"title", "row"}});
        tx->Commit();
    }
    auto ws = testing::RawWebSocket::Open(port_, "/ws/posts/");
    ASSERT_TRUE(ws);
    for (int pk = 1; pk <= kRows; ++pk) {
        ASSERT_TRUE(ws->SendText(R"({"action": "subscribe_instance", "request_id": "r", "pk": )" + std::to_string(pk) + "}"));
        // The server may still be relaying the inserts above: pushes for rows already subscribed can come first.
        std::optional<std::pair<int, std::string>> reply;
        do {
            reply = ws->ReadFrame(std::chrono::seconds(10));
        } while (reply && reply->second.find("\"action\":\"subscribe_instance\"") == std::string::npos);
        ASSERT_TRUE(reply && reply->second.find("\"response_status\":201") != std::string::npos)
            << "pk " << pk << ": " << (reply ? reply->second : "nothing");
    }
    std::string padding(4096, 'x');
    for (int round = 0; round < 3; ++round) {
        auto tx = db_->Begin();
        for (int pk = 1; pk <= kRows; ++pk) {
            tx->Patch("posts", Value(pk), {{"body", padding + std::to_string(round)}});
        }
        tx->Commit();
    }
    // The reader stays stuck until the server gives up on it (it logs one line); a slow build may take a while to
    // produce the pushes, so wait for that event rather than for a fixed time.
    auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (server_->Output().find("closing a slow reader with 1013") == std::string::npos &&
           std::chrono::steady_clock::now() < give_up) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling a log file; no event to block on
    }
    // Read until the close frame (opcode 8): its code is 1013.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    std::optional<int> close_code;
    int frames = 0;
    while (!close_code && std::chrono::steady_clock::now() < deadline) {
        auto frame = ws->ReadFrame(std::chrono::seconds(10));
        ASSERT_TRUE(frame) << "no close frame after " << frames << " frames; server log: " << server_->Output();
        ++frames;
        if (frame->first == 8 && frame->second.size() >= 2) {
            close_code = (static_cast<unsigned char>(frame->second[0]) << 8) | static_cast<unsigned char>(frame->second[1]);
        }
    }
    EXPECT_EQ(close_code, 1013);
    EXPECT_FALSE(server_->Wait(std::chrono::milliseconds(0))) << "the server died";
}

}  // namespace
}  // namespace syncline
