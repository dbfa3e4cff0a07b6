#pragma once
/// \file
/// The model store as consumers see it. storage::Database implements it; core never includes storage.

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <syncline/core/model/query.hpp>
#include <syncline/core/model/schema.hpp>
#include <syncline/core/model/value.hpp>

namespace syncline {

/// What a store failure is: an error enum with its std::error_category (store_category(), name "store"), so
/// `std::error_code ec = StoreErrc::kBusy;` works and ec.message() names the kind.
enum class StoreErrc : int {
    kInvalid = 1,  ///< A value violates its field (see StoreError::field_errors), or a write names an unknown field.
    kConstraint,   ///< The database refused the write (UNIQUE, NOT NULL, CHECK, foreign key).
    kBusy,         ///< Another writer held the lock past the busy timeout.
    kSchema,       ///< The schema conflicts with the database file, or an unknown model or field was named.
    kIo,           ///< Any other database failure.
    kNotFound,     ///< The row an operation needed is gone (e.g. deleted while it was being updated).
    kUnavailable,  ///< The database server cannot be reached now (a networked backend); retrying later may succeed.
};

/// The category of StoreErrc.
const std::error_category& store_category();

/// Makes `errc` a std::error_code of store_category().
std::error_code make_error_code(StoreErrc errc);

/// A store failure (what storage throws). kInvalid carries every field's problem; the others carry the database's
/// message. what() is the message alone; code() the kind as an error code.
class StoreError : public std::runtime_error {
public:
    using Kind = StoreErrc;
    StoreError(StoreErrc kind, std::string message, std::vector<std::pair<std::string, std::string>> field_errors = {})
        : std::runtime_error(std::move(message)), kind_(kind), field_errors_(std::move(field_errors)) {}
    StoreErrc kind() const { return kind_; }
    std::error_code code() const { return make_error_code(kind_); }
    /// For kInvalid: (field, message) for every offending field, in schema order.
    const std::vector<std::pair<std::string, std::string>>& field_errors() const { return field_errors_; }

private:
    StoreErrc kind_;
    std::vector<std::pair<std::string, std::string>> field_errors_;
};

/// Reads and writes of model rows. Implementations document their thread rules (storage::Database: any thread).
class ModelStore {
public:
    virtual ~ModelStore() = default;
    /// The schema of a model; throws StoreError(kSchema) for an unknown one.
    virtual const Schema& Model(std::string_view table) const = 0;
    /// The row whose declared `field` equals `value`, or nullopt.
    virtual std::optional<Row> Get(std::string_view table, std::string_view field, const Value& value) const = 0;
    /// The rows matching `query`; StoreError(kSchema) for an undeclared field.
    virtual std::vector<Row> List(std::string_view table, const Query& query) const = 0;
    /// How many rows match `filters`.
    virtual std::int64_t Count(std::string_view table, const std::vector<Filter>& filters) const = 0;
    /// Inserts a row (defaults filled) and returns it as stored.
    virtual Row Insert(std::string_view table, const Assignments& values) = 0;
    /// Sets the given fields of one row; returns the new row, or nullopt when no row has that key.
    virtual std::optional<Row> Patch(std::string_view table, const Value& pk, const Assignments& values) = 0;
    /// Deletes one row; false when no row has that key.
    virtual bool Delete(std::string_view table, const Value& pk) = 0;
    /// The version of a row: the seq of its latest captured change (for a deleted row, of the change that deleted
    /// it), whatever the change feed still holds. A row the store has no version of (unchanged since capture began,
    /// never existed, or a delete forgotten by Trim) answers its table's version floor: 0 on a database syncline
    /// created, else an upper bound of what it cannot know, so that comparing with a client's `since` errs on the
    /// side of pushing. One indexed lookup.
    virtual std::int64_t RowVersion(std::string_view table, const Value& pk) const = 0;

    /// The latest captured change of a row, as far as the store still knows it.
    struct LastChangeInfo {
        std::int64_t version = 0;  ///< The seq of the change (the row's version after it).
        bool deleted = false;      ///< The change deleted the row.
        std::optional<Row> before; ///< The row as it was before the change, when the store still holds it.
    };
    /// The latest captured change of a row: its version and whether it deleted the row exactly; `before` while the
    /// feed still holds the change. nullopt when the store has no version of the row (see RowVersion).
    virtual std::optional<LastChangeInfo> LastChange(std::string_view table, const Value& pk) const = 0;

    /// The database's epoch: a random text chosen when syncline first migrated it. Versions are comparable only
    /// within one epoch (a recreated database, or one restored from a backup, has another).
    virtual std::string Epoch() const = 0;

    /// Until destroyed, every read of this thread (through this store) sees one snapshot of the database, and
    /// version() is the newest version in it: a change with a larger version is not in the snapshot. A scope opened
    /// while one is open on the same thread joins it. Keep it short: it holds the snapshot's pages.
    class ReadScope {
    public:
        virtual ~ReadScope() = default;
        virtual std::int64_t version() const = 0;
    };
    virtual std::unique_ptr<ReadScope> ReadSnapshot() const = 0;

    /// One row that changed after a version (ChangedSince).
    struct ChangedRow {
        Value pk;
        std::int64_t version = 0;
        bool deleted = false;
    };
    /// The rows of `table` whose version is greater than `since`, each with its version and whether it is deleted;
    /// nullopt when the store cannot tell (`since` is below the table's version floor). Cost: the changes after
    /// `since` while the feed still holds them, else one pass over the table's versions.
    virtual std::optional<std::vector<ChangedRow>> ChangedSince(std::string_view table, std::int64_t since) const = 0;
};

}  // namespace syncline

namespace std {
template <>
struct is_error_code_enum<syncline::StoreErrc> : true_type {};
}  // namespace std
