#pragma once
/// \file
/// The mixins of Django REST framework and DCRF, as values: each returns the actions it installs into a consumer's
/// action table (consumer.hpp composes them into the ready-made consumers). The observer mixins (§6-§7) are in
/// subscriptions.hpp.

#include <syncline/core/consumer/action.hpp>

namespace syncline {

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

}  // namespace syncline
