#pragma once
/// \file
/// Consumers: the DCRF request/reply protocol over a model. A GenericConsumer (DCRF's GenericAsyncAPIConsumer) holds
/// a model, a base queryset, a serializer, a lookup field, permissions and an action table; mixins are values that
/// install actions into that table (no multiple inheritance, no macros, no static registration). One consumer
/// object serves every connection of its route: per-connection state lives in ConnectionContext.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <rapidjson/document.h>

#include <syncline/core/protocol/json_input.hpp>
#include <syncline/core/model/query.hpp>
#include <syncline/core/consumer/serializer.hpp>
#include <syncline/core/protocol/session.hpp>
#include <syncline/core/model/store.hpp>

namespace syncline {

/// The user a connection was authenticated as (anonymous unless an authenticator said otherwise).
struct User {
    bool authenticated = false;
    std::string id;
    std::string name;
    std::vector<std::string> groups;
    /// What the authenticator knew beyond these, as JSON text: a JWT's whole payload; empty otherwise.
    std::string claims;
};

/// What one connection may send or hold (PROTOCOL.md §1, "Limits"). A request over a limit is answered with an error
/// and the socket stays open. On a multiplexed socket each stream is a connection of its own.
struct ConnectionLimits {
    /// Objects and arrays nested deeper than this in a frame: 400 `Malformed message: nesting too deep`.
    std::size_t max_json_depth = kDefaultMaxJsonDepth;
    /// A request_id whose JSON text is longer than this: 400, the request is not run.
    std::size_t max_request_id_bytes = 256;
    /// Subscriptions (instance, group and list, counted one per row, group or list) held at once: a subscribe
    /// beyond it answers 429 and subscribes nothing.
    std::size_t max_subscriptions = 1000;
    /// Values in one `__in` filter list (of `list`, streamed lists and `subscribe_list`): beyond it, 400.
    std::size_t max_filter_values = 1000;
    /// Filter values held by all of the connection's list subscriptions together (an `__in` list counts its values,
    /// any other condition one), which bounds their memory and the observer's work per write: a `subscribe_list`
    /// beyond it answers 429 and subscribes nothing.
    std::size_t max_list_filter_values = 10000;
    /// Detached actions (streamed lists, custom detached actions) queued, running or waiting for room at once: one
    /// more answers 429 naming the limit. 0: no limit.
    std::size_t max_pending_actions = 16;
};

/// Per-connection state: the handshake, the user, the outbox, and the push gate. Owned (shared) by the connection's
/// session; the session's calls are serial. Send and Push are callable from any thread.
class ConnectionContext : public std::enable_shared_from_this<ConnectionContext> {
public:
    ConnectionContext(HandshakeRequest request, std::shared_ptr<Outbox> outbox, User user = {},
                      ConnectionLimits limits = {});
    const HandshakeRequest& request() const { return request_; }
    const ConnectionLimits& limits() const { return limits_; }
    const User& user() const { return user_; }
    void set_user(User user) { user_ = std::move(user); }
    /// Queues a frame (a reply) on this connection.
    void Send(std::string frame) const { outbox_->Send(std::move(frame)); }
    Outbox& outbox() const { return *outbox_; }
    /// A process-unique id of this connection.
    std::uint64_t id() const { return id_; }

    /// Queues a push (any thread). While the connection is answering a request, pushes wait until its reply has been
    /// queued, so a writer's own reply always comes before the pushes its change causes; a deferred push with the
    /// same key is replaced by the newer one.
    void Push(std::string frame, const std::string& key);
    /// Push of a frame shared with other connections (see SharedFrame); same ordering and replacement rules.
    void Push(std::shared_ptr<const SharedFrame> frame, const std::string& key);
    /// The session brackets each request with these (any thread); they nest as a count, so a detached action that
    /// writes holds the gate from its frame until its reply while the socket's next requests come and go. The last
    /// EndRequest sends the pushes deferred meanwhile, in order.
    void BeginRequest();
    void EndRequest();

