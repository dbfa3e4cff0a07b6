// The CRUD mixins: values that install DRF's actions into a consumer's action table.

#include <syncline/core/consumer/consumer.hpp>
#include <syncline/core/consumer/permissions.hpp>
#include <syncline/core/consumer/subscriptions.hpp>

#include "list_reads.hpp"

#include <algorithm>
#include <charconv>
#include <memory>
#include <string_view>

namespace syncline {
namespace {

// The `data` argument of create/update/patch: missing or null answers "No data provided" (DCRF crashes there);
// anything but an object answers DRF's "Invalid data" message.
Result<const rapidjson::Value*> DataArgument(const ActionRequest& request) {
    const rapidjson::Value* data = request.Arg("data");
    if (!data || data->IsNull()) {
        return ActionResult::Error(400, ActionErrors::Field("non_field_errors", "No data provided"));
    }
    if (!data->IsObject()) {
        return ActionResult::Error(400, ActionErrors::Field("non_field_errors",
                                                            "Invalid data. Expected a dictionary, but got " +
                                                                std::string(PythonTypeName(*data)) + "."));
    }
    return data;
}

}  // namespace

std::string JsonArray(const GenericConsumer& consumer, const std::vector<Row>& rows) {
    std::string data = "[";
    for (std::size_t i = 0; i < rows.size(); ++i) {
        if (i) data += ",";
        data += consumer.Represent(rows[i]);
    }
    data += "]";
    return data;
}

// The queryset of a list request: the consumer's, narrowed by the `filter` argument and ordered by `ordering`, both
// limited to the fields the consumer declares (anything else answers 400 naming the field).
Result<Query> ListQuery(const GenericConsumer& consumer, const ActionRequest& request) {
    Query query = consumer.GetQueryset(request);
    const auto& options = consumer.options();
    auto allowed = [](const std::vector<std::string>& list, const std::string& field) {
        return std::find(list.begin(), list.end(), field) != list.end();
    };
    Result<std::vector<Filter>> parsed = ParseListFilter(consumer, request.Arg("filter"), request.connection().limits());
    if (!parsed) return parsed.error();
    query.filters.insert(query.filters.end(), parsed->begin(), parsed->end());
    if (const rapidjson::Value* ordering = request.Arg("ordering"); ordering && !ordering->IsNull()) {
        std::vector<std::string> terms;
        if (ordering->IsString()) {
            std::string text(ordering->GetString(), ordering->GetStringLength());
            std::size_t start = 0;
            while (start <= text.size()) {
                std::size_t comma = text.find(',', start);
                std::string term = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
                if (!term.empty()) terms.push_back(term);
                if (comma == std::string::npos) break;
                start = comma + 1;
            }
        } else if (ordering->IsArray()) {
            for (const auto& item : ordering->GetArray()) {
                if (!item.IsString()) return ActionResult::Message(400, "ordering must be a string or a list of strings.");
                terms.emplace_back(item.GetString(), item.GetStringLength());
            }
        } else {
            return ActionResult::Message(400, "ordering must be a string or a list of strings.");
        }
        std::vector<OrderBy> order;
        for (const auto& term : terms) {
            OrderBy o = ParseOrdering(term);
            if (!allowed(options.ordering_fields, o.field)) {
                return ActionResult::Message(400, "Ordering by \"" + o.field + "\" is not allowed.");
            }
            order.push_back(o);
        }
        order.insert(order.end(), query.ordering.begin(), query.ordering.end());
        query.ordering = std::move(order);
    }
    return query;
}

namespace {

ActionResult List(GenericConsumer& consumer, ActionRequest& request) {
    Result<Query> query = ListQuery(consumer, request);
    if (!query) return query.error();
    return ActionResult::Ok(200, JsonArray(consumer, consumer.ListObjects(request, std::move(*query), false).rows));
}

// DCRF's limit/offset fallbacks, and never a crash on null or a non-number.
std::int64_t IntArg(const ActionRequest& request, const char* name, std::int64_t fallback, bool positive) {
    const rapidjson::Value* v = request.Arg(name);
    if (!v) return fallback;
    std::optional<std::int64_t> n;
    if (v->IsInt64()) {
        n = v->GetInt64();
    } else if (v->IsString()) {
        // Digits only, within int64 (an overflow or junk falls back like any bad value, never throws).
        std::string_view s(v->GetString(), v->GetStringLength());
        std::int64_t parsed = 0;
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), parsed);
        if (!s.empty() && s[0] != '-' && ec == std::errc() && end == s.data() + s.size()) n = parsed;
    }
    if (!n || *n < 0 || (positive && *n == 0)) return fallback;
    return *n;
}

}  // namespace

