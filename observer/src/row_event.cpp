#include <syncline/observer/row_event.hpp>

#include <syncline/core/protocol/json_input.hpp>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <map>

namespace syncline::observer {
namespace {

std::string KeyOf(const std::string& table, const Value& pk) { return table + '\x1f' + pk.DebugString(); }

void WriteKey(rapidjson::Writer<rapidjson::StringBuffer>& w, const Value& pk) {
    if (pk.kind() == Value::Kind::kInteger) {
        w.Int64(pk.AsInteger());
    } else if (pk.kind() == Value::Kind::kText) {
        w.String(pk.AsText().data(), static_cast<rapidjson::SizeType>(pk.AsText().size()));
    } else {
        std::string text = pk.DebugString();
        w.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
    }
}

}  // namespace

std::vector<RowEvent> Coalesce(std::vector<ChangeEvent> changes) {
    std::vector<RowEvent> events;
    std::unordered_map<std::string, std::size_t> index;  // row key -> position in events
    std::vector<bool> existed_before;                    // per event: the first change was not an insert
    for (auto& change : changes) {
        std::string key = KeyOf(change.table, change.pk);
        auto it = index.find(key);
        if (it == index.end()) {
            index.emplace(key, events.size());
            RowEvent e;
            e.table = std::move(change.table);
            e.pk = std::move(change.pk);
            e.old_json = change.op == ChangeOp::kInsert ? std::nullopt : std::move(change.old_json);
            existed_before.push_back(change.op != ChangeOp::kInsert);
            events.push_back(std::move(e));
            it = index.find(key);
        }
        RowEvent& e = events[it->second];
        e.position = change.seq;
        e.version = change.op != ChangeOp::kDelete && change.ahead ? change.row_version : change.seq;
        // A row created in this batch and deleted later in it was visible between those two commits (a client may
        // have read it and subscribed): its delete is published, with the image it was deleted in.
        if (change.op == ChangeOp::kDelete && !existed_before[it->second]) e.old_json = std::move(change.old_json);
        e.row = change.op == ChangeOp::kDelete ? std::nullopt : std::move(change.row);
    }
    std::vector<RowEvent> out;
    out.reserve(events.size());
    for (std::size_t i = 0; i < events.size(); ++i) {
        out.push_back(std::move(events[i]));
    }
    std::sort(out.begin(), out.end(), [](const RowEvent& a, const RowEvent& b) { return a.position < b.position; });
    return out;
}

std::string EncodeEvent(const RowEvent& event, const Schema& schema) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
    w.StartObject();
    w.Key("v");
    w.Int64(event.version);
    w.Key("t");
    w.String(event.table.data(), static_cast<rapidjson::SizeType>(event.table.size()));
    w.Key("k");
    WriteKey(w, event.pk);
    w.Key("o");
    if (event.old_json) {
        w.RawValue(event.old_json->data(), event.old_json->size(), rapidjson::kObjectType);
    } else {
        w.Null();
    }
    w.Key("r");
    if (event.row) {
        // The captured form: DecodeEvent's RowFromJson gives back exactly this row (json fields included).
        std::string row = RowToCapturedJson(schema, *event.row);
        w.RawValue(row.data(), row.size(), rapidjson::kObjectType);
    } else {
        w.Null();
    }
    w.EndObject();
    return std::string(buffer.GetString(), buffer.GetSize());
}

std::optional<RowEvent> DecodeEvent(std::string_view payload,
                                    const std::unordered_map<std::string, const Schema*>& schemas) {
    rapidjson::Document doc;
    // Events come from Redis, which anyone with its address may publish to: untrusted. A row nests two levels below.
    if (ParseUntrustedJson(doc, payload, kMaxJsonDepthLimit) || !doc.IsObject()) return std::nullopt;
    auto v = doc.FindMember("v");
    auto t = doc.FindMember("t");
    auto k = doc.FindMember("k");
    auto o = doc.FindMember("o");
    auto r = doc.FindMember("r");
    if (v == doc.MemberEnd() || !v->value.IsInt64() || t == doc.MemberEnd() || !t->value.IsString() ||
        k == doc.MemberEnd() || o == doc.MemberEnd() || r == doc.MemberEnd()) {
        return std::nullopt;
    }
    RowEvent e;
    e.version = v->value.GetInt64();
    e.table.assign(t->value.GetString(), t->value.GetStringLength());
    auto schema_it = schemas.find(e.table);
    if (schema_it == schemas.end()) return std::nullopt;
    const Schema& schema = *schema_it->second;
    if (k->value.IsInt64()) {
        e.pk = Value(static_cast<std::int64_t>(k->value.GetInt64()));
    } else if (k->value.IsString()) {
        e.pk = Value(std::string(k->value.GetString(), k->value.GetStringLength()));
    } else {
        return std::nullopt;
    }
    auto text_of = [](const rapidjson::Value& value) {
        rapidjson::StringBuffer b;
        rapidjson::Writer<rapidjson::StringBuffer> w(b);
        value.Accept(w);
        return std::string(b.GetString(), b.GetSize());
    };
    try {
        if (o->value.IsObject()) e.old_json = text_of(o->value);
        if (r->value.IsObject()) e.row = RowFromJson(schema, text_of(r->value));
    } catch (const std::invalid_argument&) {
        return std::nullopt;
    }
    return e;
}

std::string ChannelLayout::ForRow(std::string_view table, const Value& pk) const {
    // FNV-1a of the key's text: stable across processes and builds (std::hash is not).
    std::string key = pk.kind() == Value::Kind::kText ? pk.AsText() : pk.DebugString();
    std::uint64_t h = 1469598103934665603ull;
    for (unsigned char c : key) {
        h ^= c;
        h *= 1099511628211ull;
    }
    std::string channel = prefix_;
    channel += ':';
    channel += table;
    channel += ':';
    channel += std::to_string(h % shards_);
    return channel;
}

std::vector<std::string> ChannelLayout::ForTable(std::string_view table) const {
    std::vector<std::string> out;
    for (unsigned i = 0; i < shards_; ++i) out.push_back(prefix_ + ":" + std::string(table) + ":" + std::to_string(i));
    return out;
}

}  // namespace syncline::observer
