// docs/protocol.md §5 streamed lists and list_cancel, and custom and detached actions, over real websockets against an
// in-process server: the streamed route comes from the JSON config ("pagination": "streamed"), the custom actions
// from C++ (CustomAction) on routes added to the same server.

#include <syncline/config/config.hpp>
#include <syncline/core/consumer/permissions.hpp>
#include <syncline/core/consumer/subscriptions.hpp>
#include <syncline/observer/observer.hpp>
#include <syncline/test_support/same_json.hpp>
#include <syncline/test_support/server_fixture.hpp>
#include <syncline/test_support/ws_client.hpp>
#include <syncline/transport/server.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "../storage/test_db.hpp"
#include "raw_ws.hpp"

namespace syncline {
namespace {

using test_support::WsClient;
using ::testing::HasSubstr;
constexpr auto kDeadline = std::chrono::seconds(20);

constexpr const char* kConfig = R"({
  "database": "blog.db", "listen": {"port": 0}, "workers": 2, "action_threads": 2,
  "models": {
    "posts": {"fields": {
      "id": {"type": "integer", "primary_key": true}, "title": {"type": "text", "max_length": 100},
      "body": {"type": "text", "blank": true, "default": ""},
      "author": {"type": "text", "max_length": 50, "blank": true, "default": ""}}},
    "notes": {"fields": {"id": {"type": "integer", "primary_key": true}, "text": {"type": "text", "blank": true}}}},
  "routes": {
    "/ws/posts/": {"model": "posts", "fields": ["id", "author"], "pagination": "streamed", "page_size": 2,
                   "max_page_size": 3, "filter_fields": ["author"], "ordering_fields": ["id", "author"],
                   "mixins": ["retrieve", "create", "observe_instance"]},
    "/ws/notes/": {"model": "notes", "pagination": "streamed", "mixins": ["retrieve"]}}})";

struct Frame {
    rapidjson::Document doc;
    std::string text;
    bool ok() const { return doc.IsObject(); }
    int status() const { return ok() ? doc["response_status"].GetInt() : -1; }
    std::string action() const { return ok() && doc["action"].IsString() ? doc["action"].GetString() : ""; }
    std::string request_id() const { return ok() && doc["request_id"].IsString() ? doc["request_id"].GetString() : ""; }
    const rapidjson::Value& data() const { return doc["data"]; }
};

Frame Next(WsClient& ws) {
    Frame f;
    if (auto text = ws.Receive(kDeadline)) {
        f.text = *text;
        f.doc.Parse(text->c_str());
    }
    return f;
}

using test_support::SameJson;

// Whether a list page is the last of its stream (the rows ran out).
bool LastPage(const Frame& f) {
    const auto& d = f.data();
    auto got = static_cast<std::int64_t>(d["results"].Size());
    return got < d["limit"].GetInt64() || d["offset"].GetInt64() + got >= d["count"].GetInt64();
}

// Reads the frames of one stream (nothing else may arrive meanwhile) until its last page.
std::vector<Frame> ReadStream(WsClient& ws) {
    std::vector<Frame> frames;
    for (;;) {
        Frame f = Next(ws);
        if (!f.ok() || f.action() != "list" || f.status() != 200) {
            ADD_FAILURE() << "not a list page: " << f.text;
            return frames;
        }
        bool last = LastPage(f);
        frames.push_back(std::move(f));
        if (last) return frames;
    }
}

// What the custom actions report to the test, and the latch that holds "hold" back.
struct Probe {
    std::mutex mutex;
    std::condition_variable cv;
    bool open = false;
    std::vector<std::string> started;    // request_ids of "hold" calls that ran
    std::vector<std::string> cancelled;  // request_ids of "hold" calls that saw cancelled()
    transport::Server* server = nullptr;

    void Open() {
        {
            std::lock_guard<std::mutex> lock(mutex);
            open = true;
        }
        cv.notify_all();
    }
    template <class Pred>
    bool WaitFor(Pred pred) {
        std::unique_lock<std::mutex> lock(mutex);
        return cv.wait_for(lock, kDeadline, pred);
    }
};

