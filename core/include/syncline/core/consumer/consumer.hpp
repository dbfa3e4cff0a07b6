#pragma once
/// \file
/// Consumers: the DCRF request/reply protocol over a model. A GenericConsumer (DCRF's GenericAsyncAPIConsumer) holds
/// a model, a base queryset, a serializer, a lookup field, permissions and an action table; mixins are values that
/// install actions into that table (no multiple inheritance, no macros, no static registration). One consumer
/// object serves every connection of its route: per-connection state lives in ConnectionContext (connection.hpp).
/// Requests, results and the action table are in action.hpp, the model mixins in mixins.hpp.

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include <syncline/core/consumer/action.hpp>
#include <syncline/core/consumer/connection.hpp>
#include <syncline/core/consumer/mixins.hpp>
#include <syncline/core/consumer/serializer.hpp>
#include <syncline/core/model/query.hpp>
#include <syncline/core/model/store.hpp>
#include <syncline/core/support/action_meter.hpp>

namespace syncline {

class Envelope;
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
    /// How frames are read and replies written on this consumer's route (envelope.hpp); nullptr: DCRF's
    /// (DcrfEnvelope()). A RoutedConsumer speaks RoutedEnvelope().
    const Envelope* envelope = nullptr;
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
    /// The action named `name`, else the default action (SetDefaultAction), else nullptr.
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
    /// Answers one text frame of a connection, synchronously, in this consumer's envelope: HandleTextFrame (the reply
    /// frame; "" after a streamed action). Must not throw. Defined in protocol/frame_dispatch.cpp.
    std::string HandleText(ConnectionContext& connection, std::string_view frame);
    /// The envelope this consumer's route speaks: ConsumerOptions::envelope, or DcrfEnvelope() when that is null.
    const Envelope& envelope() const;
    /// Where the dispatcher reports each answered request (metrics); null: nowhere. Set before serving (the Server
    /// sets one per route); read from any thread afterwards.
    void SetActionMeter(std::shared_ptr<ActionMeter> meter) { meter_ = std::move(meter); }
    ActionMeter* action_meter() const { return meter_.get(); }
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

protected:
    /// The action every name without one of its own runs (a RoutedConsumer routes them all); before Bind only.
    void SetDefaultAction(ActionSpec action) { default_action_ = std::move(action); }

private:
    ConsumerOptions options_;
    std::string lookup_kwarg_;
    std::vector<ActionSpec> actions_;
    std::optional<ActionSpec> default_action_;
    ModelStore* store_ = nullptr;
    SubscriptionRegistry* registry_ = nullptr;
    std::unique_ptr<Serializer> serializer_;
    std::shared_ptr<ActionMeter> meter_;
};

/// Converts a lookup argument to a value of the lookup field, as Django's queryset filter would: for an integer
/// field, an integer, an integral number or a string of digits; for text, a string or a number's text. nullopt for
/// anything else (the caller answers 404).
std::optional<Value> LookupValue(const FieldSpec& field, const rapidjson::Value& json);

/// Maps a store failure during a write to its reply: UNIQUE violations become a 400 on the field, in DRF's wording
/// ("posts with this title already exists."); invalid values a 400 with every field; busy or unavailable 503; anything
/// else rethrows.
ActionResult WriteErrorReply(const GenericConsumer& consumer, const StoreError& error);

/// The reply to a store failure that retrying later may cure, whatever the action: 503 "The database is busy. Try
/// again." (kBusy) or 503 "The database is unavailable. Try again." (kUnavailable: a database server that cannot be
/// reached); nullopt for any other failure.
std::optional<ActionResult> RetryLaterReply(const StoreError& error);

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
