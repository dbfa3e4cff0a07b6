// Fuzz target "frame": text frames into a consumer endpoint over a real SQLite database, as a client would send them.
// The server is declared in JSON (kConfig below, parsed by config::ParseConfig and assembled as config::BuildServer and
// Server::Prepare do): a model with text, integer, real, boolean, json and datetime fields, a model with a text
// key, every mixin (subscriptions included, with an observer on the in-process bus), list filters and ordering,
// limit/offset and streamed pagination, permissions, a routed consumer and a multiplexer over the others.
//
// Input: one selector byte, then up to four frames separated by 0xFF (a byte no UTF-8 text holds), all on one
// connection. Selector bits 0-2 (mod 6) pick the route: 0 /ws/posts/ (every DCRF mixin, limit/offset), 1 /ws/stream/
// (streamed list, lookup by title, a queryset), 2 /ws/tags/ (text key, group permissions), 3 /ws/owned/ (owner
// permissions), 4 /ws/ (the multiplexer over them and the routed route), 5 /ws/api/ (routed). Bit 3: the connection
// is alice's (id 1, group editors) instead of anonymous. Bit 4: on the multiplexer, frames arrive as binary frames.
// Bit 5: changes reach the observer as bus payloads (EncodeEvent, the in-process bus, Observer::OnMessage, as from
// Redis) instead of as events (InProcessBus::PublishEvent, Observer::OnEvent, as a Server without Redis carries
// them). Bit 6: on the multiplexer, the streams run their writes on a write pool of one thread (SerialRequests, as
// `write_threads` does), and the frames are sent back to back, without waiting for replies: frames that arrive while
// a write runs wait behind it and are answered on the pool's thread, in order. Bit 7 with bit 6: the writes run whole
// on a batch writer instead (as `batch_writes` does: transport::BatchWriter, Backend::RunBatch), the frames behind them
// still on the pool.
//
// Direct routes answer through the synchronous path (GenericConsumer::HandleText: HandleTextFrame, detached actions
// inline); the multiplexer through its session's OnText with a recording Outbox (its streams run no detached
// action). After each frame, the changes it committed are read from the change feed and delivered, as the relay
// would, so the connection's subscriptions are pushed. Checks: every frame sent is valid UTF-8 text of a JSON object
// in the route's envelope, with an HTTP-like status that is never 500 (an exception escaped an action); exactly one
// reply per frame (a streamed list sends one or more frames of its stream instead); the reply echoes the request's
// action and request_id (null when the request_id is over the limit); pushes carry a version; closing the
// connection leaves no subscription behind.
//
// Runs are deterministic: each input opens a fresh connection with a fresh observer and closes it, and after an
// input that wrote, the database is put back to its seed rows (and its change feed restarts at the same versions).

#include <syncline/auth/token_authenticator.hpp>
#include <syncline/config/config.hpp>
#include <syncline/core/protocol/consumer_endpoint.hpp>
#include <syncline/core/protocol/json_input.hpp>
#include <syncline/core/protocol/multiplexer.hpp>
#include <syncline/core/protocol/routed.hpp>
#include <syncline/core/support/log.hpp>
#include <syncline/observer/bus.hpp>
#include <syncline/observer/observer.hpp>
#include <syncline/observer/row_event.hpp>
#include <syncline/storage/change_feed.hpp>
#include <syncline/storage/database.hpp>
#include <syncline/transport/batch_writer.hpp>
#include <syncline/transport/thread_pool_executor.hpp>

#include <rapidjson/document.h>

#include <stdlib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