std::string IdOf(const ActionRequest& r) {
    return r.request_id() && r.request_id()->IsString() ? r.request_id()->GetString() : "";
}

class DenyAll final : public Permission {
public:
    bool HasPermission(const ActionRequest&, const GenericConsumer&) const override { return false; }
};

// A consumer of posts with custom actions declared in C++.
std::shared_ptr<GenericConsumer> CustomConsumer(const std::shared_ptr<Probe>& probe, bool deny) {
    ConsumerOptions o;
    o.model = "posts";
    o.serializer.fields = {"id", "title", "body"};
    if (deny) o.permissions = {std::make_shared<DenyAll>()};
    o.mixins = {ObserverModelInstanceMixin()};
    o.mixins.push_back(Mixin{{
        // Needs its row; writes it.
        CustomAction("publish",
                     [](GenericConsumer& c, ActionRequest& r) {
                         const Value& pk = r.object().at(c.schema().pk_index());
                         auto row = c.store().Patch("posts", pk, {{"body", "published"}});
                         return ActionResult::Ok(200, c.Represent(*row));
                     })
            .NeedsObject()
            .Writes(),
        CustomAction(
            "explode",
            [](GenericConsumer&, ActionRequest&) -> ActionResult { throw std::runtime_error("custom action failed"); }),
        CustomAction("explode_later",
                     [](GenericConsumer&, ActionRequest&) -> ActionResult {
                         throw std::runtime_error("detached custom action failed");
                     })
            .Detached(),
        // Waits for the test's latch, polling cancelled() as a long detached action should.
        CustomAction("hold",
                     [probe](GenericConsumer&, ActionRequest& r) {
                         std::unique_lock<std::mutex> lock(probe->mutex);
                         probe->started.push_back(IdOf(r));
                         probe->cv.notify_all();
                         while (!probe->open) {
                             if (r.cancelled()) {
                                 probe->cancelled.push_back(IdOf(r));
                                 probe->cv.notify_all();
                                 return ActionResult::Ok(200, "\"cancelled\"");
                             }
                             probe->cv.wait_for(lock, std::chrono::milliseconds(2));
                         }
                         return ActionResult::Ok(200, "\"held\"");
                     })
            .Detached(),
        // A detached writer that returns only once its change has been handed to the subscribers' sockets (the relay
        // published it): its reply must still come first.
        CustomAction("slow_publish",
                     [probe](GenericConsumer& c, ActionRequest& r) {
                         const Value& pk = r.object().at(c.schema().pk_index());
                         const rapidjson::Value* body = r.Arg("body");
                         if (!body || !body->IsString()) return ActionResult::Message(400, "body must be a string.");
                         auto row = c.store().Patch("posts", pk, {{"body", std::string(body->GetString())}});
                         std::int64_t version = c.store().RowVersion("posts", pk);
                         test_support::WaitRelayed(*probe->server, version, kDeadline);
                         return ActionResult::Ok(200, c.Represent(*row));
                     })
            .NeedsObject()
            .Writes()
            .Detached(),
    }});
    return std::make_shared<GenericConsumer>(o);
}