// A page's limit and first offset from the request, with DCRF's fallbacks.
std::pair<std::int64_t, std::int64_t> PageWindow(const GenericConsumer& consumer, const ActionRequest& request) {
    const auto& options = consumer.options();
    std::int64_t page_size = options.page_size > 0 ? options.page_size : 10;
    std::int64_t limit =
        std::min(IntArg(request, "limit", page_size, true), std::max<std::int64_t>(options.max_page_size, 1));
    return {limit, IntArg(request, "offset", 0, false)};
}

std::string PageData(std::int64_t count, const std::string& results, std::int64_t limit, std::int64_t offset) {
    return "{\"count\":" + std::to_string(count) + ",\"results\":" + results + ",\"limit\":" + std::to_string(limit) +
           ",\"offset\":" + std::to_string(offset) + "}";
}

namespace {

ActionResult PaginatedList(GenericConsumer& consumer, ActionRequest& request) {
    Result<Query> query = ListQuery(consumer, request);
    if (!query) return query.error();
    auto [limit, offset] = PageWindow(consumer, request);
    query->limit = limit;
    query->offset = offset;
    // Through ListObjects: object permissions filter the rows and the count, so a page never shows a row retrieve
    // would refuse.
    GenericConsumer::ObjectPage page = consumer.ListObjects(request, std::move(*query), true);
    return ActionResult::Ok(200, PageData(page.count, JsonArray(consumer, page.rows), limit, offset));
}

// One page of a streamed list per step (ActionResult::Continue): the dispatcher runs the next step only when the
// socket has room for it, so a table is never queued whole and a stream waiting for a slow reader holds no thread.
// The count is taken with the first page; the storage orders every query by the primary key after `ordering`, so
// limit/offset pages neither repeat nor skip rows of a table that does not change.
struct StreamPage {
    struct Cursor {
        Query query;
        std::int64_t limit;
        std::int64_t offset;
        std::int64_t count = -1;  // taken with the first page
    };
    std::shared_ptr<Cursor> cursor;