    /// Marks the connection closed (the session does this first in OnClose; any thread): detached actions see
    /// ActionRequest::cancelled(), streams stop, and waiters in WaitStreamCancelled wake.
    void MarkClosed();
    /// Whether MarkClosed was called (any thread).
    bool closed() const;
    /// The stream generation: CancelStreams moves it on. A stream remembers it when its request arrives.
    std::uint64_t stream_epoch() const;
    /// Queues one frame of a stream started at `epoch`, unless the connection closed or CancelStreams was called since
    /// (any thread). Returns whether the frame was queued.
    bool SendStreamed(std::string frame, std::uint64_t epoch);
    /// Cancels every stream running now (list_cancel; any thread). When it returns no frame of those streams is
    /// queued any more: a SendStreamed in progress has finished and later ones refuse.
    void CancelStreams();
    /// Waits up to `timeout` for the connection to close or the streams of `epoch` to be cancelled; returns true if
    /// either happened (any thread; a streaming handler that loops waits here while the socket's outgoing queue is
    /// full).
    bool WaitStreamCancelled(std::uint64_t epoch, std::chrono::milliseconds timeout);

    /// Counts the connection's detached actions from their frame to their end (queued, running, or a stream waiting
    /// for room). Takes one more unless `limit` are in progress (0: no limit); returns whether it did (any thread).
    bool TryBeginDetached(std::size_t limit);
    /// One detached action ended (any thread).
    void EndDetached();
    /// Detached actions in progress now (any thread).
    std::size_t detached() const { return detached_.load(); }

private:
    HandshakeRequest request_;
    std::shared_ptr<Outbox> outbox_;
    User user_;
    ConnectionLimits limits_;
    std::uint64_t id_;
    PushGate gate_;
    mutable std::mutex stream_mutex_;
    std::condition_variable stream_changed_;
    bool closed_ = false;             // guarded by stream_mutex_
    std::uint64_t stream_epoch_ = 0;  // guarded by stream_mutex_
    int streams_sending_ = 0;         // guarded by stream_mutex_: SendStreamed calls between check and send
    std::atomic<std::size_t> detached_{0};
};

class ActionRequest;
class GenericConsumer;
struct ActionResult;

/// An action's body. Runs on the connection's thread of calls, or, for a detached action, on an executor thread
/// (concurrently with the socket's other requests); may throw (the dispatcher answers 500).
using ActionHandler = std::function<ActionResult(GenericConsumer& consumer, ActionRequest& request)>;

/// What an action answers: a status with data (raw JSON text) or errors (raw JSON list text).
struct ActionResult {
    int status = 200;
    std::string data = "null";
    std::string errors = "[]";
    /// The action sent its frames itself (ActionRequest::SendFrame): no reply follows.
    bool streamed = false;
    /// Set by Continue: the action is not finished, this is its next step.
    ActionHandler next = nullptr;

    /// A success: `data_json` is the payload's JSON text.
    static ActionResult Ok(int status, std::string data_json = "null") { return {status, std::move(data_json), "[]"}; }
    /// A failure with a raw errors list, e.g. `[{"title": ["This field is required."]}]`.
    static ActionResult Error(int status, std::string errors_json) { return {status, "null", std::move(errors_json)}; }
    /// A failure with one message: errors `["message"]`.
    static ActionResult Message(int status, std::string_view message);
    /// What a streaming action returns once it has sent its frames with ActionRequest::SendFrame (or was cancelled):
    /// nothing more is sent.
    static ActionResult Streamed() { return {200, "null", "[]", true, nullptr}; }
    /// What a resumable action returns after each step, e.g. a streamed list after each page: `next` runs later, as a
    /// new task on the executor, once the socket has room for more frames (at most ActionRequest::kStreamQueueBytes
    /// queued) and after the other sockets' waiting tasks had their turn; no thread is held while it waits. It is
    /// dropped, with no reply, once the stream is cancelled (ActionRequest::stream_cancelled()). A step should send at
    /// most one frame; the last step returns any other result (Streamed() after its frames). Not detached (run inline,
    /// e.g. without an executor): the steps run one after the other at once.
    static ActionResult Continue(ActionHandler next) { return {200, "null", "[]", false, std::move(next)}; }
};

/// A value or the error reply that replaces it.
template <class T>
class Result {
public:
    Result(T value) : v_(std::move(value)) {}                 // NOLINT(google-explicit-constructor)
    Result(ActionResult error) : v_(std::move(error)) {}      // NOLINT(google-explicit-constructor)
    explicit operator bool() const { return v_.index() == 0; }
    T& operator*() { return std::get<0>(v_); }
    T* operator->() { return &std::get<0>(v_); }
    const ActionResult& error() const { return std::get<1>(v_); }

private:
    std::variant<T, ActionResult> v_;
};

/// One request: the parsed object (its top-level keys are the arguments) on a connection. Made where the frame
/// arrives (remembering the connection's stream epoch then); a detached action uses it on an executor thread.
class ActionRequest {
public:
    ActionRequest(ConnectionContext& connection, std::string action, const rapidjson::Value& message);
    ConnectionContext& connection() const { return connection_; }
    const std::string& action() const { return action_; }
    const rapidjson::Value& message() const { return message_; }
    /// A top-level argument, or nullptr when absent.
    const rapidjson::Value* Arg(std::string_view name) const;
    /// The request_id, or nullptr when absent.
    const rapidjson::Value* request_id() const { return Arg("request_id"); }

