#pragma once
/// \file
/// Serializers: a model's rows to JSON (output) and request data to validated values (input), with Django REST
/// framework's coercion rules and messages for each field type.

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <rapidjson/document.h>

#include <syncline/core/consumer/errors.hpp>
#include <syncline/core/model/schema.hpp>
#include <syncline/core/model/value.hpp>

namespace syncline {

/// A per-field validator: returns "" when the (already coerced) value is fine, else the message.
using FieldValidator = std::function<std::string(const Value&)>;

/// What a serializer exposes. Empty `fields` means every schema field.
///
/// `fields` may name `pk` (as Django REST framework's serializers can): the primary key's value under the key `pk`,
/// whatever its column is called, next to that column or instead of it. It is read-only (a `pk` key in input is
/// ignored, as for every read-only field). When the model declares a column named `pk`, the name means that column.
struct SerializerOptions {
    std::vector<std::string> fields;
    std::vector<std::string> read_only;  ///< Output only; ignored in input. An integer primary key always is; `pk` too.
    std::vector<std::string> write_only;  ///< Input only; never in output.
    std::map<std::string, std::vector<FieldValidator>> validators;
};

/// How input is validated: a create (required fields must be there; blank text without a default is filled with
/// ""), a full update (required fields must be there; omitted optional fields keep their value), or a partial update
/// (every field optional).
enum class ValidationMode { kCreate, kUpdate, kPartial };

/// The result of validating input: the values to write, or every field's errors.
struct Validated {
    Assignments values;
    FieldErrors errors;
    bool ok() const { return errors.empty(); }
};

/// A serializer over one schema. Immutable after construction: safe to share between threads.
class Serializer {
public:
    /// Throws std::invalid_argument naming a field that the schema does not declare.
    Serializer(const Schema& schema, SerializerOptions options);

    const Schema& schema() const { return schema_; }
    /// The output representation of a row: a JSON object of the readable fields, in field order.
    std::string Represent(const Row& row) const;
    /// Validates `data` (must be a JSON object) under `mode`. Unknown and read-only keys are ignored.
    Validated Validate(const rapidjson::Value& data, ValidationMode mode) const;
    /// Coerces one JSON value for a field as DRF would; returns the value, or the messages on failure.
    std::pair<Value, std::vector<std::string>> Coerce(const FieldSpec& field, const rapidjson::Value& json) const;
    /// True when the serializer reads and writes this schema field (by its column name: `pk` counts only when the
    /// model declares a column of that name).
    bool Has(std::string_view field) const;
    /// True when input for this field is required (DRF's ModelSerializer rule: no default, not null, not blank).
    static bool IsRequired(const FieldSpec& field);

private:
    struct Entry {
        std::size_t index;  ///< The schema field it reads.
        std::string key;    ///< Its name in JSON: the field's name, or "pk" for the primary key's alias.
        bool read_only;
        bool write_only;
        std::vector<FieldValidator> validators;
    };
    Schema schema_;
    std::vector<Entry> entries_;
};

/// Python's type name of a JSON value, as DRF words its messages: str, int, float, bool, list, dict, NoneType.
std::string_view PythonTypeName(const rapidjson::Value& json);

}  // namespace syncline
