// GET /metrics (issue 14, item 1): Prometheus text from the server's own port, and numbers that move with what
// clients do: connections per route, frames, actions by route, name and status with their latency, single writes,
// pushes delivered and coalesced, slow-reader closes, the relay and the bus. And "metrics": false turns it off.

#include <syncline/test_support/server_fixture.hpp>
#include <syncline/test_support/ws_client.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "raw_ws.hpp"

namespace syncline {
namespace {

using namespace std::chrono_literals;
using test_support::HttpGet;
using test_support::HttpResponse;
using ::testing::HasSubstr;

constexpr const char* kRoute = "/ws/posts/";

std::string Config(const std::string& extra) {
    return R"({"database": "m.db", "listen": {"port": 0}, "workers": 2, "ping_interval_ms": 0, )" + extra + R"(
      "models": {"posts": {"fields": {"id": {"type": "integer", "primary_key": true}, "title": {"type": "text"},
                                      "body": {"type": "text", "blank": true, "default": ""}}}},
      "routes": {"/ws/posts/": {"model": "posts",
                                "mixins": ["create", "retrieve", "patch", "observe_instance"]}}})";
}

// One scrape: every sample line, as metric name -> (labels, value).
class Scrape {
public:
    explicit Scrape(const std::string& body) : text_(body) {
        std::istringstream in(body);
        std::string line;
        while (std::getline(in, line)) {
            if (line.empty() || line[0] == '#') continue;
            const std::size_t space = line.rfind(' ');
            const std::size_t brace = line.find('{');
            const std::string series = line.substr(0, space);
            Sample sample;
            sample.value = std::stod(line.substr(space + 1));
            const std::string name = series.substr(0, brace);
            if (brace != std::string::npos) {
                // name{a="x",b="y"}: label values here hold no quote, comma or escape.
                std::string labels = series.substr(brace + 1, series.size() - brace - 2);
                std::size_t at = 0;
                while (at < labels.size()) {
                    const std::size_t eq = labels.find('=', at);
                    const std::size_t close = labels.find('"', eq + 2);
                    sample.labels[labels.substr(at, eq - at)] = labels.substr(eq + 2, close - eq - 2);
                    at = close + 2;
                }
            }
            samples_[name].push_back(std::move(sample));
        }
    }
    // The value of the series with exactly these labels (nullopt when absent).
    std::optional<double> Get(const std::string& name, const std::map<std::string, std::string>& labels = {}) const {
        auto it = samples_.find(name);
        if (it == samples_.end()) return std::nullopt;
        for (const Sample& sample : it->second) {
            if (sample.labels == labels) return sample.value;
        }
        return std::nullopt;
    }
    double Value(const std::string& name, const std::map<std::string, std::string>& labels = {}) const {
        return Get(name, labels).value_or(-1);
    }
    const std::string& text() const { return text_; }

private:
    struct Sample {
        std::map<std::string, std::string> labels;
        double value = 0;
    };
    std::string text_;
    std::map<std::string, std::vector<Sample>> samples_;
};

std::map<std::string, std::string> Action(const std::string& action, int status) {
    return {{"route", kRoute}, {"action", action}, {"status", std::to_string(status)}};
}

class MetricsTest : public test_support::ServerTest {
protected:
    HttpResponse GetMetrics() { return HttpGet("127.0.0.1", server_->port(), "/metrics"); }
    Scrape Take() {
        HttpResponse response = GetMetrics();
        EXPECT_EQ(response.status, 200) << response.error << response.body;
        return Scrape(response.body);
    }
    // Scrapes until `done` holds (with a deadline); returns the last scrape.
    template <class Done>
    Scrape TakeWhen(Done done) {
        const auto deadline = std::chrono::steady_clock::now() + test_support::kServerWait;
        Scrape scrape = Take();
        while (!done(scrape) && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(10ms);  // polls an HTTP endpoint; nothing to wait on
            scrape = Take();
        }
        return scrape;
    }
};

