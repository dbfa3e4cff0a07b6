#pragma once
// How a route's list reads rows, shared by `list` (mixins.cpp) and the snapshots of list and group subscriptions
// (observer_mixins.cpp). Private to core.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <syncline/core/consumer/consumer.hpp>

namespace syncline {

/// The queryset of a list request: the consumer's, narrowed by the `filter` argument and ordered by `ordering`, both
/// limited to the fields the consumer declares (anything else answers 400 naming the field).
Result<Query> ListQuery(const GenericConsumer& consumer, const ActionRequest& request);
/// The rows through the consumer's serializer, as a JSON array.
std::string JsonArray(const GenericConsumer& consumer, const std::vector<Row>& rows);
/// A page's limit and first offset from the request, with DCRF's fallbacks.
std::pair<std::int64_t, std::int64_t> PageWindow(const GenericConsumer& consumer, const ActionRequest& request);
/// A page as the paginated list answers it: {"count", "results", "limit", "offset"}.
std::string PageData(std::int64_t count, const std::string& results, std::int64_t limit, std::int64_t offset);

/// How the consumer's `list` answers: no list, one array, one page, or pages streamed one frame each.
enum class ListShape { kNone, kPlain, kPaginated, kStreamed };
ListShape ListShapeOf(const GenericConsumer& consumer);

}  // namespace syncline