// Every test runs on both engines (ActionsStreamTest.X/Sqlite, .../Postgres).
class ActionsStreamTest : public test_support::ServerTest, public ::testing::WithParamInterface<test_support::Engine> {
protected:
    void SetUp() override {
        if (!UseEngine(GetParam())) GTEST_SKIP() << test_support::kPgSkipReason;
        BuildFromConfig(kConfig);
        probe_->server = server_.get();
        server_->Route("/ws/custom/", CustomConsumer(probe_, false));
        server_->Route("/ws/denied/", CustomConsumer(probe_, true));
        server_->Start();
        for (const char* author : {"alice", "bob", "alice", "carol", "alice"}) {
            server_->database().Insert("posts", {{"title", std::string("by ") + author}, {"author", author}});
        }
        WaitRelayed(5);
    }
    void TearDown() override { probe_->Open(); }
    // The relay has published every change so far, so none is pushed to a later subscriber.
    void WaitRelayed(std::int64_t seq) {
        ServerTest::WaitRelayed(seq, kDeadline);
        ASSERT_GE(server_->relayed_seq(), seq);
    }
    void InsertNotes(int count, std::size_t text_bytes) {
        auto tx = server_->database().Begin();
        for (int i = 0; i < count; ++i) tx->Insert("notes", {{"text", std::string(text_bytes, 'n')}});
        tx->Commit();
    }
    bool WaitExecutorIdle() {
        auto deadline = std::chrono::steady_clock::now() + kDeadline;
        while (server_->executor().busy() > 0) {
            if (std::chrono::steady_clock::now() > deadline) return false;
            std::this_thread::yield();
        }
        return true;
    }
    // Nothing else is pending on the socket: a marker's reply is the very next frame.
    static void ExpectNothingPending(WsClient& ws) {
        ASSERT_TRUE(ws.SendText(R"({"action": "marker", "request_id": "marker"})"));
        Frame f = Next(ws);
        EXPECT_EQ(f.request_id(), "marker") << "unexpected frame: " << f.text;
    }
    std::shared_ptr<Probe> probe_ = std::make_shared<Probe>();
};

TEST_P(ActionsStreamTest, StreamedListSendsOneFramePerPageWithTheSameRequestId) {
    auto ws = Connect("/ws/posts/");
    ASSERT_TRUE(ws->SendText(R"({"action": "list", "request_id": "s"})"));
    std::vector<Frame> pages = ReadStream(*ws);
    ASSERT_EQ(pages.size(), 3u);
    EXPECT_TRUE(SameJson(pages[0].text, R"({"errors": [], "data": {"count": 5, "results": [{"id": 1, "author": "alice"},
        {"id": 2, "author": "bob"}], "limit": 2, "offset": 0}, "action": "list", "response_status": 200,
        "request_id": "s"})"));
    EXPECT_TRUE(SameJson(pages[1].text, R"({"errors": [], "data": {"count": 5, "results": [{"id": 3, "author": "alice"},
        {"id": 4, "author": "carol"}], "limit": 2, "offset": 2}, "action": "list", "response_status": 200,
        "request_id": "s"})"));
    EXPECT_TRUE(SameJson(pages[2].text, R"({"errors": [], "data": {"count": 5,
        "results": [{"id": 5, "author": "alice"}], "limit": 2, "offset": 4}, "action": "list", "response_status": 200,
        "request_id": "s"})"));
    ExpectNothingPending(*ws);

    // From an offset, and past the end (one frame, no rows).
    ASSERT_TRUE(ws->SendText(R"({"action": "list", "request_id": "o", "limit": 3, "offset": 1})"));
    pages = ReadStream(*ws);
    ASSERT_EQ(pages.size(), 2u);
    EXPECT_THAT(pages[0].text, HasSubstr(R"("results":[{"id":2,"author":"bob"},{"id":3,"author":"alice"},)"
                                         R"({"id":4,"author":"carol"}],"limit":3,"offset":1})"));
    EXPECT_THAT(pages[1].text, HasSubstr(R"("results":[{"id":5,"author":"alice"}],"limit":3,"offset":4})"));
    EXPECT_TRUE(SameJson(ws->Request(R"({"action": "list", "request_id": 7, "offset": 10})").value_or(""),
                         R"({"errors": [], "data": {"count": 5, "results": [], "limit": 2, "offset": 10},
                             "action": "list", "response_status": 200, "request_id": 7})"));
    ExpectNothingPending(*ws);
}

TEST_P(ActionsStreamTest, AnEmptyTableStreamsOneFrameWithCountZero) {
    auto ws = Connect("/ws/notes/");
    EXPECT_TRUE(SameJson(ws->Request(R"({"action": "list", "request_id": {"n": 1}})").value_or(""),
                         R"({"errors": [], "data": {"count": 0, "results": [], "limit": 10, "offset": 0},
                             "action": "list", "response_status": 200, "request_id": {"n": 1}})"));
    ExpectNothingPending(*ws);
}