TEST_F(MetricsTest, ServesPrometheusTextWithEveryFamily) {
    StartFromConfig(Config(""));
    HttpResponse response = GetMetrics();
    ASSERT_EQ(response.status, 200) << response.error;
    bool text_type = false;
    for (const auto& [name, value] : response.headers) {
        if (name == "content-type") text_type = value.rfind("text/plain; version=0.0.4", 0) == 0;
    }
    EXPECT_TRUE(text_type) << "Content-Type is not Prometheus text 0.0.4";
    for (const char* family :
         {"syncline_connections", "syncline_frames_received_total", "syncline_frames_sent_total",
          "syncline_pushes_delivered_total", "syncline_pushes_coalesced_total", "syncline_slow_reader_closes_total",
          "syncline_relay_lag_changes", "syncline_relay_lag_seconds", "syncline_relay_up", "syncline_bus_connected",
          "syncline_bus_reconnects_total", "syncline_write_seconds", "syncline_detached_actions_queued",
          "syncline_detached_actions_running", "syncline_writes_queued", "syncline_writes_running",
          "syncline_batched_writes_queued", "syncline_batched_writes_total", "syncline_write_batches_total"}) {
        EXPECT_THAT(response.body, HasSubstr(std::string("# TYPE ") + family + " ")) << family;
    }
    Scrape scrape(response.body);
    EXPECT_EQ(scrape.Value("syncline_connections", {{"route", kRoute}}), 0);
    EXPECT_EQ(scrape.Value("syncline_bus_connected"), 1) << "the in-process bus is always connected";
    EXPECT_EQ(scrape.Value("syncline_write_seconds_count"), 0);
}

TEST_F(MetricsTest, CountsMoveWithWhatClientsDo) {
    StartFromConfig(Config(""));
    const Scrape before = Take();
    auto watcher = Connect();
    auto writer = Connect();
    ASSERT_TRUE(watcher && writer);
    Scrape open = TakeWhen([](const Scrape& s) { return s.Value("syncline_connections", {{"route", kRoute}}) == 2; });
    EXPECT_EQ(open.Value("syncline_connections", {{"route", kRoute}}), 2);

    auto reply = writer->Request(R"({"action": "create", "data": {"title": "a"}, "request_id": 1})");
    ASSERT_TRUE(reply);
    EXPECT_THAT(*reply, HasSubstr(R"("response_status":201)"));
    reply = watcher->Request(R"({"action": "subscribe_instance", "pk": 1, "request_id": 2})");
    ASSERT_TRUE(reply);
    EXPECT_THAT(*reply, HasSubstr(R"("response_status":201)"));
    reply = writer->Request(R"({"action": "retrieve", "pk": 1, "request_id": 3})");
    EXPECT_THAT(reply.value_or(""), HasSubstr(R"("response_status":200)"));
    reply = writer->Request(R"({"action": "retrieve", "pk": 99, "request_id": 4})");
    EXPECT_THAT(reply.value_or(""), HasSubstr(R"("response_status":404)"));
    // A name the route does not serve, and a frame that is not JSON: fixed labels, whatever the client sent.
    reply = writer->Request(R"({"action": "no_such_action_7f3a", "request_id": 5})");
    EXPECT_THAT(reply.value_or(""), HasSubstr(R"("response_status":405)"));
    reply = writer->Request("not json");
    EXPECT_THAT(reply.value_or(""), HasSubstr(R"("response_status":400)"));
    reply = writer->Request(R"({"action": "patch", "pk": 1, "data": {"title": "b"}, "request_id": 6})");
    EXPECT_THAT(reply.value_or(""), HasSubstr(R"("response_status":200)"));
    auto push = watcher->Receive();
    ASSERT_TRUE(push) << "no push of the patch";
    EXPECT_THAT(*push, HasSubstr(R"("title":"b")"));

    // The write's task ends a moment after its reply and push are out.
    Scrape after = TakeWhen([](const Scrape& s) {
        return s.Value("syncline_pushes_delivered_total") >= 1 && s.Value("syncline_writes_running") == 0 &&
               s.Value("syncline_batched_writes_queued") == 0;
    });
    EXPECT_EQ(after.Value("syncline_actions_total", Action("create", 201)), 1);
    EXPECT_EQ(after.Value("syncline_actions_total", Action("subscribe_instance", 201)), 1);
    EXPECT_EQ(after.Value("syncline_actions_total", Action("retrieve", 200)), 1);
    EXPECT_EQ(after.Value("syncline_actions_total", Action("retrieve", 404)), 1);
    EXPECT_EQ(after.Value("syncline_actions_total", Action("(unknown)", 405)), 1);
    EXPECT_EQ(after.Value("syncline_actions_total", Action("(invalid)", 400)), 1);
    EXPECT_EQ(after.Value("syncline_actions_total", Action("patch", 200)), 1);
    EXPECT_THAT(after.text(), ::testing::Not(HasSubstr("no_such_action_7f3a")))
        << "a client's action name became a label";
    EXPECT_EQ(after.Value("syncline_action_seconds_count", {{"route", kRoute}, {"action", "retrieve"}}), 2);
    EXPECT_GT(after.Value("syncline_action_seconds_sum", {{"route", kRoute}, {"action", "retrieve"}}), 0);
    EXPECT_EQ(after.Value("syncline_write_seconds_count"), 2) << "create and patch are the two writes";
    EXPECT_GT(after.Value("syncline_write_seconds_sum"), 0);
    EXPECT_EQ(after.Value("syncline_frames_received_total") - before.Value("syncline_frames_received_total"), 7);
    // Seven replies and the push, at least (nothing else was sent).
    EXPECT_EQ(after.Value("syncline_frames_sent_total") - before.Value("syncline_frames_sent_total"), 8);
    EXPECT_EQ(after.Value("syncline_pushes_delivered_total"), 1);
    EXPECT_EQ(after.Value("syncline_relay_up"), 1);
    EXPECT_EQ(after.Value("syncline_relay_lag_changes"), 0);
    EXPECT_EQ(after.Value("syncline_detached_actions_running"), 0);
    EXPECT_EQ(after.Value("syncline_writes_running"), 0);
    // The create and the patch ran on the batch writer (SQLite, batch_writes on by default), one transaction each.
    EXPECT_EQ(after.Value("syncline_batched_writes_total"), 2);
    EXPECT_EQ(after.Value("syncline_write_batches_total"), 2);
    EXPECT_EQ(after.Value("syncline_batched_writes_queued"), 0);

    watcher.reset();
    writer.reset();
    Scrape closed = TakeWhen([](const Scrape& s) { return s.Value("syncline_connections", {{"route", kRoute}}) == 0; });
    EXPECT_EQ(closed.Value("syncline_connections", {{"route", kRoute}}), 0);
}