    /// The row of a needs_object action, looked up by the dispatcher before the handler runs; throws
    /// std::logic_error when there is none (the action does not need an object).
    const Row& object() const;
    bool has_object() const { return object_.has_value(); }
    void set_object(Row row) { object_ = std::move(row); }

    /// True once the socket closed. A detached action should poll it and return early; its reply is not sent.
    bool cancelled() const;
    /// True once the socket closed or list_cancel arrived after this request: a streaming action stops.
    bool stream_cancelled() const;
    /// Sends one frame of this request's stream, with the request's action and request_id (a streamed list sends one
    /// per page). In the first step of a detached action (a handler that loops over its frames) it first waits,
    /// polling the cancel flags, while the socket's outgoing queue holds more than kStreamQueueBytes, so a stream
    /// never queues a whole table; such a wait holds an executor thread, so a long stream should send one frame per
    /// step instead (ActionResult::Continue), whose steps run only when there is room and never wait here. Returns
    /// false once the stream is cancelled (stream_cancelled()): the handler should stop and return
    /// ActionResult::Streamed(). Once a request has sent a frame, its final reply (e.g. a 500 mid-stream) goes the
    /// same way, so it is dropped after a cancel.
    bool SendFrame(const ActionResult& frame);
    /// Whether SendFrame was called.
    bool streaming() const { return streaming_; }
    /// Whether the action runs detached (set by the dispatcher; SendFrame only waits for room when it does).
    bool detached() const { return detached_; }
    void set_detached(bool detached) { detached_ = detached; }
    /// Whether a continuation step (ActionResult::Continue) is running (set by the dispatcher): SendFrame never waits.
    bool continued() const { return continued_; }
    void set_continued(bool continued) { continued_ = continued; }

    /// A streaming action waits while the socket has more than this many bytes queued and unwritten.
    static constexpr std::size_t kStreamQueueBytes = 256 * 1024;

private:
    ConnectionContext& connection_;
    std::string action_;
    const rapidjson::Value& message_;
    std::uint64_t stream_epoch_;
    bool detached_ = false;
    bool continued_ = false;
    bool streaming_ = false;
    std::optional<Row> object_;
};

class SubscriptionRegistry;

/// One row of the action table. The flags document the action and drive generic behaviour (permissions audit
/// them; detached actions do not block the socket's other requests).
struct ActionSpec {
    std::string name;
    ActionHandler handler;
    /// Looks up one row by the lookup argument: the dispatcher calls GetObject before the handler (400 when the
    /// argument is missing, 404 when no row matches) and hands the row over as ActionRequest::object().
    bool needs_object = false;
    /// Changes data: a detached writer holds the connection's push gate until its reply, so the reply comes before
    /// the pushes its write causes on the same socket.
    bool writes = false;
    bool subscribes = false;    ///< Adds or removes a subscription.
    /// Runs on the server's executor without blocking the socket's other messages; its reply (or 500 error frame)
    /// is sent when it finishes; it is cancelled when the socket closes (ActionRequest::cancelled()).
    bool detached = false;

