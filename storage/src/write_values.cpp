#include "write_values.hpp"

#include <syncline/core/model/store.hpp>

#include <algorithm>
#include <string>

namespace syncline::storage {
namespace {

// Collects field errors and throws them together: a caller sees every problem of a write at once.
class ErrorList {
public:
    void Add(const std::string& field, std::string message) { errors_.emplace_back(field, std::move(message)); }
    void ThrowIfAny(const std::string& table) const {
        if (errors_.empty()) return;
        std::string message = "invalid values for \"" + table + "\":";
        for (const auto& [field, text] : errors_) message += " " + field + ": " + text;
        throw StoreError(StoreErrc::kInvalid, message, errors_);
    }

private:
    std::vector<std::pair<std::string, std::string>> errors_;
};

// Resolves assignments to (field index, value), rejecting unknown fields and values that violate their field.
std::vector<std::pair<std::size_t, Value>> Resolve(const Schema& schema, const Assignments& values, ErrorList& errors) {
    std::vector<std::pair<std::size_t, Value>> out;
    for (const auto& [name, value] : values) {
        auto index = schema.FieldIndex(name);
        if (!index) {
            errors.Add(name, "Unknown field.");
            continue;
        }
        std::string problem = schema.CheckValue(schema.field(*index), value);
        if (!problem.empty()) errors.Add(name, problem);
        auto same = std::find_if(out.begin(), out.end(), [&](const auto& p) { return p.first == *index; });
        if (same != out.end()) {
            same->second = value;
        } else {
            out.emplace_back(*index, value);
        }
    }
    return out;
}

}  // namespace

std::vector<std::pair<std::size_t, Value>> InsertColumns(const Schema& schema, const Assignments& values) {
    ErrorList errors;
    auto given = Resolve(schema, values, errors);
    std::vector<std::pair<std::size_t, Value>> columns;
    for (std::size_t i = 0; i < schema.size(); ++i) {
        const FieldSpec& f = schema.field(i);
        auto it = std::find_if(given.begin(), given.end(), [&](const auto& p) { return p.first == i; });
        if (it != given.end()) {
            columns.push_back(*it);
        } else if (f.primary_key && schema.pk_auto()) {
            continue;
        } else if (f.default_value) {
            columns.emplace_back(i, *f.default_value);
        } else if (f.database_default) {
            continue;  // the database computes it
        } else if (f.nullable) {
            columns.emplace_back(i, Value());
        } else {
            errors.Add(f.name, "This field is required.");
        }
    }
    errors.ThrowIfAny(schema.table());
    return columns;
}

std::vector<std::pair<std::size_t, Value>> UpdateColumns(const Schema& schema, const Assignments& values, bool full) {
    ErrorList errors;
    auto columns = Resolve(schema, values, errors);
    if (full) {
        for (std::size_t i = 0; i < schema.size(); ++i) {
            const FieldSpec& f = schema.field(i);
            if (f.primary_key) continue;
            if (std::any_of(columns.begin(), columns.end(), [&](const auto& p) { return p.first == i; })) continue;
            if (f.default_value) {
                columns.emplace_back(i, *f.default_value);
            } else if (f.database_default) {
                continue;  // computed by the database on insert; a full update keeps it
            } else if (f.nullable) {
                columns.emplace_back(i, Value());
            } else {
                errors.Add(f.name, "This field is required.");
            }
        }
    }
    errors.ThrowIfAny(schema.table());
    return columns;
}

}  // namespace syncline::storage