TEST_F(MetricsTest, CoalescedPushesAndSlowReaderClosesAreCounted) {
    StartFromConfig(Config(R"("max_queue_bytes": 262144, "slow_reader_timeout_ms": 300, )"));
    {
        std::unique_ptr<storage::Transaction> tx = server_->database().Begin();
        tx->Insert("posts", {{"title", Value("watched")}});
        tx->Commit();
    }
    // A subscriber that reads nothing (its receive buffer capped): pushes of its one row queue, and each newer one
    // replaces the one waiting.
    auto still = testing::RawWebSocket::Open(server_->port(), kRoute);
    ASSERT_TRUE(still);
    ASSERT_TRUE(still->SetReceiveBufferBytes(4096));
    ASSERT_TRUE(still->SendText(R"({"action": "subscribe_instance", "pk": 1, "request_id": 1})"));
    const std::string body(8192, 'x');
    Scrape coalesced = TakeWhen([&](const Scrape& s) {
        if (s.Value("syncline_pushes_coalesced_total") > 0) return true;
        for (int i = 0; i < 50; ++i) {
            std::unique_ptr<storage::Transaction> tx = server_->database().Begin();
            tx->Patch("posts", Value(1), {{"body", Value(body + std::to_string(i))}});
            tx->Commit();
        }
        return false;
    });
    EXPECT_GT(coalesced.Value("syncline_pushes_coalesced_total"), 0);

    // Replies are never replaced: a client that asks and reads nothing goes over max_queue_bytes and is closed (1013).
    auto greedy = testing::RawWebSocket::Open(server_->port(), kRoute);
    ASSERT_TRUE(greedy);
    ASSERT_TRUE(greedy->SetReceiveBufferBytes(4096));
    ASSERT_TRUE(greedy->SetSendTimeout(2s));
    Scrape closed = TakeWhen([&](const Scrape& s) {
        if (s.Value("syncline_slow_reader_closes_total") > 0) return true;
        for (int i = 0; i < 20; ++i) greedy->SendText(R"({"action": "retrieve", "pk": 1, "request_id": 2})");
        return false;
    });
    EXPECT_GE(closed.Value("syncline_slow_reader_closes_total"), 1);
}

TEST_F(MetricsTest, OffAnswers404) {
    StartFromConfig(Config(R"("metrics": false, )"));
    EXPECT_EQ(GetMetrics().status, 404);
    EXPECT_EQ(HttpGet("127.0.0.1", server_->port(), "/healthz").status, 200);
}

}  // namespace
}  // namespace syncline