TEST_P(ActionsStreamTest, FilterOrderingAndBadArguments) {
    auto ws = Connect("/ws/posts/");
    ASSERT_TRUE(
        ws->SendText(R"({"action": "list", "request_id": "f", "filter": {"author": "alice"}, "ordering": "-id"})"));
    std::vector<Frame> pages = ReadStream(*ws);
    ASSERT_EQ(pages.size(), 2u);
    EXPECT_THAT(pages[0].text, HasSubstr(R"("data":{"count":3,"results":[{"id":5,"author":"alice"},)"
                                         R"({"id":3,"author":"alice"}],"limit":2,"offset":0})"));
    EXPECT_THAT(pages[1].text,
                HasSubstr(R"("data":{"count":3,"results":[{"id":1,"author":"alice"}],"limit":2,"offset":2})"));
    // Ordering by a field with ties: the primary key breaks them, so pages neither repeat nor skip a row.
    ASSERT_TRUE(ws->SendText(R"({"action": "list", "request_id": "t", "ordering": "author", "limit": 1})"));
    pages = ReadStream(*ws);
    std::vector<int> ids;
    for (const auto& p : pages) ids.push_back(p.data()["results"][0]["id"].GetInt());
    EXPECT_EQ(ids, (std::vector<int>{1, 3, 5, 2, 4}));

    // Bad limits fall back to the page size and bad offsets to 0; strings of digits count; the limit is capped.
    for (const char* bad : {R"("limit": 0)", R"("limit": -3)", R"("limit": null)", R"("limit": "x")", R"("limit": [1])",
                            R"("limit": 1.5)", R"("limit": true)", R"("limit": {})", R"("offset": -1)",
                            R"("offset": "x")", R"("offset": null)", R"("offset": 2.5)", R"("offset": false)"}) {
        ASSERT_TRUE(ws->SendText(std::string(R"({"action": "list", "request_id": "b", )") + bad + "}"));
        pages = ReadStream(*ws);
        ASSERT_EQ(pages.size(), 3u) << bad;
        EXPECT_THAT(pages[0].text, HasSubstr(R"("limit":2,"offset":0})")) << bad;
    }
    ASSERT_TRUE(ws->SendText(R"({"action": "list", "request_id": "c", "limit": 50, "offset": "1"})"));
    pages = ReadStream(*ws);
    ASSERT_EQ(pages.size(), 2u);
    EXPECT_THAT(pages[0].text, HasSubstr(R"("limit":3,"offset":1})"));
    EXPECT_THAT(pages[1].text, HasSubstr(R"("limit":3,"offset":4})"));

    // A refused filter or ordering is one error reply, and the socket goes on.
    EXPECT_TRUE(SameJson(ws->Request(R"({"action": "list", "request_id": 1, "filter": {"title": "x"}})").value_or(""),
                         R"({"errors": ["Filtering on \"title\" is not allowed."], "data": null, "action": "list",
                             "response_status": 400, "request_id": 1})"));
    EXPECT_THAT(ws->Request(R"({"action": "list", "ordering": "body"})").value_or(""),
                HasSubstr(R"("errors":["Ordering by \"body\" is not allowed."])"));
    EXPECT_THAT(ws->Request(R"({"action": "list", "filter": "alice"})").value_or(""),
                HasSubstr(R"("response_status":400)"));
    ExpectNothingPending(*ws);
}