constexpr const char* kConfig = R"({
  "database": "fuzz.db",
  "models": {
    "posts": {"fields": {
      "id":        {"type": "integer", "primary_key": true},
      "title":     {"type": "text", "max_length": 40},
      "body":      {"type": "text", "blank": true, "default": ""},
      "author":    {"type": "text", "max_length": 20, "blank": true, "default": ""},
      "owner_id":  {"type": "integer", "null": true},
      "likes":     {"type": "integer", "null": true, "min_value": 0, "max_value": 1000000},
      "score":     {"type": "real", "null": true},
      "public":    {"type": "boolean", "default": false},
      "state":     {"type": "text", "choices": ["draft", "live"], "default": "draft"},
      "meta":      {"type": "json", "default": {}},
      "published": {"type": "datetime", "null": true},
      "secret":    {"type": "text", "blank": true, "default": ""}}},
    "tags": {"fields": {
      "slug":  {"type": "text", "primary_key": true},
      "label": {"type": "text", "unique": true, "max_length": 30}}}
  },
  "routes": {
    "/ws/posts/": {"model": "posts",
      "mixins": ["list", "retrieve", "create", "update", "patch", "delete", "observe_instance", "observe_list"],
      "group_by": "author", "write_only": ["secret"], "read_only": ["owner_id"],
      "filter_fields": ["id", "title", "author", "owner_id", "likes", "score", "public", "state", "published"],
      "ordering_fields": ["id", "title", "likes", "score", "published"],
      "pagination": "limit_offset", "page_size": 3, "max_page_size": 5},
    "/ws/stream/": {"model": "posts", "mixins": ["retrieve", "create", "patch", "delete"],
      "pagination": "streamed", "page_size": 2, "max_page_size": 4, "lookup_field": "title",
      "queryset": {"public": true}, "fields": ["id", "title", "author", "public", "likes"],
      "filter_fields": ["author", "likes"], "ordering_fields": ["likes", "id"]},
    "/ws/tags/": {"model": "tags",
      "mixins": ["list", "retrieve", "create", "update", "patch", "delete", "observe_instance", "observe_list"],
      "filter_fields": ["slug", "label"], "ordering_fields": ["label"],
      "permissions": [{"or": ["read_only", {"group": "editors"}]}]},
    "/ws/owned/": {"model": "posts",
      "mixins": ["list", "retrieve", "create", "update", "patch", "delete", "observe_instance"],
      "permissions": ["is_authenticated", {"or": [{"owner": "owner_id"}, {"not": {"group": "nobody"}}]}],
      "queryset": {"state__in": ["draft", "live"]}, "filter_fields": ["likes"]},
    "/ws/api/": {"routepatterns": {
      "^posts/(?P<pk>[^/]+)/$": {"model": "posts", "handler": "RetrieveUpdateDestroyAPIActionHandler",
                                 "write_only": ["secret"]},
      "^posts/$": {"model": "posts", "handler": "ListCreateAPIActionHandler", "pagination": "limit_offset",
                   "page_size": 2, "filter_fields": ["author"], "ordering_fields": ["id"]},
      "^tags/(?P<slug>[-a-z0-9+]+)/$": {"model": "tags", "handler": "RetrieveAPIActionHandler",
                                        "lookup_field": "slug"},
      "^twice/(?P<pk>[0-9]+)/(?P=pk)$": {"model": "posts", "handler": "RetrieveDestroyAPIActionHandler"}}},
    "/ws/": {"streams": {"posts": "/ws/posts/", "tags": "/ws/tags/", "owned": "/ws/owned/", "api": "/ws/api/"}}
  }
})";

// The rows every input starts from (the change feed restarts with them at versions 1..7). Row 4's title holds bytes
// that are not UTF-8, as another program could have written them.
constexpr const char* kSeedSql = R"(BEGIN;
DELETE FROM posts; DELETE FROM tags; DELETE FROM _syncline_changes; DELETE FROM sqlite_sequence;
INSERT INTO posts (id, title, body, author, owner_id, likes, score, public, state, meta, published, secret) VALUES
  (1, 'First', 'hello', 'alice', 1, 3, 1.5, 1, 'live', '{"k":[1,2]}', '2024-05-01T12:30:00Z', 's1'),
  (2, 'Second', '', 'bob', 2, NULL, NULL, 0, 'draft', '[]', NULL, ''),
  (3, 'Third', 'x', 'alice', NULL, 0, -2.25, 1, 'live', '"text"', '2024-01-01', 'hidden'),
  (4, CAST(x'4261649F' AS TEXT), '', 'carol', 1, 7, 0.0, 1, 'draft', '{}', NULL, '');
INSERT INTO tags (slug, label) VALUES ('news', 'News'), ('c++', 'C++'), ('ete', 'été');
COMMIT;)";

constexpr const char* kAliceToken = "dev-token-alice-0123";

