#pragma once
/// \file
/// Routed action handlers (docs/protocol.md §10), in the style of rest_framework_channels: a RoutedConsumer holds an
/// ordered list of route patterns (regular expressions with named groups), each bound to a handler. A request
/// `{"action": "retrieve", "route": "posts/1/"}` runs on the first handler whose pattern matches the route, with the
/// named groups as top-level arguments (`pk` = "1"), and is answered in that library's envelope:
/// `{"errors": [], "data": ..., "action": "retrieve", "route": "posts/1/", "status": 200}`.
///
/// Handlers are GenericConsumers: the generic handler classes below are consumers whose mixins install that library's
/// action names (`retrieve`, `list`, `create`, `update`, `partial_update`, `remove`), so the CRUD logic, hooks,
/// serializers and permissions are those of every other consumer.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include <syncline/core/consumer/consumer.hpp>

namespace syncline {

/// rest_framework_channels' `partial_update`: PatchModelMixin's action under that name (any subset of fields, 200).
Mixin PartialUpdateModelMixin();
/// rest_framework_channels' `remove`: DeleteModelMixin's action under that name (204, `data: null`).
Mixin RemoveModelMixin();

// The generic action handlers of rest_framework_channels' table (its generics module), as consumers with the
// matching mixins. Construct them with ConsumerOptions (model, serializer, queryset, lookup field, permissions), or
// subclass them to override hooks.
/// create
using CreateAPIActionHandler = MixinConsumer<CreateModelMixin>;
/// list
using ListAPIActionHandler = MixinConsumer<ListModelMixin>;
/// retrieve
using RetrieveAPIActionHandler = MixinConsumer<RetrieveModelMixin>;
/// update, partial_update
using UpdateAPIActionHandler = MixinConsumer<UpdateModelMixin, PartialUpdateModelMixin>;
/// remove
using DestroyAPIActionHandler = MixinConsumer<RemoveModelMixin>;
/// list, create
using ListCreateAPIActionHandler = MixinConsumer<ListModelMixin, CreateModelMixin>;
/// retrieve, update, partial_update
using RetrieveUpdateAPIActionHandler = MixinConsumer<RetrieveModelMixin, UpdateModelMixin, PartialUpdateModelMixin>;
/// retrieve, remove
using RetrieveDestroyAPIActionHandler = MixinConsumer<RetrieveModelMixin, RemoveModelMixin>;
/// retrieve, update, partial_update, remove
using RetrieveUpdateDestroyAPIActionHandler =
    MixinConsumer<RetrieveModelMixin, UpdateModelMixin, PartialUpdateModelMixin, RemoveModelMixin>;

/// The handler class names the JSON config accepts ("handler"), in the order of the table above.
const std::vector<std::string>& RoutedHandlerNames();
/// The mixins of a handler class name; throws std::out_of_range for an unknown one.
std::vector<Mixin> RoutedHandlerMixins(const std::string& name);

/// One route pattern and the handler it dispatches to.
struct RoutePattern {
    /// A Python-style regular expression, as rest_framework_channels users write them for `re_path`:
    /// `posts/(?P<pk>[^/]+)/$`. Named groups are `(?P<name>...)` (or `(?<name>...)`); `(?P=name)` refers back.
    std::string pattern;
    std::shared_ptr<GenericConsumer> handler;
};

/// Whether a pattern is usable: nullopt when it is, else the reason (Boost.Regex's message, a repeated or invalid
/// group name).
std::optional<std::string> RoutePatternError(const std::string& pattern);

/// A consumer that dispatches by route (rest_framework_channels' AsyncAPIConsumer with `routepatterns`). Serve it like
/// any consumer (Server::Route): the server binds its handlers. Thread safety: immutable after construction, shared
/// by every connection of its route; the handlers follow GenericConsumer's rules.
///
/// Matching follows Django's `re_path` as that library uses it: patterns are tried in order with a *search* (a
/// pattern matches anywhere in the route unless anchored with `^`; `$` anchors the end), the route is matched as
/// sent (no leading slash is added or removed), and named groups that took part in the match become top-level
/// arguments of the request, overriding keys of the same name the client sent.
///
/// It composes: its envelope is RoutedEnvelope() (which reads the frame and writes every reply), its action table is
/// one default action that routes any action name. Checks, in order, each answered in the routed envelope with the
/// socket left open: a frame that is not a JSON object → 400 `Malformed message: <reason>`; no `action` → 404
/// `Unable to find action in message body.`; a `route` that is not a string → 400 `route must be a string.` (a missing
/// route is ""); this consumer's own permissions → 403; an action that is not a string → 405; no pattern matches →
/// 404 `No route matches "<route>".`; then the handler's Dispatch: its permissions (403), the action lookup (405
/// `Method "<action>" not allowed.`), the action. A handler's streamed list sends its pages in DCRF's envelope, then
/// one routed reply with status 200 and null data.
class RoutedConsumer : public GenericConsumer {
public:
    /// `permissions` are this consumer's own (checked at the handshake and before routing); each handler has its own
    /// in its options. Throws std::invalid_argument naming the first invalid pattern or a null handler.
    explicit RoutedConsumer(std::vector<RoutePattern> routes,
                            std::vector<std::shared_ptr<const Permission>> permissions = {});
    ~RoutedConsumer() override;

    /// Binds every handler; errors name the pattern.
    void Bind(ModelStore& store, SubscriptionRegistry* registry = nullptr) override;
    /// Every handler's OnDisconnect (drops the connection's subscriptions).
    void OnDisconnect(ConnectionContext& connection) override;

    const std::vector<RoutePattern>& routes() const { return routes_; }

private:
    /// The default action: runs the request on the first handler whose pattern matches its route.
    ActionResult Route(ActionRequest& request) const;

    struct Compiled;
    std::vector<RoutePattern> routes_;
    std::vector<std::unique_ptr<const Compiled>> compiled_;  // one per route, same order
};

}  // namespace syncline