TEST_P(ActionsStreamTest, ListCancelStopsALongStreamAndNoFrameFollowsItsReply) {
    InsertNotes(10000, 100);
    auto ws = Connect("/ws/notes/");
    ASSERT_TRUE(ws->SendText(R"({"action": "list", "request_id": "long", "limit": 1})"));
    Frame first = Next(*ws);
    ASSERT_EQ(first.request_id(), "long") << first.text;
    ASSERT_TRUE(ws->SendText(R"({"action": "list_cancel", "request_id": "cancel"})"));
    int pages = 1;
    std::int64_t last_offset = 0;
    for (;;) {
        Frame f = Next(*ws);
        ASSERT_TRUE(f.ok()) << "no list_cancel reply";
        if (f.request_id() == "cancel") {
            EXPECT_TRUE(SameJson(f.text, R"({"errors": [], "data": null, "action": "list_cancel",
                                            "response_status": 200, "request_id": "cancel"})"));
            break;
        }
        ASSERT_EQ(f.request_id(), "long") << f.text;  // frames queued before the reply may still arrive
        EXPECT_EQ(f.data()["offset"].GetInt64(), last_offset + 1);
        last_offset = f.data()["offset"].GetInt64();
        ++pages;
    }
    EXPECT_LT(pages, 10000) << "the stream ended before list_cancel arrived; the test proves nothing";
    ExpectNothingPending(*ws);
    ASSERT_TRUE(WaitExecutorIdle());
    ExpectNothingPending(*ws);
    // list_cancel with no stream running answers the same; a new stream runs to its end.
    EXPECT_THAT(ws->Request(R"({"action": "list_cancel"})").value_or(""), HasSubstr(R"("response_status":200)"));
    ASSERT_TRUE(ws->SendText(R"({"action": "list", "request_id": "after", "limit": 5000, "offset": 9000})"));
    EXPECT_EQ(ReadStream(*ws).size(), 10u);  // 1000 rows from 9000, limit capped by max_page_size 100 (the default)
}

TEST_P(ActionsStreamTest, TwoStreamsAtOnceOnOneSocket) {
    InsertNotes(300, 10);
    auto ws = Connect("/ws/notes/");
    ASSERT_TRUE(ws->SendText(R"({"action": "list", "request_id": "a", "limit": 7})"));
    ASSERT_TRUE(ws->SendText(R"({"action": "list", "request_id": "b", "limit": 5, "offset": 100})"));
    std::map<std::string, std::vector<int>> ids;
    std::map<std::string, std::int64_t> next_offset{{"a", 0}, {"b", 100}};
    std::map<std::string, bool> done;
    while (!(done["a"] && done["b"])) {
        Frame f = Next(*ws);
        ASSERT_TRUE(f.ok() && f.action() == "list") << f.text;
        std::string id = f.request_id();
        ASSERT_TRUE(id == "a" || id == "b") << f.text;
        ASSERT_FALSE(done[id]) << "a page after the last one: " << f.text;
        EXPECT_EQ(f.data()["offset"].GetInt64(), next_offset[id]);
        EXPECT_EQ(f.data()["count"].GetInt(), 300);
        for (const auto& row : f.data()["results"].GetArray()) ids[id].push_back(row["id"].GetInt());
        next_offset[id] += f.data()["results"].Size();
        done[id] = LastPage(f);
    }
    ASSERT_EQ(ids["a"].size(), 300u);
    ASSERT_EQ(ids["b"].size(), 200u);
    for (int i = 0; i < 300; ++i) ASSERT_EQ(ids["a"][i], i + 1);
    for (int i = 0; i < 200; ++i) ASSERT_EQ(ids["b"][i], i + 101);
    ExpectNothingPending(*ws);
}

TEST_P(ActionsStreamTest, StreamsOfAClosedSocketStopAndTheExecutorDrains) {
    InsertNotes(10000, 1024);
    {
        // A reader that reads one frame and then nothing: the stream fills the socket and waits for room.
        auto raw = testing::RawWebSocket::Open(server_->port(), "/ws/notes/");
        ASSERT_TRUE(raw);
        ASSERT_TRUE(raw->SendText(R"({"action": "list", "request_id": "big", "limit": 1})"));
        auto first = raw->ReadFrame(kDeadline);
        ASSERT_TRUE(first);
        EXPECT_THAT(first->second, HasSubstr(R"("request_id":"big")"));
    }  // closes the TCP connection
    ASSERT_TRUE(WaitExecutorIdle());
    auto ws = Connect("/ws/notes/");
    EXPECT_THAT(ws->Request(R"({"action": "retrieve", "pk": 1})").value_or(""), HasSubstr(R"("response_status":200)"));
}

