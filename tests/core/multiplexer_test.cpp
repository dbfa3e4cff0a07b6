// The multiplexer (docs/protocol.md §9) with fake child endpoints and a fake socket: wrapping of replies and pushes,
// the error frames, admission, the push gate across streams, and OnClose. The same behaviour runs over real sockets in
// tests/integration/multiplex_routed_test.cpp.

#include <syncline/core/protocol/multiplexer.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <mutex>

#include "recording_outbox.hpp"

namespace syncline {
namespace {

using ::testing::ElementsAre;

// The socket: records replies, pushes (with their keys), closes.
using SocketOutbox = testing::RecordingOutbox;

// A child stream: records what it gets; answers `{"echo":<frame>}`; `on_text` may do more (push, close).
struct FakeChild {
    std::vector<std::string> texts;
    int closes = 0;
    int opens = 0;
    int admits = 0;
    std::shared_ptr<Outbox> outbox;
    std::function<void(Outbox&, std::string_view)> on_text;
};

class FakeSession final : public Session {
public:
    explicit FakeSession(FakeChild& child) : child_(child) {}
    void OnText(std::string_view frame) override {
        child_.texts.emplace_back(frame);
        if (child_.on_text) child_.on_text(*child_.outbox, frame);
        child_.outbox->Send("{\"echo\":" + std::string(frame) + "}");
    }
    void OnBinary(std::string_view frame) override { (void)frame; }
    void OnClose() override { ++child_.closes; }

private:
    FakeChild& child_;
};

class FakeEndpoint final : public Endpoint {
public:
    FakeEndpoint(FakeChild& child, int status) : child_(child), status_(status) {}
    int Admit(const HandshakeRequest& request) override {
        (void)request;
        ++child_.admits;
        return status_;
    }
    std::unique_ptr<Session> Open(const HandshakeRequest& request, std::shared_ptr<Outbox> outbox) override {
        (void)request;
        ++child_.opens;
        child_.outbox = std::move(outbox);
        return std::make_unique<FakeSession>(child_);
    }

private:
    FakeChild& child_;
    int status_;
};

class MultiplexerTest : public ::testing::Test {
protected:
    std::unique_ptr<Session> OpenMux(int posts_status = 101, int comments_status = 101) {
        mux_ = std::make_shared<Multiplexer>(std::vector<Multiplexer::Stream>{
            {"posts", std::make_shared<FakeEndpoint>(posts_, posts_status)},
            {"comments", std::make_shared<FakeEndpoint>(comments_, comments_status)}});
        admit_status_ = mux_->Admit(request_);
        return mux_->Open(request_, socket_);
    }
    std::string Last() const { return socket_->frames.empty() ? "" : socket_->frames.back(); }

    HandshakeRequest request_{"/ws/", "", {}, "127.0.0.1:1"};
    FakeChild posts_;
    FakeChild comments_;
    std::shared_ptr<SocketOutbox> socket_ = std::make_shared<SocketOutbox>(1234);
    std::shared_ptr<Multiplexer> mux_;
    int admit_status_ = 0;
};

TEST_F(MultiplexerTest, PayloadGoesToItsStreamAndRepliesComeBackWrapped) {
    auto session = OpenMux();
    EXPECT_EQ(admit_status_, 101);
    session->OnText(R"({"stream": "posts", "payload": {"action": "list", "request_id": 1}})");
    session->OnText(R"({"payload": {"action": "retrieve", "pk": 2, "data": {"t": "Grüße"}}, "stream": "comments"})");
    EXPECT_THAT(posts_.texts, ElementsAre(R"({"action":"list","request_id":1})"));
    EXPECT_THAT(comments_.texts, ElementsAre(R"({"action":"retrieve","pk":2,"data":{"t":"Grüße"}})"));
    EXPECT_THAT(socket_->frames,
                ElementsAre(R"({"stream":"posts","payload":{"echo":{"action":"list","request_id":1}}})",
                            R"({"stream":"comments","payload":{"echo":{"action":"retrieve","pk":2,)"
                            R"("data":{"t":"Grüße"}}}})"));
}

TEST_F(MultiplexerTest, PushesAreWrappedKeepTheirKeyPerStreamAndWaitForTheReply) {
    auto session = OpenMux();
    // A push from another thread between requests goes out at once, wrapped, its key prefixed with the stream.
    posts_.outbox->SendPush(R"({"action":"update","request_id":"s"})", "k1");
    EXPECT_EQ(Last(), R"({"stream":"posts","payload":{"action":"update","request_id":"s"}})");
    EXPECT_THAT(socket_->push_keys, ElementsAre("posts\nk1"));
    // A push caused while answering a frame on another stream waits until that frame's reply is queued; two pushes
    // with one key meanwhile coalesce into the newer.
    comments_.on_text = [&](Outbox&, std::string_view) {
        posts_.outbox->SendPush(R"({"v":1})", "k2");
        posts_.outbox->SendPush(R"({"v":2})", "k2");
    };
    session->OnText(R"({"stream": "comments", "payload": {"action": "patch"}})");
    ASSERT_EQ(socket_->frames.size(), 3u);
    EXPECT_EQ(socket_->frames[1], R"({"stream":"comments","payload":{"echo":{"action":"patch"}}})");
    EXPECT_EQ(socket_->frames[2], R"({"stream":"posts","payload":{"v":2}})");
    EXPECT_THAT(socket_->push_keys, ElementsAre("posts\nk1", "posts\nk2"));
}

TEST_F(MultiplexerTest, BadFramesAnswerAnErrorFrameAndTheSessionGoesOn) {
    auto session = OpenMux();
    struct Case {
        std::string frame;
        std::string reply;
    };
    const std::vector<Case> cases = {
        {R"({"stream": "nope", "payload": {"action": "list", "request_id": 5}})",
         R"({"stream":"nope","payload":{"errors":["Unknown stream \"nope\"."],"data":null,"action":"list",)"
         R"("response_status":400,"request_id":5}})"},
        {R"({"stream": 7, "payload": {}})",
         R"({"stream":7,"payload":{"errors":["Unknown stream 7."],"data":null,"action":null,)"
         R"("response_status":400,"request_id":null}})"},
        {R"({"payload": {"action": "list"}})",
         R"({"stream":null,"payload":{"errors":["A multiplexed message needs \"stream\" and \"payload\"."],)"
         R"("data":null,"action":null,"response_status":400,"request_id":null}})"},
        {R"({"stream": "posts"})",
         R"({"stream":"posts","payload":{"errors":["A multiplexed message needs \"stream\" and \"payload\"."],)"
         R"("data":null,"action":null,"response_status":400,"request_id":null}})"},
        {R"({"stream": "posts", "payload": "list"})",
         R"({"stream":"posts","payload":{"errors":["Malformed message: expected a JSON object as payload, got str"],)"
         R"("data":null,"action":null,"response_status":400,"request_id":null}})"},
        {R"({"stream": "posts", "payload": null})",
         R"({"stream":"posts","payload":{"errors":["Malformed message: expected a JSON object as payload, got )"
         R"(NoneType"],"data":null,"action":null,"response_status":400,"request_id":null}})"},
        {"{oops",
         R"x({"stream":null,"payload":{"errors":["Malformed message: Missing a name for object member. (at offset )x"
         R"x(1)"],"data":null,"action":null,"response_status":400,"request_id":null}})x"},
        {"[1]",
         R"({"stream":null,"payload":{"errors":["Malformed message: expected a JSON object, got list"],"data":null,)"
         R"("action":null,"response_status":400,"request_id":null}})"},
        {"",
         R"({"stream":null,"payload":{"errors":["Malformed message: empty frame"],"data":null,"action":null,)"
         R"("response_status":400,"request_id":null}})"},
    };
    for (const auto& c : cases) {
        session->OnText(c.frame);
        EXPECT_EQ(Last(), c.reply) << c.frame;
    }
    session->OnBinary(std::string("\x00\x01", 2));
    EXPECT_EQ(Last(), R"({"stream":null,"payload":{"errors":["Malformed message: binary frames are not supported"],)"
                      R"("data":null,"action":null,"response_status":400,"request_id":null}})");
    EXPECT_TRUE(posts_.texts.empty());
    EXPECT_TRUE(comments_.texts.empty());
    EXPECT_EQ(socket_->close_code, 0);
    session->OnText(R"({"stream": "posts", "payload": {"action": "list"}})");
    EXPECT_EQ(Last(), R"({"stream":"posts","payload":{"echo":{"action":"list"}}})");
}