[[noreturn]] void Fail(const std::string& what, std::string_view frame = {}) {
    std::fprintf(stderr, "frame fuzzer: %s\n  frame: %.*s\n", what.c_str(), static_cast<int>(frame.size()),
                 frame.data());
    std::abort();
}

// Records what a connection is sent: replies (and stream frames) apart from pushes.
class CountingOutbox final : public syncline::Outbox {
public:
    void Send(std::string frame) override {
        std::lock_guard<std::mutex> lock(mutex_);
        sent.push_back(std::move(frame));
    }
    void SendPush(std::string frame, const std::string& key) override {
        (void)key;
        std::lock_guard<std::mutex> lock(mutex_);
        pushed.push_back(std::move(frame));
    }
    void Close(int code, std::string reason) override {
        (void)reason;
        std::lock_guard<std::mutex> lock(mutex_);
        close_code = code;
    }
    std::size_t BufferedBytes() const override { return 0; }
    // Copies, under the lock (a write pool's thread may still be sending).
    std::vector<std::string> Sent() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return sent;
    }
    std::vector<std::string> Pushed() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return pushed;
    }

    std::vector<std::string> sent;
    std::vector<std::string> pushed;
    int close_code = 0;

private:
    mutable std::mutex mutex_;
};

struct Route {
    std::string path;
    std::shared_ptr<syncline::GenericConsumer> consumer;  // null for the multiplexer
    bool routed = false;
};

// The registry the consumers are bound to (once): it forwards to the observer of the current input, made afresh for
// each, so that what one input delivered (the observer remembers versions per row) never changes another's run.
class ForwardingRegistry final : public syncline::SubscriptionRegistry {
public:
    syncline::observer::Observer* target = nullptr;

    std::unique_ptr<syncline::PendingSubscriptions> SubscribeInstance(syncline::ConnectionContext& c,
                                                                      syncline::GenericConsumer& g,
                                                                      syncline::InstanceSubscription s) override {
        return target->SubscribeInstance(c, g, std::move(s));
    }
    void UnsubscribeInstance(syncline::ConnectionContext& c, syncline::GenericConsumer& g, const syncline::Value& v,
                             const std::optional<std::string>& id) override {
        target->UnsubscribeInstance(c, g, v, id);
    }
    std::unique_ptr<syncline::PendingSubscriptions> SubscribeGroups(syncline::ConnectionContext& c,
                                                                    syncline::GenericConsumer& g,
                                                                    std::shared_ptr<const syncline::GroupObserver> o,
                                                                    const std::vector<std::string>& groups,
                                                                    const std::string& id) override {
        return target->SubscribeGroups(c, g, std::move(o), groups, id);
    }
    void UnsubscribeGroups(syncline::ConnectionContext& c, syncline::GenericConsumer& g,
                           const syncline::GroupObserver& o, const std::vector<std::string>& groups,
                           const std::optional<std::string>& id) override {
        target->UnsubscribeGroups(c, g, o, groups, id);
    }
    std::unique_ptr<syncline::PendingSubscriptions> SubscribeList(syncline::ConnectionContext& c,
                                                                  syncline::GenericConsumer& g,
                                                                  std::vector<syncline::Filter> f,
                                                                  const std::string& id) override {
        return target->SubscribeList(c, g, std::move(f), id);
    }
    void UnsubscribeList(syncline::ConnectionContext& c, syncline::GenericConsumer& g,
                         const std::optional<std::string>& id) override {
        target->UnsubscribeList(c, g, id);
    }
    void DropConnection(syncline::ConnectionContext& c) override { target->DropConnection(c); }
};

struct World {
    std::string dir;
    std::vector<syncline::Schema> models;
    std::unique_ptr<syncline::storage::Database> db;
    std::unique_ptr<syncline::storage::ChangeFeed> feed;
    std::int64_t feed_cursor = 0;  // the last change delivered
    syncline::observer::InProcessBus bus;
    syncline::observer::ChannelLayout layout{"fuzz", 4};
    std::unique_ptr<syncline::observer::Observer> observer;  // the current input's
    ForwardingRegistry registry;
    std::vector<Route> routes;  // in selector order
    std::shared_ptr<syncline::Multiplexer> multiplexer;
    // The same streams with their writes on write_pool (selector bit 6).
    std::shared_ptr<syncline::transport::ThreadPoolExecutor> write_pool;
    std::shared_ptr<syncline::Multiplexer> pooled_multiplexer;
    // And with their writes on batcher (selector bits 6 and 7).
    std::shared_ptr<syncline::transport::BatchWriter> batcher;
    std::shared_ptr<syncline::Multiplexer> batched_multiplexer;
    syncline::AuthOptions auth;
    std::uint64_t commits_after_seed = 0;
};