    // Chainable flag setters: CustomAction("publish", handler).NeedsObject().Writes().
    ActionSpec& NeedsObject(bool on = true) {
        needs_object = on;
        return *this;
    }
    ActionSpec& Writes(bool on = true) {
        writes = on;
        return *this;
    }
    ActionSpec& Subscribes(bool on = true) {
        subscribes = on;
        return *this;
    }
    ActionSpec& Detached(bool on = true) {
        detached = on;
        return *this;
    }
};

/// Declares a custom action: `consumer.AddAction(CustomAction("publish", Publish).NeedsObject().Writes())`, or in a
/// mixin: `options.mixins.push_back(Mixin{{CustomAction("stats", Stats).Detached()}})`. The handler returns any
/// status and data (ActionResult::Ok, ::Error, ::Message).
ActionSpec CustomAction(std::string name, ActionHandler handler);

/// A mixin: a set of actions to install.
struct Mixin {
    std::vector<ActionSpec> actions;
};

/// DRF's mixins: list → "list"; retrieve → "retrieve"; create → "create" (201); update → "update" (every required
/// field); patch → "patch" (any subset); delete → "delete" (204).
Mixin ListModelMixin();
Mixin RetrieveModelMixin();
Mixin CreateModelMixin();
Mixin UpdateModelMixin();
Mixin PatchModelMixin();
Mixin DeleteModelMixin();
/// DCRF's PaginatedModelListMixin: `list` with `limit`/`offset`, answering {"count", "results", "limit", "offset"}.
/// A bad, null, zero or negative limit falls back to the page size, a bad or negative offset to 0, and the limit is
/// capped by max_page_size. Uses the consumer's page_size (10 when unset).
Mixin PaginatedModelListMixin();
/// DCRF's StreamedPaginatedListMixin: a detached `list` that sends one `list` frame per page, with the request's
/// request_id and data {"count", "results", "limit", "offset"} (the limit/offset arguments and fallbacks of
/// PaginatedModelListMixin), from `offset` until the rows run out (an empty table: one frame with count 0); `filter`
/// and `ordering` work as for `list`. Each page is one step (ActionResult::Continue): a stream waiting for a slow
/// reader holds no thread. Plus `list_cancel`: 200, data null; stops every streamed list running on the socket
/// (frames already queued may still arrive; none is queued after its reply).
Mixin StreamedPaginatedListMixin();

class Permission;

/// Everything a GenericConsumer is made of.
struct ConsumerOptions {
    std::string model;             ///< The model (table) name.
    std::vector<Filter> queryset;  ///< The base queryset: every action sees only rows matching these filters.
    SerializerOptions serializer;
    std::string lookup_field = "pk";  ///< The field detail actions look rows up by; "pk" means the primary key.
    std::string lookup_url_kwarg;     ///< The request argument holding the lookup value; defaults to lookup_field.
    std::vector<std::shared_ptr<const Permission>> permissions;  ///< All must allow; empty means AllowAny.
    /// DRF's `perform_create(serializer.save(owner=request.user))`: when set, `create` stores the authenticated user's
    /// id in this field (OwnerValue: an integer field needs a canonical integer id) and the serializer treats the
    /// field as read-only, so a client's value for it is ignored on create, update and patch (it can never change
    /// through the API). An anonymous user, or one whose id the field cannot hold, gets 403 on create. PerformCreate
    /// receives the value among the validated values. Must name an integer or text field (Bind throws otherwise).
    std::string owner_field;
    std::vector<Mixin> mixins;
    /// Fields `list` may filter on (`{"filter": {"author": "alice", "likes__gte": 3}}`); others answer 400.
    std::vector<std::string> filter_fields;
    /// Fields `list` may order by (`{"ordering": "-id"}` or `"title,-id"` or a list); others answer 400.
    std::vector<std::string> ordering_fields;
    /// Limit/offset pagination of `list` (PaginatedModelListMixin); page_size 0 means no pagination.
    std::int64_t page_size = 0;
    std::int64_t max_page_size = 100;
};

/// DCRF's GenericAsyncAPIConsumer. Subclass to override the hooks; the action table is filled from the mixins.
/// Thread safety: after Bind, the consumer is shared by every connection of its route and must not be mutated;
/// the hooks are called concurrently from several connections and must be thread-safe.
class GenericConsumer {
public:
    explicit GenericConsumer(ConsumerOptions options);
    virtual ~GenericConsumer();
    GenericConsumer(const GenericConsumer&) = delete;
    GenericConsumer& operator=(const GenericConsumer&) = delete;

