#pragma once
// One subscription as the observer holds it (Observer::Sub), shared by the registry (observer_registry.cpp) and the
// fan-out (observer.cpp). Private to the observer module.

#include <syncline/observer/observer.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace syncline::observer {

/// The key of a row in the observer's indexes: table and pk.
inline std::string RowKey(const std::string& table, const Value& pk) { return table + '\x1f' + pk.DebugString(); }

struct Observer::Sub {
    enum class Kind { kInstance, kGroup, kList };
    Kind kind = Kind::kInstance;
    std::weak_ptr<ConnectionContext> connection;
    std::uint64_t connection_id = 0;
    GenericConsumer* consumer = nullptr;
    std::string table;
    std::string request_id;
    std::string identity;              // key in ConnectionSubs::by_identity
    std::vector<std::string> targets;  // keys in ConnectionSubs::by_target
    std::uint64_t order = 0;
    std::vector<std::string> channels;
    // Until started (PendingSubscriptions::Start), the events that concern it are held, in order, not pushed.
    std::atomic<bool> held{true};
    std::mutex start_mutex;  // guards held_events, and `held` becoming false
    std::vector<RowEvent> held_events;
    std::atomic<std::int64_t> floor{0};  // groups and lists: versions at or below it are not pushed
    // Groups and lists: rows the subscriber got above the floor (RowKey -> version), and the largest such version; a
    // change of one of them at or below its version is not pushed. Set before `held` turns false, then never changed.
    std::unordered_map<std::string, std::int64_t> row_floors;
    std::int64_t row_floors_max = 0;
    // instance
    Value pk;
    Value lookup_value;
    std::atomic<std::int64_t> last_version{0};
    // group
    std::shared_ptr<const GroupObserver> observer;
    std::string group;
    // list
    std::vector<Filter> filter;
};

}  // namespace syncline::observer