World* g_world = nullptr;

void Reseed(World& w) {
    w.db->ExecuteWrite(kSeedSql);
    w.commits_after_seed = w.db->local_commits();
    w.feed_cursor = w.feed->LatestSeq();
}

void RemoveDir() {
    if (!g_world) return;
    std::error_code ec;
    std::filesystem::remove_all(g_world->dir, ec);
}

std::unique_ptr<World> Build() {
    auto w = std::make_unique<World>();
    std::string tmpl = (std::filesystem::temp_directory_path() / "syncline-fuzz-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) Fail("mkdtemp failed");
    w->dir = tmpl;
    const syncline::config::Config config = syncline::config::ParseConfig(kConfig);
    w->models = config.models;
    syncline::storage::DatabaseOptions db_options;
    db_options.path = w->dir + "/" + config.server.database;
    db_options.synchronous = syncline::storage::Synchronous::kOff;  // a scratch file: no fsync
    w->db = syncline::storage::Database::Open(db_options, config.models);
    w->feed = std::make_unique<syncline::storage::ChangeFeed>(*w->db);
    Reseed(*w);

    std::map<std::string, syncline::User> tokens;
    tokens.emplace(kAliceToken, syncline::User{true, "1", "alice", {"editors"}, ""});
    w->auth.authenticator = std::make_shared<syncline::auth::StaticTokenAuthenticator>(tokens);

    std::map<std::string, std::shared_ptr<syncline::Endpoint>> endpoints;
    std::map<std::string, std::shared_ptr<syncline::Endpoint>> pooled_endpoints;
    std::map<std::string, Route> by_path;
    std::vector<syncline::Multiplexer::Stream> streams;
    std::vector<syncline::Multiplexer::Stream> pooled_streams;
    std::map<std::string, std::shared_ptr<syncline::Endpoint>> batched_endpoints;
    std::vector<syncline::Multiplexer::Stream> batched_streams;
    // Threads start on a first Post (a first Submit).
    w->write_pool = std::make_shared<syncline::transport::ThreadPoolExecutor>(1);
    w->batcher = std::make_shared<syncline::transport::BatchWriter>(*w->db);
    const syncline::config::RouteConfig* mux = nullptr;
    for (const auto& route : config.routes) {
        if (!route.streams.empty()) {
            mux = &route;
            continue;
        }
        Route r{route.path, nullptr, !route.routepatterns.empty()};
        if (r.routed) {
            std::vector<syncline::RoutePattern> patterns;
            for (const auto& p : route.routepatterns) {
                patterns.push_back(
                    syncline::RoutePattern{p.pattern, std::make_shared<syncline::GenericConsumer>(p.consumer)});
            }
            r.consumer = std::make_shared<syncline::RoutedConsumer>(std::move(patterns));
        } else {
            r.consumer = std::make_shared<syncline::GenericConsumer>(route.consumer);
        }
        r.consumer->Bind(*w->db, &w->registry);
        syncline::EndpointOptions options = route.endpoint;
        options.auth = w->auth;
        options.limits = config.server.limits;
        // Threads start on a first Post: never here.
        options.executor = std::make_shared<syncline::transport::ThreadPoolExecutor>(1);
        endpoints.emplace(route.path, std::make_shared<syncline::ConsumerEndpoint>(r.consumer, options));
        options.write_executor = w->write_pool;
        pooled_endpoints.emplace(route.path, std::make_shared<syncline::ConsumerEndpoint>(r.consumer, options));
        options.write_batcher = w->batcher;
        batched_endpoints.emplace(route.path, std::make_shared<syncline::ConsumerEndpoint>(r.consumer, options));
        by_path.emplace(route.path, r);
    }
    if (!mux) Fail("the config has no multiplexer route");
    for (const auto& [name, target] : mux->streams) {
        streams.push_back({name, endpoints.at(target)});
        pooled_streams.push_back({name, pooled_endpoints.at(target)});
        batched_streams.push_back({name, batched_endpoints.at(target)});
    }
    w->multiplexer =
        std::make_shared<syncline::Multiplexer>(std::move(streams), w->auth, config.server.limits.max_json_depth);
    w->pooled_multiplexer = std::make_shared<syncline::Multiplexer>(std::move(pooled_streams), w->auth,
                                                                    config.server.limits.max_json_depth);
    w->batched_multiplexer = std::make_shared<syncline::Multiplexer>(std::move(batched_streams), w->auth,
                                                                     config.server.limits.max_json_depth);
    for (const char* path : {"/ws/posts/", "/ws/stream/", "/ws/tags/", "/ws/owned/", "/ws/", "/ws/api/"}) {
        w->routes.push_back(std::string(path) == "/ws/" ? Route{path, nullptr, false} : by_path.at(path));
    }
    return w;
}

// --- Checks --------------------------------------------------------------------------------------------------------

bool StrictlyEqual(const rapidjson::Value& a, const rapidjson::Value& b) {
    if (a.GetType() != b.GetType()) return false;
    if (a.IsNumber()) {
        if (a.IsDouble() != b.IsDouble() || a.IsInt64() != b.IsInt64()) return false;
        return a.IsDouble() ? a.GetDouble() == b.GetDouble()
                            : (a.IsInt64() ? a.GetInt64() == b.GetInt64() : a.GetUint64() == b.GetUint64());
    }
    if (a.IsString()) {
        return std::string_view(a.GetString(), a.GetStringLength()) ==
               std::string_view(b.GetString(), b.GetStringLength());
    }
    if (a.IsArray()) {
        if (a.Size() != b.Size()) return false;
        for (rapidjson::SizeType i = 0; i < a.Size(); ++i) {
            if (!StrictlyEqual(a[i], b[i])) return false;
        }
        return true;
    }
    if (a.IsObject()) {
        if (a.MemberCount() != b.MemberCount()) return false;
        for (auto x = a.MemberBegin(), y = b.MemberBegin(); x != a.MemberEnd(); ++x, ++y) {
            if (!StrictlyEqual(x->name, y->name) || !StrictlyEqual(x->value, y->value)) return false;
        }
    }
    return true;
}

const rapidjson::Value* Member(const rapidjson::Value& object, const char* key) {
    auto it = object.FindMember(key);
    return it == object.MemberEnd() ? nullptr : &it->value;
}

// What the request says, for the echo checks: its action and request_id (null when absent or over the limit).
struct Request {
    rapidjson::Document doc;
    bool parsed = false;
    const rapidjson::Value* action = nullptr;
    const rapidjson::Value* request_id = nullptr;
    bool request_id_too_long = false;
};

void ReadRequest(std::string_view text, std::size_t max_depth, Request& request) {
    if (syncline::ParseUntrustedJson(request.doc, text, max_depth) || !request.doc.IsObject()) return;
    request.parsed = true;
    request.action = Member(request.doc, "action");
    request.request_id = Member(request.doc, "request_id");
    request.request_id_too_long =
        request.request_id && syncline::CheckRequestId(request.request_id, syncline::ConnectionLimits{}).has_value();
}

// Checks one reply envelope (DCRF's, or the routed one) and returns its status.
int CheckEnvelope(const rapidjson::Value& reply, const std::string& text, std::string_view frame) {
    if (!reply.IsObject()) Fail("a reply payload that is not an object: " + text, frame);
    const rapidjson::Value* errors = Member(reply, "errors");
    const rapidjson::Value* status = Member(reply, "response_status");
    const rapidjson::Value* routed_status = Member(reply, "status");
    if (!errors || !errors->IsArray() || !Member(reply, "data") || !Member(reply, "action")) {
        Fail("a reply without errors, data or action: " + text, frame);
    }
    if ((status != nullptr) == (routed_status != nullptr)) Fail("a reply with no status or two: " + text, frame);
    const rapidjson::Value& s = status ? *status : *routed_status;
    if (!s.IsInt() || s.GetInt() < 100 || s.GetInt() > 599) Fail("a reply with a bad status: " + text, frame);
    if (s.GetInt() == 500) Fail("a frame made the server answer 500: " + text, frame);
    if ((s.GetInt() >= 400) == errors->Empty()) Fail("errors and status disagree: " + text, frame);
    return s.GetInt();
}

void ParseFrame(const std::string& text, rapidjson::Document& doc, std::string_view frame) {
    if (!syncline::IsValidUtf8(text)) Fail("a frame that is not UTF-8", frame);
    if (syncline::ParseUntrustedJson(doc, text, syncline::kMaxJsonDepthLimit) || !doc.IsObject()) {
        Fail("a frame that is not a JSON object: " + text, frame);
    }
}

// A reply echoes the request's action (verbatim) and request_id (null when over the limit; the routed envelope leaves
// it out when the request has none).
void CheckEcho(const rapidjson::Value& reply, const Request& request, bool routed, bool push, std::string_view frame) {
    if (!request.parsed) return;
    const rapidjson::Value* id = Member(reply, "request_id");
    if (request.request_id_too_long) {
        if (routed ? id != nullptr : (!id || !id->IsNull())) Fail("a request_id over the limit was echoed", frame);
    } else if (request.request_id) {
        if (!id || !StrictlyEqual(*id, *request.request_id)) Fail("the request_id was not echoed", frame);
    } else if (!push && !(routed ? id == nullptr : (id && id->IsNull()))) {
        Fail("a request_id appeared from nowhere", frame);
    }
    if (!push && request.action) {
        const rapidjson::Value* action = Member(reply, "action");
        if (!action || !StrictlyEqual(*action, *request.action)) Fail("the action was not echoed", frame);
    }
}

// A push: a JSON object in the route's envelope (create, update or delete) with the row's version.
void CheckPush(const rapidjson::Value& push, const std::string& text, std::string_view frame) {
    const int status = CheckEnvelope(push, text, frame);
    const rapidjson::Value* version = Member(push, "version");
    if (status >= 300 || !version || !version->IsInt64() || version->GetInt64() < 1) {
        Fail("a push without a version, or with an error: " + text, frame);
    }
}

// Reads the changes committed since the last delivery from the change feed and delivers them to the observer, as
// the relay does (coalesced per row), handed over or as bus payloads.
void Relay(World& w, bool as_payloads) {
    std::vector<syncline::ChangeEvent> changes = w.feed->ReadAfter(w.feed_cursor);
    if (changes.empty()) return;
    w.feed_cursor = changes.back().seq;
    for (const syncline::observer::RowEvent& event : syncline::observer::Coalesce(std::move(changes))) {
        const syncline::Schema& schema = w.db->Model(event.table);
        if (!as_payloads) {
            // As a Server without Redis: the event itself, through the in-process bus.
            w.bus.PublishEvent(w.layout.ForRow(event.table, event.pk), event, schema, event.position);
            continue;
        }
        w.bus.Publish(w.layout.ForRow(event.table, event.pk), syncline::observer::EncodeEvent(event, schema));
    }
}

// The frames of one connection, as the input splits them.
std::vector<std::string_view> SplitFrames(std::string_view text) {
    constexpr std::size_t kMaxFrames = 4;
    std::vector<std::string_view> frames;
    while (frames.size() + 1 < kMaxFrames) {
        const std::size_t at = text.find('\xFF');
        if (at == std::string_view::npos) break;
        frames.push_back(text.substr(0, at));
        text.remove_prefix(at + 1);
    }
    frames.push_back(text);
    return frames;
}

void RunDirect(World& w, const Route& route, const syncline::User& user, const std::vector<std::string_view>& frames,
               bool as_payloads) {
    auto outbox = std::make_shared<CountingOutbox>();
    auto context = std::make_shared<syncline::ConnectionContext>(
        syncline::HandshakeRequest{route.path, "", {}, "127.0.0.1:40000"}, outbox, user);
    for (std::string_view frame : frames) {
        const std::size_t sent_before = outbox->sent.size();
        const std::size_t pushed_before = outbox->pushed.size();
        const std::string reply = route.consumer->HandleText(*context, frame);
        Relay(w, as_payloads);

        Request request;
        ReadRequest(frame, context->limits().max_json_depth, request);
        std::vector<std::string> replies(outbox->sent.begin() + static_cast<std::ptrdiff_t>(sent_before),
                                         outbox->sent.end());
        if (reply.empty()) {
            if (route.path != "/ws/stream/" || replies.empty()) Fail("no reply", frame);
        } else {
            if (!replies.empty()) Fail("frames sent besides the reply", frame);
            replies.push_back(reply);
        }
        for (const auto& text : replies) {
            rapidjson::Document doc;
            ParseFrame(text, doc, frame);
            CheckEnvelope(doc, text, frame);
            CheckEcho(doc, request, route.routed, false, frame);
        }
        for (std::size_t i = pushed_before; i < outbox->pushed.size(); ++i) {
            rapidjson::Document doc;
            ParseFrame(outbox->pushed[i], doc, frame);
            CheckPush(doc, outbox->pushed[i], frame);
        }
    }
    context->MarkClosed();
    route.consumer->OnDisconnect(*context);
}

// What the payload of a multiplexed frame asks, when the frame names a stream and carries an object payload: the
// stream's consumer answers that payload, so its reply echoes the payload's action and request_id. (The
// multiplexer's own refusals echo what they can.)
void ReadMultiplexedRequest(std::string_view frame, Request& request, bool& routed) {
    rapidjson::Document outer;
    if (syncline::ParseUntrustedJson(outer, frame, syncline::kDefaultMaxJsonDepth + 1) || !outer.IsObject()) return;
    const rapidjson::Value* stream = Member(outer, "stream");
    const rapidjson::Value* payload = Member(outer, "payload");
    const std::vector<std::string_view> names = {"posts", "tags", "owned", "api"};
    if (!stream || !stream->IsString() || !payload || !payload->IsObject()) return;
    const std::string_view name(stream->GetString(), stream->GetStringLength());
    if (std::find(names.begin(), names.end(), name) == names.end()) return;
    routed = name == "api";
    request.doc.CopyFrom(*payload, request.doc.GetAllocator());
    request.parsed = true;
    request.action = Member(request.doc, "action");
    request.request_id = Member(request.doc, "request_id");
    request.request_id_too_long =
        request.request_id && syncline::CheckRequestId(request.request_id, syncline::ConnectionLimits{}).has_value();
}

// The stream a multiplexed frame is for, when it names a stream and carries an object payload; "" otherwise.
std::string StreamName(std::string_view frame) {
    Request request;
    bool routed = false;
    ReadMultiplexedRequest(frame, request, routed);
    if (!request.parsed) return std::string();
    rapidjson::Document outer;
    if (syncline::ParseUntrustedJson(outer, frame, syncline::kDefaultMaxJsonDepth + 1) || !outer.IsObject()) {
        return std::string();
    }
    const rapidjson::Value* name = Member(outer, "stream");
    return std::string(name->GetString(), name->GetStringLength());
}

// Checks the frames one multiplexed request got: its replies, then the pushes sent meanwhile.
void CheckMultiplexedReplies(const std::vector<std::string>& replies, const std::vector<std::string>& pushes,
                             bool binary, std::string_view frame) {
    Request request;
    bool routed = false;
    if (!binary) ReadMultiplexedRequest(frame, request, routed);
    for (const std::string& text : replies) {
        rapidjson::Document doc;
        ParseFrame(text, doc, frame);
        if (doc.MemberCount() != 2 || !Member(doc, "stream") || !Member(doc, "payload")) {
            Fail("a multiplexed frame that is not {stream, payload}: " + text, frame);
        }
        CheckEnvelope(*Member(doc, "payload"), text, frame);
        CheckEcho(*Member(doc, "payload"), request, routed, false, frame);
    }
    for (const std::string& text : pushes) {
        rapidjson::Document doc;
        ParseFrame(text, doc, frame);
        if (doc.MemberCount() != 2 || !Member(doc, "stream") || !Member(doc, "payload")) {
            Fail("a multiplexed push that is not {stream, payload}: " + text, frame);
        }
        CheckPush(*Member(doc, "payload"), text, frame);
    }
}

void RunMultiplexed(World& w, bool alice, bool binary, bool pooled, bool batched,
                    const std::vector<std::string_view>& frames, bool as_payloads) {
    syncline::HandshakeRequest handshake{"/ws/", "", {}, "127.0.0.1:40000"};
    if (alice) handshake.headers.emplace_back("authorization", std::string("Bearer ") + kAliceToken);
    auto outbox = std::make_shared<CountingOutbox>();
    std::unique_ptr<syncline::Session> session = (!pooled   ? w.multiplexer
                                                  : batched ? w.batched_multiplexer
                                                            : w.pooled_multiplexer)
                                                     ->Open(handshake, outbox);
    auto send = [&](std::string_view frame) {
        if (binary) {
            session->OnBinary(frame);
        } else {
            session->OnText(frame);
        }
    };
    if (pooled) {
        // Back to back, as a client that does not wait; then until the pool is idle. Every frame gets exactly one
        // reply; when they all go to one stream, in the order of the frames (the multiplexer's own refusals, and
        // other streams, do not wait behind a stream's write).
        std::string stream = binary ? std::string() : StreamName(frames.front());
        for (std::string_view frame : frames) {
            if (StreamName(frame) != stream) stream.clear();
            send(frame);
        }
        // The batcher first: a batched write's end hands the frames behind it to the pool.
        while (w.batcher->stats().queued != 0) std::this_thread::yield();
        while (w.write_pool->busy() != 0) std::this_thread::yield();
        Relay(w, as_payloads);
        if (outbox->close_code != 0) Fail("the multiplexer closed the socket", frames.front());
        const std::vector<std::string> sent = outbox->Sent();
        if (sent.size() != frames.size()) {
            Fail("not exactly one reply per frame: " + std::to_string(sent.size()) + " for " +
                     std::to_string(frames.size()),
                 frames.front());
        }
        for (std::size_t i = 0; i < frames.size(); ++i) {
            // Echoes are checked when the order is known; every reply is checked for its shape.
            CheckMultiplexedReplies({sent[i]}, i + 1 == frames.size() ? outbox->Pushed() : std::vector<std::string>(),
                                    binary || stream.empty(), frames[i]);
        }
        session->OnClose();
        return;
    }
    for (std::string_view frame : frames) {
        const std::size_t sent_before = outbox->sent.size();
        const std::size_t pushed_before = outbox->pushed.size();
        send(frame);
        Relay(w, as_payloads);
        if (outbox->close_code != 0) Fail("the multiplexer closed the socket", frame);
        if (outbox->sent.size() != sent_before + 1) {
            Fail("not exactly one reply: " + std::to_string(outbox->sent.size() - sent_before), frame);
        }
        CheckMultiplexedReplies(
            std::vector<std::string>(outbox->sent.begin() + static_cast<std::ptrdiff_t>(sent_before),
                                     outbox->sent.end()),
            std::vector<std::string>(outbox->pushed.begin() + static_cast<std::ptrdiff_t>(pushed_before),
                                     outbox->pushed.end()),
            binary, frame);
    }
    session->OnClose();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
    (void)argc;
    (void)argv;
    // Core logs a line for some refusals; a fuzzer would print millions.
    syncline::SetLogSink([](syncline::LogLevel, std::string_view) {});
    static std::unique_ptr<World> world = Build();
    g_world = world.get();
    std::atexit(RemoveDir);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    World& w = *g_world;
    const std::uint8_t selector = data[0];
    const std::vector<std::string_view> frames =
        SplitFrames(std::string_view(reinterpret_cast<const char*>(data + 1), size - 1));
    const Route& route = w.routes[(selector & 0x07) % w.routes.size()];
    const bool alice = (selector & 0x08) != 0;
    const bool as_payloads = (selector & 0x20) != 0;
    syncline::User user;
    if (alice) user = syncline::User{true, "1", "alice", {"editors"}, ""};

    w.observer = std::make_unique<syncline::observer::Observer>(w.models, w.bus, w.layout, nullptr);
    w.observer->Start();
    w.registry.target = w.observer.get();
    if (route.consumer) {
        RunDirect(w, route, user, frames, as_payloads);
    } else {
        RunMultiplexed(w, alice, (selector & 0x10) != 0, (selector & 0x40) != 0, (selector & 0x80) != 0, frames,
                       as_payloads);
    }
    if (w.observer->subscription_count() != 0) {
        Fail("subscriptions left behind after the connection closed", frames.front());
    }
    if (w.db->local_commits() != w.commits_after_seed) Reseed(w);
    return 0;
}