    /// Attaches the store and, when subscriptions are served, the registry (the server does this once, before the
    /// first connection) and builds the serializer. Throws std::invalid_argument naming an unknown model or field.
    virtual void Bind(ModelStore& store, SubscriptionRegistry* registry = nullptr);
    /// The subscription registry; throws std::logic_error when the server serves no subscriptions.
    SubscriptionRegistry& registry() const;

    /// Adds (or replaces) an action. Before Bind only.
    void AddAction(ActionSpec action);
    const ActionSpec* FindAction(std::string_view name) const;
    const std::vector<ActionSpec>& actions() const { return actions_; }
    const ConsumerOptions& options() const { return options_; }
    ModelStore& store() const;
    const Schema& schema() const;
    const Serializer& serializer() const;
    /// The request argument that carries the lookup value ("pk" by default).
    const std::string& lookup_kwarg() const { return lookup_kwarg_; }

    /// Runs one request to its end: Authorize, then Execute, then the action's continuation steps
    /// (ActionResult::Continue), one after the other, until the final result (or the stream is cancelled).
    ActionResult Dispatch(ActionRequest& request);
    /// Answers one text frame of a connection with exactly one reply frame. The default speaks DCRF's envelope
    /// (HandleTextFrame, PROTOCOL.md §1-§4); a consumer with another envelope (RoutedConsumer, §10) overrides it.
    /// Must not throw. Defined in consumer_endpoint.cpp.
    virtual std::string HandleText(ConnectionContext& connection, std::string_view frame);
    /// Whether this consumer answers frames in an envelope of its own through HandleText (synchronously). False (the
    /// default): the session serves frames as DCRF does (ServeTextFrame: detached actions run on the executor).
    virtual bool HasOwnEnvelope() const { return false; }
    /// The reply to a frame that reached no action (a binary or throttled frame), in this consumer's envelope; by
    /// default `BuildReply(nullptr, result, nullptr)`.
    virtual std::string ErrorReply(const ActionResult& result) const;
    /// Permission (403), then action lookup (405): the action to run, or the error reply. A permission that throws
    /// answers 500 (logged).
    Result<const ActionSpec*> Authorize(const ActionRequest& request) const;
    /// Runs an authorized action: for needs_object actions GetObject first (its 400/404 answers; the row goes to
    /// ActionRequest::object()), then the handler. An exception escaping them answers 500 with a generic message
    /// and is logged with its detail. Thread-safe (detached actions run it on executor threads).
    ActionResult Execute(const ActionSpec& action, ActionRequest& request);
    /// Runs a continuation step of a request (what an action returned with ActionResult::Continue), guarded as
    /// Execute guards a handler: an exception answers 500 and is logged. Thread-safe.
    ActionResult ExecuteStep(const ActionHandler& step, ActionRequest& request);
    /// The connection closed: drops its subscriptions (the session calls this once, last).
    virtual void OnDisconnect(ConnectionContext& connection);
    /// Whether a connection may open at all (every permission's CanConnect).
    virtual bool CanConnect(const ConnectionContext& connection) const;
    /// Whether this request may run (every permission's HasPermission).
    virtual bool HasPermission(const ActionRequest& request) const;
    /// Whether this request may act on this row (every permission's HasObjectPermission; DRF's
    /// check_object_permissions). GetObject and `list` use it; so do pushes, through CanSee.
    bool HasObjectPermission(const ActionRequest& request, const Row& row) const;
    /// The SQL form of HasObjectPermission for this request: every permission's ObjectFilter, concatenated; nullopt
    /// when one of them has none. An empty list: every row.
    std::optional<std::vector<Filter>> ObjectFilter(const ActionRequest& request) const;
    /// Whether the request's connection may see this row: it is in GetQueryset(request) and HasObjectPermission
    /// allows it. Pushes use it: a row the socket may not see is pushed as having left (a delete).
    bool CanSee(const ActionRequest& request, const Row& row) const;

    /// A page of the rows a request may see, and how many there are.
    struct ObjectPage {
        std::vector<Row> rows;
        std::int64_t count = -1;  ///< Visible rows matching the query before limit/offset; -1 when not asked.
    };
    /// The rows of `query` (typically GetQueryset(request), narrowed, ordered, limited) that the request may see:
    /// ObjectFilter is added to the query when there is one; otherwise every row of the query (without its limit
    /// and offset) is read and checked with HasObjectPermission, then limit and offset are applied, so counts and
    /// pages stay exact. `count` asks for ObjectPage::count. List actions must use this, never store().List.
    ObjectPage ListObjects(const ActionRequest& request, Query query, bool count) const;

