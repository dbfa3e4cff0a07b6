// Fuzz target "event": the Redis event decoder observer::DecodeEvent (observer/row_event.hpp) over three schemas,
// RowFromJson on what it decodes, and the way the observer renders a decoded event (Serializer::Represent). Anyone who
// can reach the Redis server can publish such payloads, so they are untrusted.
//
// Input: the payload. Checks: a decoded event re-encodes (EncodeEvent) to a payload that decodes again to the same
// event, exactly (version, table, key, old row text, every value of the row, json fields' text included); its old
// row reads (RowFromJson) and its rows render (Serializer::Represent, RowToJson) as valid UTF-8 JSON objects.

#include <syncline/core/protocol/json_input.hpp>
#include <syncline/core/model/schema.hpp>
#include <syncline/core/consumer/serializer.hpp>
#include <syncline/observer/row_event.hpp>

#include <rapidjson/document.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace {

[[noreturn]] void Fail(const char* what) {
    std::fprintf(stderr, "event fuzzer: %s\n", what);
    std::abort();
}

struct Models {
    std::vector<syncline::Schema> schemas;
    std::unordered_map<std::string, const syncline::Schema*> by_table;
    std::vector<syncline::Serializer> serializers;  // one per schema, every field readable
};

const Models& TheModels() {
    static const Models* models = [] {
        auto* m = new Models;
        m->schemas.push_back(syncline::Schema::FromJson("posts", R"({"fields": {
            "id":     {"type": "integer", "primary_key": true},
            "title":  {"type": "text", "max_length": 100},
            "body":   {"type": "text", "blank": true, "default": ""},
            "author": {"type": "text", "max_length": 50, "blank": true, "default": ""},
            "likes":  {"type": "integer", "null": true},
            "public": {"type": "boolean", "default": false}}})"));
        m->schemas.push_back(syncline::Schema::FromJson("tags", R"({"fields": {
            "slug":  {"type": "text", "primary_key": true},
            "label": {"type": "text", "unique": true}}})"));
        m->schemas.push_back(syncline::Schema::FromJson("kinds", R"({"fields": {
            "n":    {"type": "integer", "null": true},
            "r":    {"type": "real", "null": true},
            "t":    {"type": "text", "null": true},
            "b":    {"type": "boolean", "null": true},
            "at":   {"type": "datetime", "null": true},
            "meta": {"type": "json", "null": true}}})"));
        for (const auto& schema : m->schemas) {
            m->by_table.emplace(schema.table(), &schema);
            m->serializers.emplace_back(schema, syncline::SerializerOptions{});
        }
        return m;
    }();
    return *models;
}

void CheckRendered(const std::string& text) {
    if (!syncline::IsValidUtf8(text)) Fail("a rendered row is not valid UTF-8");
    rapidjson::Document doc;
    if (syncline::ParseUntrustedJson(doc, text, syncline::kMaxJsonDepthLimit) || !doc.IsObject()) {
        Fail("a rendered row is not a JSON object");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const Models& models = TheModels();
    const std::string_view payload(reinterpret_cast<const char*>(data), size);
    const std::optional<syncline::observer::RowEvent> first = syncline::observer::DecodeEvent(payload, models.by_table);
    if (!first) return 0;
    const auto at = models.by_table.find(first->table);
    if (at == models.by_table.end()) Fail("decoded an event of an unknown table");
    const syncline::Schema& schema = *at->second;
    const syncline::Serializer& serializer =
        models.serializers[static_cast<std::size_t>(at->second - &models.schemas[0])];

    std::optional<syncline::Row> old_row;
    if (first->old_json) {
        try {
            old_row = syncline::RowFromJson(schema, *first->old_json);
        } catch (const std::invalid_argument&) {
            Fail("the old row of a decoded event does not read");
        }
        CheckRendered(serializer.Represent(*old_row));
        CheckRendered(syncline::RowToJson(schema, *old_row));
    }
    if (first->row) {
        if (first->row->size() != schema.size()) Fail("a decoded row of the wrong width");
        CheckRendered(serializer.Represent(*first->row));
        CheckRendered(syncline::RowToJson(schema, *first->row));
    }

    const std::string encoded = syncline::observer::EncodeEvent(*first, schema);
    if (!syncline::IsValidUtf8(encoded)) Fail("an encoded event is not valid UTF-8");
    const std::optional<syncline::observer::RowEvent> second =
        syncline::observer::DecodeEvent(encoded, models.by_table);
    if (!second) Fail("a re-encoded event does not decode");
    if (second->version != first->version || second->table != first->table || second->pk != first->pk) {
        Fail("a re-encoded event has another version, table or key");
    }
    if (second->old_json != first->old_json) Fail("a re-encoded event has another old row");
    if (second->row.has_value() != first->row.has_value() || (first->row && *first->row != *second->row)) {
        Fail("a re-encoded event has another row");
    }
    return 0;
}