    ActionResult operator()(GenericConsumer& consumer, ActionRequest& request) const {
        Cursor& c = *cursor;
        if (request.stream_cancelled()) return ActionResult::Streamed();
        c.query.offset = c.offset;
        // Object permissions filter every page (and the count), as for the other lists.
        GenericConsumer::ObjectPage page = consumer.ListObjects(request, c.query, c.count < 0);
        if (c.count < 0) c.count = page.count;
        const std::vector<Row>& rows = page.rows;
        if (!request.SendFrame(
                ActionResult::Ok(200, PageData(c.count, JsonArray(consumer, rows), c.limit, c.offset)))) {
            return ActionResult::Streamed();
        }
        c.offset += static_cast<std::int64_t>(rows.size());
        if (static_cast<std::int64_t>(rows.size()) < c.limit || c.offset >= c.count) return ActionResult::Streamed();
        return ActionResult::Continue(*this);
    }
};

// The first step checks the request (a refused filter is one ordinary reply) and sends nothing: the first page, like
// the others, waits for room.
ActionResult StreamedList(GenericConsumer& consumer, ActionRequest& request) {
    Result<Query> query = ListQuery(consumer, request);
    if (!query) return query.error();
    auto [limit, offset] = PageWindow(consumer, request);
    query->limit = limit;
    return ActionResult::Continue(
        StreamPage{std::make_shared<StreamPage::Cursor>(StreamPage::Cursor{std::move(*query), limit, offset})});
}

ActionResult ListCancel(GenericConsumer& consumer, ActionRequest& request) {
    (void)consumer;
    request.connection().CancelStreams();
    return ActionResult::Ok(200);
}

// The row of a detail action: the dispatcher's (needs_object), or looked up here when the handler is called directly.
Result<Row> ObjectOf(const GenericConsumer& consumer, const ActionRequest& request) {
    if (request.has_object()) return request.object();
    return consumer.GetObject(request);
}

ActionResult Retrieve(GenericConsumer& consumer, ActionRequest& request) {
    Result<Row> row = ObjectOf(consumer, request);
    if (!row) return row.error();
    return ActionResult::Ok(200, consumer.Represent(*row));
}

// The owner_field's value for this request's user (DRF's serializer.save(owner=request.user)), or the 403 for a user
// who can own nothing; nullopt when the consumer has no owner_field.
Result<std::optional<Value>> OwnerOnCreate(const GenericConsumer& consumer, const ActionRequest& request) {
    const std::string& field = consumer.options().owner_field;
    if (field.empty()) return std::optional<Value>();
    const Schema& schema = consumer.schema();
    std::optional<Value> owner = OwnerValue(schema.field(*schema.FieldIndex(field)), request.connection().user());
    if (!owner) return ActionResult::Message(403, "You do not have permission to perform this action.");
    return owner;
}

ActionResult Create(GenericConsumer& consumer, ActionRequest& request) {
    // Who may create comes before what they send: an anonymous create is 403 whatever its data.
    Result<std::optional<Value>> owner = OwnerOnCreate(consumer, request);
    if (!owner) return owner.error();
    Result<const rapidjson::Value*> data = DataArgument(request);
    if (!data) return data.error();
    Validated validated = consumer.serializer().Validate(**data, ValidationMode::kCreate);
    if (!validated.ok()) return ActionResult::Error(400, ActionErrors::Fields(std::move(validated.errors)));
    // The serializer treats the owner field as read-only: a value the client sent for it was ignored.
    if (*owner) validated.values.emplace_back(consumer.options().owner_field, std::move(**owner));
    try {
        return ActionResult::Ok(201, consumer.Represent(consumer.PerformCreate(request, validated.values)));
    } catch (const StoreError& e) {
        return WriteErrorReply(consumer, e);
    }
}

ActionResult Save(GenericConsumer& consumer, ActionRequest& request, ValidationMode mode) {
    Result<Row> instance = ObjectOf(consumer, request);
    if (!instance) return instance.error();
    Result<const rapidjson::Value*> data = DataArgument(request);
    if (!data) return data.error();
    Validated validated = consumer.serializer().Validate(**data, mode);
    if (!validated.ok()) return ActionResult::Error(400, ActionErrors::Fields(std::move(validated.errors)));
    try {
        return ActionResult::Ok(200, consumer.Represent(consumer.PerformUpdate(request, *instance, validated.values)));
    } catch (const StoreError& e) {
        return WriteErrorReply(consumer, e);
    }
}

ActionResult Delete(GenericConsumer& consumer, ActionRequest& request) {
    Result<Row> instance = ObjectOf(consumer, request);
    if (!instance) return instance.error();
    consumer.PerformDestroy(request, *instance);
    return ActionResult::Ok(204);
}

}  // namespace

ListShape ListShapeOf(const GenericConsumer& consumer) {
    using Plain = ActionResult (*)(GenericConsumer&, ActionRequest&);
    const ActionSpec* list = consumer.FindAction("list");
    if (!list) return ListShape::kNone;
    const Plain* handler = list->handler.target<Plain>();
    if (handler && *handler == &PaginatedList) return ListShape::kPaginated;
    if (handler && *handler == &StreamedList) return ListShape::kStreamed;
    return ListShape::kPlain;
}

Mixin ListModelMixin() { return {{ActionSpec{"list", List, false, false, false, false}}}; }
Mixin PaginatedModelListMixin() { return {{ActionSpec{"list", PaginatedList, false, false, false, false}}}; }
Mixin StreamedPaginatedListMixin() {
    return {{ActionSpec{"list", StreamedList, false, false, false, true},
             ActionSpec{"list_cancel", ListCancel, false, false, false, false}}};
}
Mixin RetrieveModelMixin() { return {{ActionSpec{"retrieve", Retrieve, true, false, false, false}}}; }
Mixin CreateModelMixin() { return {{ActionSpec{"create", Create, false, true, false, false}}}; }
Mixin UpdateModelMixin() {
    return {{ActionSpec{"update", [](GenericConsumer& c, ActionRequest& r) { return Save(c, r, ValidationMode::kUpdate); },
                        true, true, false, false}}};
}
Mixin PatchModelMixin() {
    return {{ActionSpec{"patch", [](GenericConsumer& c, ActionRequest& r) { return Save(c, r, ValidationMode::kPartial); },
                        true, true, false, false}}};
}
Mixin DeleteModelMixin() { return {{ActionSpec{"delete", Delete, true, true, false, false}}}; }

}  // namespace syncline