    // Hooks, as in DRF's GenericAPIView and mixins.
    /// The queryset for a request: by default the base queryset.
    virtual Query GetQueryset(const ActionRequest& request) const;
    /// The row addressed by the lookup argument within GetQueryset: 400 when the argument is missing, 404 when no
    /// row matches (also for a value of the wrong type), 403 when HasObjectPermission refuses it. An override should
    /// call this one, or check HasObjectPermission itself.
    virtual Result<Row> GetObject(const ActionRequest& request) const;
    /// Saves a new row from validated values.
    virtual Row PerformCreate(const ActionRequest& request, const Assignments& values);
    /// Saves validated values onto an existing row (update and patch).
    virtual Row PerformUpdate(const ActionRequest& request, const Row& instance, const Assignments& values);
    /// Deletes a row.
    virtual void PerformDestroy(const ActionRequest& request, const Row& instance);

    /// The row's serialized form, as pushed and replied.
    std::string Represent(const Row& row) const { return serializer().Represent(row); }

private:
    ConsumerOptions options_;
    std::string lookup_kwarg_;
    std::vector<ActionSpec> actions_;
    ModelStore* store_ = nullptr;
    SubscriptionRegistry* registry_ = nullptr;
    std::unique_ptr<Serializer> serializer_;
};

/// Converts a lookup argument to a value of the lookup field, as Django's queryset filter would: for an integer
/// field, an integer, an integral number or a string of digits; for text, a string or a number's text. nullopt for
/// anything else (the caller answers 404).
std::optional<Value> LookupValue(const FieldSpec& field, const rapidjson::Value& json);

/// Maps a store failure during a write to its reply: UNIQUE violations become a 400 on the field, in DRF's wording
/// ("posts with this title already exists."); invalid values a 400 with every field; busy 503; anything else rethrows.
ActionResult WriteErrorReply(const GenericConsumer& consumer, const StoreError& error);

/// Builds a reply frame: {"errors", "data", "action", "response_status", "request_id"}. `action` and `request_id`
/// are echoed verbatim (null when absent).
std::string BuildReply(const rapidjson::Value* action, const ActionResult& result, const rapidjson::Value* request_id);

/// Prepends mixins to a consumer's options (the concrete consumers below use it).
ConsumerOptions WithMixins(ConsumerOptions options, std::vector<Mixin> mixins);

/// A GenericConsumer with a fixed set of mixins, installed before the options' own.
template <Mixin (*... kMixins)()>
class MixinConsumer : public GenericConsumer {
public:
    explicit MixinConsumer(ConsumerOptions options) : GenericConsumer(WithMixins(std::move(options), {kMixins()...})) {}
};

// The concrete combinations of Django REST framework's generics table. Construct them, or subclass to override hooks.
using CreateAPIConsumer = MixinConsumer<CreateModelMixin>;
using ListAPIConsumer = MixinConsumer<ListModelMixin>;
using RetrieveAPIConsumer = MixinConsumer<RetrieveModelMixin>;
/// update and patch, as DRF's UpdateAPIView answers PUT and PATCH.
using UpdateAPIConsumer = MixinConsumer<UpdateModelMixin, PatchModelMixin>;
using DestroyAPIConsumer = MixinConsumer<DeleteModelMixin>;
using ListCreateAPIConsumer = MixinConsumer<ListModelMixin, CreateModelMixin>;
using RetrieveUpdateAPIConsumer = MixinConsumer<RetrieveModelMixin, UpdateModelMixin, PatchModelMixin>;
using RetrieveDestroyAPIConsumer = MixinConsumer<RetrieveModelMixin, DeleteModelMixin>;
using RetrieveUpdateDestroyAPIConsumer =
    MixinConsumer<RetrieveModelMixin, UpdateModelMixin, PatchModelMixin, DeleteModelMixin>;
/// Everything: list, retrieve, create, update, patch, delete.
using ModelConsumer = MixinConsumer<ListModelMixin, RetrieveModelMixin, CreateModelMixin, UpdateModelMixin,
                                    PatchModelMixin, DeleteModelMixin>;

}  // namespace syncline