TEST_F(MultiplexerTest, AStreamWhoseChildRefusedAnswers403AndIsNeverOpened) {
    auto session = OpenMux(101, 403);
    EXPECT_EQ(admit_status_, 101);
    EXPECT_EQ(comments_.opens, 0);
    EXPECT_EQ(posts_.opens, 1);
    session->OnText(R"({"stream": "comments", "payload": {"action": "list", "request_id": "r"}})");
    EXPECT_EQ(Last(), R"({"stream":"comments","payload":{"errors":["You do not have permission to perform this )"
                      R"(action."],"data":null,"action":"list","response_status":403,"request_id":"r"}})");
    session->OnText(R"({"stream": "posts", "payload": {"action": "list"}})");
    EXPECT_EQ(Last(), R"({"stream":"posts","payload":{"echo":{"action":"list"}}})");
    session->OnClose();
    EXPECT_EQ(posts_.closes, 1);
    EXPECT_EQ(comments_.closes, 0);
}

TEST_F(MultiplexerTest, RefusedByEveryChildIsRefusedWithTheFirstStatus) {
    mux_ = std::make_shared<Multiplexer>(std::vector<Multiplexer::Stream>{
        {"posts", std::make_shared<FakeEndpoint>(posts_, 401)},
        {"comments", std::make_shared<FakeEndpoint>(comments_, 403)}});
    EXPECT_EQ(mux_->Admit(request_), 401);
    EXPECT_EQ(posts_.admits, 1);
    EXPECT_EQ(comments_.admits, 1);
}

TEST_F(MultiplexerTest, OnCloseReachesEveryChildOnceAndCloseClosesTheSocket) {
    auto session = OpenMux();
    posts_.outbox->Close(1008, "enough");
    EXPECT_EQ(socket_->close_code, 1008);
    EXPECT_EQ(socket_->close_reason, "enough");
    EXPECT_EQ(comments_.outbox->BufferedBytes(), 1234u);
    session->OnClose();
    EXPECT_EQ(posts_.closes, 1);
    EXPECT_EQ(comments_.closes, 1);
}

TEST_F(MultiplexerTest, InvalidStreamTablesAreRefused) {
    auto child = std::make_shared<FakeEndpoint>(posts_, 101);
    using Streams = std::vector<Multiplexer::Stream>;
    EXPECT_THROW(Multiplexer(Streams{}), std::invalid_argument);
    EXPECT_THROW(Multiplexer(Streams{{"", child}}), std::invalid_argument);
    EXPECT_THROW(Multiplexer(Streams{{"a", nullptr}}), std::invalid_argument);
    EXPECT_THROW(Multiplexer(Streams{{"a", child}, {"a", child}}), std::invalid_argument);
}

}  // namespace
}  // namespace syncline
