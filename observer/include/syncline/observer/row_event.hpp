#pragma once
/// \file
/// Row events: what the relay publishes for each changed row, and how they travel on the bus.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <syncline/core/model/change.hpp>
#include <syncline/core/model/schema.hpp>

namespace syncline::observer {

/// The change of one row, after coalescing: the state before the first change the relay read, the state after the
/// last one, and that last change's seq as the version. A created row has no `old_row`, a deleted one no `row`.
struct RowEvent {
    /// The version of the state the event carries: its change's seq, or, when the row was read ahead of it
    /// (ChangeEvent::ahead), the later version the row had (a push is never labelled older than its data).
    std::int64_t version = 0;
    /// The feed seq of the row's last change in the batch: where the relay's cursor and publish acks are. Equal to
    /// `version` except for a row read ahead; then the later change, read afterwards, gives the same version again,
    /// which receivers drop as already seen.
    std::int64_t position = 0;
    std::string table;
    Value pk;
    std::optional<std::string> old_json;  ///< The row before, as the capture trigger wrote it (RowFromJson reads it).
    std::optional<Row> row;               ///< The row after.
};

/// Coalesces a batch of changes (in seq order) into one event per row, ordered by position: several saves of a row
/// give one event with the final state. A row created and deleted within the batch gives its delete (with the image
/// it was deleted in): it existed between two commits, so a client may have read it and subscribed.
std::vector<RowEvent> Coalesce(std::vector<ChangeEvent> changes);

/// Encodes an event as a bus payload: {"v": version, "t": table, "k": pk, "o": old row or null, "r": row or null},
/// the rows in the captured form (RowToCapturedJson), so DecodeEvent gives back the same event.
std::string EncodeEvent(const RowEvent& event, const Schema& schema);

/// Decodes a payload. nullopt for malformed payloads or unknown tables (logged by the caller).
std::optional<RowEvent> DecodeEvent(std::string_view payload,
                                    const std::unordered_map<std::string, const Schema*>& schemas);

/// Where a row's events travel: "<prefix>:<table>:<shard>", shard = hash(pk) mod `shards`.
class ChannelLayout {
public:
    ChannelLayout(std::string prefix, unsigned shards) : prefix_(std::move(prefix)), shards_(shards ? shards : 1) {}
    std::string ForRow(std::string_view table, const Value& pk) const;
    /// Every channel of a table (group and list subscriptions need all its rows).
    std::vector<std::string> ForTable(std::string_view table) const;
    unsigned shards() const { return shards_; }

private:
    std::string prefix_;
    unsigned shards_;
};

}  // namespace syncline::observer