TEST_P(ActionsStreamTest, CustomActionsAnswerWhatTheyReturn) {
    auto ws = Connect("/ws/custom/");
    EXPECT_TRUE(SameJson(ws->Request(R"({"action": "publish", "pk": 3, "request_id": 1})").value_or(""),
                         R"({"errors": [], "data": {"id": 3, "title": "by alice", "body": "published"},
                             "action": "publish", "response_status": 200, "request_id": 1})"));
    EXPECT_TRUE(SameJson(ws->Request(R"({"action": "publish", "request_id": 2})").value_or(""),
                         R"({"errors": ["Missing lookup argument \"pk\"."], "data": null, "action": "publish",
                             "response_status": 400, "request_id": 2})"));
    for (const char* pk : {"99", "\"x\"", "null", "{}"}) {
        EXPECT_TRUE(SameJson(
            ws->Request(std::string(R"({"action": "publish", "request_id": 3, "pk": )") + pk + "}").value_or(""),
            R"({"errors": ["Not found"], "data": null, "action": "publish", "response_status": 404,
                                 "request_id": 3})"))
            << pk;
    }
    EXPECT_TRUE(SameJson(ws->Request(R"({"action": "explode", "request_id": 4})").value_or(""),
                         R"({"errors": ["Internal server error"], "data": null, "action": "explode",
                             "response_status": 500, "request_id": 4})"));
    EXPECT_TRUE(SameJson(ws->Request(R"({"action": "explode_later", "request_id": 5})").value_or(""),
                         R"({"errors": ["Internal server error"], "data": null, "action": "explode_later",
                             "response_status": 500, "request_id": 5})"));
    EXPECT_TRUE(ws->is_open());
    EXPECT_THAT(ws->Request(R"({"action": "retrieve", "pk": 3})").value_or(""), HasSubstr(R"("body":"published")"));
    EXPECT_THAT(ws->Request(R"({"action": "unpublish", "pk": 3})").value_or(""), HasSubstr(R"("response_status":405)"));
}

TEST_P(ActionsStreamTest, PermissionIsCheckedBeforeTheActionAndItsObject) {
    auto ws = Connect("/ws/denied/");
    // 403 beats the object lookup's 400 and 404, and the unknown action's 405.
    for (const char* args : {R"("pk": 1)", R"("request_id": null)", R"("pk": 99)"}) {
        EXPECT_TRUE(SameJson(ws->Request(std::string(R"({"action": "publish", )") + args + "}").value_or(""),
                             R"({"errors": ["You do not have permission to perform this action."], "data": null,
                                 "action": "publish", "response_status": 403, "request_id": null})"))
            << args;
    }
    for (const char* action : {"unknown", "hold"}) {
        EXPECT_TRUE(SameJson(ws->Request(std::string(R"({"action": ")") + action + "\"}").value_or(""),
                             std::string(R"({"errors": ["You do not have permission to perform this action."],
                                 "data": null, "action": ")") +
                                 action + R"(", "response_status": 403,
                                 "request_id": null})"))
            << action;
    }
    std::lock_guard<std::mutex> lock(probe_->mutex);
    EXPECT_TRUE(probe_->started.empty());  // the refused detached action never ran
}

TEST_P(ActionsStreamTest, ADetachedActionDoesNotBlockTheSocketAndAnswersWhenItFinishes) {
    auto ws = Connect("/ws/custom/");
    ASSERT_TRUE(ws->SendText(R"({"action": "hold", "request_id": "h"})"));
    ASSERT_TRUE(probe_->WaitFor([&] { return probe_->started.size() == 1; }));
    ASSERT_TRUE(ws->SendText(R"({"action": "retrieve", "pk": 2, "request_id": "r"})"));
    Frame retrieved = Next(*ws);
    EXPECT_EQ(retrieved.request_id(), "r") << retrieved.text;
    EXPECT_EQ(retrieved.status(), 200);
    probe_->Open();
    EXPECT_TRUE(SameJson(Next(*ws).text, R"({"errors": [], "data": "held", "action": "hold", "response_status": 200,
                                             "request_id": "h"})"));
    ExpectNothingPending(*ws);
}

