#pragma once
/// \file
/// Model schemas: a table with typed fields. Built from C++ (FieldSpec values, or ModelMeta in model.hpp) or from a
/// JSON description; both give the same Schema, which storage turns into tables, and serializers into validation.

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <syncline/core/model/value.hpp>

namespace syncline {

/// The types a field can have.
enum class FieldType { kInteger, kReal, kText, kBoolean, kDateTime, kJson };

/// The JSON-description name of a type ("integer", "real", "text", "boolean", "datetime", "json").
std::string_view FieldTypeName(FieldType type);

/// A field declaration. Nullable fields accept null; `blank` lets text be empty; `default_value` fills the field when
/// a write omits it; `choices` restricts the values; `unique` adds a UNIQUE constraint; `max_length` bounds text
/// length in characters (code points); `min_value`/`max_value` bound numbers.
struct FieldSpec {
    std::string name;
    FieldType type = FieldType::kText;
    bool primary_key = false;
    bool nullable = false;
    bool blank = false;
    bool unique = false;
    std::optional<std::size_t> max_length;
    std::optional<Value> default_value;
    std::vector<Value> choices;
    std::optional<double> min_value;
    std::optional<double> max_value;
    /// The database fills the field when an insert leaves it out (a default it computes, such as nextval(...) or
    /// now(), read from an existing table): the field is then optional on create, and a full update keeps it.
    bool database_default = false;
    /// The column's type in an existing table, when values must be compared and written in it rather than in the
    /// type syncline gives the field: "uuid" for a PostgreSQL uuid column (a text field whose values must be UUIDs).
    /// Empty otherwise. Set when fields are read from the database.
    std::string column_type;
    /// An integer primary key the writer supplies: an existing table's key that the database does not fill (no
    /// identity, serial or default). pk_auto() is false for it: the key is writable and required on create.
    bool supplied_key = false;
};

/// A schema declaration was invalid; the message names the table, the field and the problem.
class SchemaError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// An immutable, validated model schema. Copyable; safe to share between threads once built.
class Schema {
public:
    /// Validates and builds a schema. The primary key is the field with primary_key set; when none is declared an
    /// integer field "id" is added first. An integer primary key is auto-incrementing; a text one (e.g. a UUID) is
    /// supplied by the writer. Throws SchemaError on a bad table or field name, a duplicate field, a reserved name,
    /// several primary keys, a nullable primary key, or a default or choice that violates its field.
    static Schema Build(std::string table, std::vector<FieldSpec> fields);

    /// Builds a schema from a JSON description `{"fields": {"id": {"type": "integer", "primary_key": true}, ...}}`.
    /// Field keys: type, primary_key, null, blank, unique, max_length, default, choices, min_value, max_value.
    /// Throws SchemaError naming the key path (e.g. `posts.fields.title.max_length`) and, for an unknown key or
    /// type, the valid choices.
    /// Also `"table": "posts_post"` (the database table, see WithStorageTable) and `"fields": "from_database"` (see
    /// FromDatabase).
    static Schema FromJson(std::string table, std::string_view json_text);

    /// A model whose fields are read from its existing database table when the server opens the database: a marker
    /// (from_database() is true, its only field a placeholder "id") until ResolveFields gives it the table's fields.
    /// Throws SchemaError on a bad model or table name.
    static Schema FromDatabase(std::string table, std::string storage_table);

    /// This schema stored in the database table `storage_table` instead of the table named after the model. Only SQL
    /// uses the storage table; routes, change events, channels and pushes keep the model name (table()). Throws
    /// SchemaError when the name is not a valid identifier or is reserved.
    Schema WithStorageTable(std::string storage_table) const;

    /// This schema (same model and storage table) with `fields`, validated as Build does; from_database() is false.
    Schema ResolveFields(std::vector<FieldSpec> fields) const;

    /// The model's name: what routes, change events, channels and pushes name.
    const std::string& table() const { return table_; }
    /// The database table the model's rows are stored in (the model's name unless WithStorageTable set another).
    const std::string& storage_table() const { return storage_table_; }
    /// True for a model declared with `"fields": "from_database"` whose fields are not read yet.
    bool from_database() const { return from_database_; }
    const std::vector<FieldSpec>& fields() const { return fields_; }
    const FieldSpec& field(std::size_t index) const { return fields_.at(index); }
    std::size_t size() const { return fields_.size(); }

    /// Index of the primary key field.
    std::size_t pk_index() const { return pk_index_; }
    const FieldSpec& pk() const { return fields_[pk_index_]; }
    /// True for an integer primary key assigned by the database on insert (every one but a supplied_key).
    bool pk_auto() const { return pk().type == FieldType::kInteger && !pk().supplied_key; }

    /// Index of a field by name, or nullopt when the schema has no such field.
    std::optional<std::size_t> FieldIndex(std::string_view name) const;

    /// The value of `name` in `row`; throws std::out_of_range for an unknown field.
    const Value& Get(const Row& row, std::string_view name) const;

    /// Checks one value against a field's storage rules (type, null, blank, max_length, choices, bounds).
    /// Returns an empty string when the value fits, else a message in Django REST framework's wording.
    std::string CheckValue(const FieldSpec& field, const Value& value) const;

    /// A stable text that changes whenever the declaration changes (used to record the schema version).
    std::string Fingerprint() const;

private:
    std::string table_;
    std::string storage_table_;
    bool from_database_ = false;
    std::vector<FieldSpec> fields_;
    std::size_t pk_index_ = 0;
    std::unordered_map<std::string, std::size_t> index_;
};

/// True when `name` is a valid identifier for a table or field: [A-Za-z_][A-Za-z0-9_]*, at most 63 characters.
bool IsValidIdentifier(std::string_view name);

/// True when `name` is reserved: an SQL keyword, a SQLite rowid alias, or anything starting with "_syncline".
bool IsReservedName(std::string_view name);

/// True when `text` is an ISO 8601 date-time such as 2024-05-01T12:30:00Z, 2024-05-01T12:30:00.123+02:00 or
/// 2024-05-01 12:30 (a date alone, YYYY-MM-DD, is accepted too).
bool IsIsoDateTime(std::string_view text);

/// True when `text` is one well-formed JSON document.
bool IsValidJson(std::string_view text);

/// Serializes a row as a JSON object keyed by field name (json fields embedded as JSON, booleans as true/false).
std::string RowToJson(const Schema& schema, const Row& row);

/// Serializes a row in the form RowFromJson reads back exactly, as the capture triggers write rows: json fields as
/// JSON strings holding their text (embedded, a json field whose document is itself a string, "[1]" say, would read
/// back as the text [1], and whitespace or number spellings would change), everything else as RowToJson writes it.
/// Rows travel the bus in this form.
std::string RowToCapturedJson(const Schema& schema, const Row& row);

/// Reads a row from a JSON object keyed by field name, as the capture triggers write it (booleans may be 0/1, json
/// fields are text). Fields missing from the object are null. Throws std::invalid_argument on malformed JSON.
Row RowFromJson(const Schema& schema, std::string_view json_text);

}  // namespace syncline