TEST_P(ActionsStreamTest, DetachedActionsOfAClosedSocketAreCancelledOrNeverRun) {
    // A running one sees cancelled().
    auto a = Connect("/ws/custom/");
    ASSERT_TRUE(a->SendText(R"({"action": "hold", "request_id": "a1"})"));
    ASSERT_TRUE(probe_->WaitFor([&] { return probe_->started.size() == 1; }));
    a.reset();
    ASSERT_TRUE(probe_->WaitFor([&] { return probe_->cancelled == std::vector<std::string>{"a1"}; }));
    ASSERT_TRUE(WaitExecutorIdle());

    // A queued one never starts: both executor threads are held by another socket's actions meanwhile.
    auto b = Connect("/ws/custom/");
    ASSERT_TRUE(b->SendText(R"({"action": "hold", "request_id": "b1"})"));
    ASSERT_TRUE(b->SendText(R"({"action": "hold", "request_id": "b2"})"));
    ASSERT_TRUE(probe_->WaitFor([&] { return probe_->started.size() == 3; }));
    auto c = Connect("/ws/custom/");
    // A subscription, so that the server's close of c can be observed (it drops c's subscriptions).
    EXPECT_THAT(c->Request(R"({"action": "subscribe_instance", "pk": 1, "request_id": "c-sub"})").value_or(""),
                HasSubstr(R"("response_status":201)"));
    std::size_t subscriptions = server_->observer().subscription_count();
    ASSERT_TRUE(c->SendText(R"({"action": "hold", "request_id": "c1"})"));
    auto deadline = std::chrono::steady_clock::now() + kDeadline;
    while (server_->executor().busy() < 3 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    ASSERT_EQ(server_->executor().busy(), 3u);  // b1, b2 running; c1 queued
    c.reset();
    while (server_->observer().subscription_count() >= subscriptions && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::yield();
    }
    ASSERT_LT(server_->observer().subscription_count(), subscriptions);
    probe_->Open();
    ASSERT_TRUE(WaitExecutorIdle());
    {
        std::lock_guard<std::mutex> lock(probe_->mutex);
        // b1 and b2 run at the same time on the two threads: either may record itself first.
        EXPECT_THAT(probe_->started, ::testing::AnyOf(std::vector<std::string>{"a1", "b1", "b2"},
                                                      std::vector<std::string>{"a1", "b2", "b1"}));
    }
    EXPECT_THAT(Next(*b).text, HasSubstr(R"("data":"held")"));
    EXPECT_THAT(Next(*b).text, HasSubstr(R"("data":"held")"));
}

TEST_P(ActionsStreamTest, ADetachedWritersReplyComesBeforeThePushItCauses) {
    auto ws = Connect("/ws/custom/");
    EXPECT_THAT(ws->Request(R"({"action": "subscribe_instance", "pk": 2, "request_id": "sub"})").value_or(""),
                HasSubstr(R"("response_status":201)"));
    for (int i = 0; i < 5; ++i) {
        std::string body = "v" + std::to_string(i);
        ASSERT_TRUE(ws->SendText(R"({"action": "slow_publish", "pk": 2, "request_id": "w", "body": ")" + body + "\"}"));
        Frame reply = Next(*ws);
        EXPECT_EQ(reply.request_id(), "w") << reply.text;
        EXPECT_EQ(reply.status(), 200);
        Frame push = Next(*ws);
        EXPECT_EQ(push.request_id(), "sub") << push.text;
        EXPECT_EQ(push.action(), "update") << push.text;
        if (push.ok() && push.data().IsObject()) {
            EXPECT_EQ(push.data()["body"].GetString(), body);
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Engines, ActionsStreamTest, test_support::AllEngines(), test_support::EngineParamName);

}  // namespace
}  // namespace syncline
