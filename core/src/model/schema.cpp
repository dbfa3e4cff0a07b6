#include <syncline/core/model/schema.hpp>

#include <syncline/core/protocol/json_input.hpp>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>

#include "json_util.hpp"
#include "text_util.hpp"

namespace syncline {
namespace {

// SQLite's keywords (https://sqlite.org/lang_keywords.html). Identifiers are always quoted in generated SQL, so these
// would work, but a field named "order" or "select" is refused: it breaks hand-written SQL and shell sessions.
constexpr std::array<std::string_view, 147> kSqlKeywords = {
    "abort", "action", "add", "after", "all", "alter", "always", "analyze", "and", "as", "asc", "attach",
    "autoincrement", "before", "begin", "between", "by", "cascade", "case", "cast", "check", "collate", "column",
    "commit", "conflict", "constraint", "create", "cross", "current", "current_date", "current_time",
    "current_timestamp", "database", "default", "deferrable", "deferred", "delete", "desc", "detach", "distinct",
    "do", "drop", "each", "else", "end", "escape", "except", "exclude", "exclusive", "exists", "explain", "fail",
    "filter", "first", "following", "for", "foreign", "from", "full", "generated", "glob", "group", "groups",
    "having", "if", "ignore", "immediate", "in", "index", "indexed", "initially", "inner", "insert", "instead",
    "intersect", "into", "is", "isnull", "join", "key", "last", "left", "like", "limit", "match", "materialized",
    "natural", "no", "not", "nothing", "notnull", "null", "nulls", "of", "offset", "on", "or", "order", "others",
    "outer", "over", "partition", "plan", "pragma", "preceding", "primary", "query", "raise", "range", "recursive",
    "references", "regexp", "reindex", "release", "rename", "replace", "restrict", "returning", "right",
    "rollback", "row", "rows", "savepoint", "select", "set", "table", "temp", "temporary", "then", "ties", "to",
    "transaction", "trigger", "unbounded", "union", "unique", "update", "using", "vacuum", "values", "view",
    "virtual", "when", "where", "window", "with", "without"};

constexpr std::array<std::string_view, 6> kTypeNames = {"integer", "real", "text", "boolean", "datetime", "json"};
constexpr std::array<std::string_view, 10> kFieldKeys = {"type",   "primary_key", "null",    "blank",     "unique",
                                                         "max_length", "default", "choices", "min_value", "max_value"};

template <std::size_t N>
std::string JoinChoices(const std::array<std::string_view, N>& items) {
    std::string out;
    for (auto item : items) {
        if (!out.empty()) out += ", ";
        out += item;
    }
    return out;
}

bool IsTextType(FieldType type) {
    return type == FieldType::kText || type == FieldType::kDateTime || type == FieldType::kJson;
}

std::string ChoiceText(const Value& v) { return v.kind() == Value::Kind::kText ? v.AsText() : v.DebugString(); }

// Converts a JSON value from a schema description into a field value. JSON fields keep the document's text.
Value ValueFromJson(const rapidjson::Value& json, FieldType type) {
    if (type == FieldType::kJson) {
        rapidjson::StringBuffer buffer;
        rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
        json.Accept(writer);
        return Value(std::string(buffer.GetString(), buffer.GetSize()));
    }
    if (json.IsNull()) return Value();
    if (json.IsBool()) return Value(json.GetBool());
    if (json.IsInt64()) return Value(static_cast<std::int64_t>(json.GetInt64()));
    if (json.IsNumber()) return Value(json.GetDouble());
    if (json.IsString()) return Value(std::string(json.GetString(), json.GetStringLength()));
    return Value("<" + std::string(json.IsObject() ? "object" : "array") + ">");
}

}  // namespace

void WriteFieldValue(JsonWriter& writer, const FieldSpec& field, const Value& value) {
    switch (value.kind()) {
        case Value::Kind::kNull:
            writer.Null();
            return;
        case Value::Kind::kInteger:
            if (field.type == FieldType::kBoolean) {
                writer.Bool(value.AsInteger() != 0);
            } else {
                writer.Int64(value.AsInteger());
            }
            return;
        case Value::Kind::kReal: {
            double d = value.AsReal();
            if (std::isfinite(d)) {
                writer.Double(d);
            } else {
                writer.Null();
            }
            return;
        }
        case Value::Kind::kBoolean:
            writer.Bool(value.AsBoolean());
            return;
        case Value::Kind::kText: {
            const std::string& text = value.AsText();
            if (field.type == FieldType::kJson && IsValidJson(text)) {
                writer.RawValue(text.data(), text.size(), rapidjson::kObjectType);
            } else if (IsValidUtf8(text)) {
                writer.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
            } else {
                // Bytes that are not UTF-8 (written by another program, or before ingress was checked) would make
                // every frame carrying the row unsendable: the row goes out with U+FFFD in their place.
                std::string valid = ToValidUtf8(text);
                writer.String(valid.data(), static_cast<rapidjson::SizeType>(valid.size()));
            }
            return;
        }
    }
}

namespace {

// Reads one captured column. The trigger writes SQLite's stored value, which for rows written by a shell may not
// match the declared type; convert where it is lossless and keep the stored value otherwise.
Value ReadCaptured(const rapidjson::Value& json, const FieldSpec& field) {
    if (json.IsNull()) return Value();
    switch (field.type) {
        case FieldType::kBoolean:
            if (json.IsBool()) return Value(json.GetBool());
            if (json.IsInt64()) return Value(json.GetInt64() != 0);
            break;
        case FieldType::kInteger:
            if (json.IsInt64()) return Value(static_cast<std::int64_t>(json.GetInt64()));
            break;
        case FieldType::kReal:
            if (json.IsNumber()) return Value(json.GetDouble());
            break;
        case FieldType::kJson:
            if (json.IsString()) return Value(std::string(json.GetString(), json.GetStringLength()));
            return ValueFromJson(json, FieldType::kJson);
        case FieldType::kText:
        case FieldType::kDateTime:
            if (json.IsString()) return Value(std::string(json.GetString(), json.GetStringLength()));
            if (json.IsNumber()) return ValueFromJson(json, FieldType::kJson);  // numeric text, as its digits
            break;
    }
    return ValueFromJson(json, FieldType::kText);
}

}  // namespace

std::string_view FieldTypeName(FieldType type) { return kTypeNames.at(static_cast<std::size_t>(type)); }

bool IsValidIdentifier(std::string_view name) {
    if (name.empty() || name.size() > 63) return false;
    if (!(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_')) return false;
    return std::all_of(name.begin(), name.end(),
                       [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

bool IsReservedName(std::string_view name) {
    std::string lower = AsciiLower(name);
    if (lower.rfind("_syncline", 0) == 0 || lower.rfind("sqlite_", 0) == 0) return true;
    if (lower == "rowid" || lower == "oid" || lower == "_rowid_") return true;
    return std::find(kSqlKeywords.begin(), kSqlKeywords.end(), lower) != kSqlKeywords.end();
}

bool IsIsoDateTime(std::string_view s) {
    auto digits = [&](std::size_t pos, std::size_t n) {
        if (pos + n > s.size()) return false;
        for (std::size_t i = pos; i < pos + n; ++i) {
            if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
        }
        return true;
    };
    auto number = [&](std::size_t pos, std::size_t n) { return std::stoi(std::string(s.substr(pos, n))); };
    // YYYY-MM-DD
    if (!digits(0, 4) || s.size() < 10 || s[4] != '-' || !digits(5, 2) || s[7] != '-' || !digits(8, 2)) return false;
    int month = number(5, 2), day = number(8, 2);
    if (month < 1 || month > 12 || day < 1 || day > 31) return false;
    if (s.size() == 10) return true;
    // [T ]hh:mm[:ss[.f+]]
    if ((s[10] != 'T' && s[10] != ' ') || !digits(11, 2) || s.size() < 16 || s[13] != ':' || !digits(14, 2)) {
        return false;
    }
    if (number(11, 2) > 23 || number(14, 2) > 59) return false;
    std::size_t pos = 16;
    if (pos < s.size() && s[pos] == ':') {
        if (!digits(pos + 1, 2) || number(pos + 1, 2) > 59) return false;
        pos += 3;
        if (pos < s.size() && s[pos] == '.') {
            std::size_t start = ++pos;
            while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) ++pos;
            if (pos == start) return false;
        }
    }
    if (pos == s.size()) return true;
    if (s[pos] == 'Z') return pos + 1 == s.size();
    if (s[pos] == '+' || s[pos] == '-') {
        // +HH:MM, +HHMM or +HH
        if (!digits(pos + 1, 2) || number(pos + 1, 2) > 23) return false;
        std::size_t rest = pos + 3;
        if (rest == s.size()) return true;
        if (s[rest] == ':') ++rest;
        return digits(rest, 2) && number(rest, 2) <= 59 && rest + 2 == s.size();
    }
    return false;
}

bool IsValidJson(std::string_view text) {
    rapidjson::Document doc;
    return !ParseUntrustedJson(doc, text);
}

Schema Schema::Build(std::string table, std::vector<FieldSpec> fields) {
    if (!IsValidIdentifier(table)) {
        throw SchemaError("model \"" + table + "\": invalid table name (use letters, digits and _, at most 63)");
    }
    if (IsReservedName(table)) throw SchemaError("model \"" + table + "\": the table name is reserved");
    auto where = [&](const FieldSpec& f) { return "model \"" + table + "\", field \"" + f.name + "\": "; };

    Schema schema;
    schema.table_ = table;
    schema.storage_table_ = table;
    std::optional<std::size_t> pk;
    for (std::size_t i = 0; i < fields.size(); ++i) {
        const FieldSpec& f = fields[i];
        if (!IsValidIdentifier(f.name)) {
            throw SchemaError(where(f) + "invalid field name (use letters, digits and _, at most 63)");
        }
        if (IsReservedName(f.name)) throw SchemaError(where(f) + "the field name is reserved");
        for (std::size_t j = 0; j < i; ++j) {
            if (AsciiLower(fields[j].name) == AsciiLower(f.name)) throw SchemaError(where(f) + "duplicate field");
        }
        if (f.primary_key) {
            if (pk) throw SchemaError(where(f) + "a second primary key (\"" + fields[*pk].name + "\" is one)");
            if (f.type != FieldType::kInteger && f.type != FieldType::kText) {
                throw SchemaError(where(f) + "a primary key must be integer or text");
            }
            if (f.nullable) throw SchemaError(where(f) + "a primary key cannot be null");
            pk = i;
        }
        if (f.max_length && !IsTextType(f.type)) throw SchemaError(where(f) + "max_length applies to text fields only");
        if (f.max_length && *f.max_length == 0) throw SchemaError(where(f) + "max_length must be positive");
        if ((f.min_value || f.max_value) && f.type != FieldType::kInteger && f.type != FieldType::kReal) {
            throw SchemaError(where(f) + "min_value/max_value apply to integer and real fields only");
        }
        if (f.blank && !IsTextType(f.type)) throw SchemaError(where(f) + "blank applies to text fields only");
    }
    if (!pk) {
        for (const auto& f : fields) {
            if (AsciiLower(f.name) == "id") {
                throw SchemaError(where(f) + "a field named id must be the primary key (set primary_key)");
            }
        }
        FieldSpec id;
        id.name = "id";
        id.type = FieldType::kInteger;
        id.primary_key = true;
        fields.insert(fields.begin(), id);
        pk = 0;
    }
    schema.pk_index_ = *pk;
    schema.fields_ = std::move(fields);
    for (std::size_t i = 0; i < schema.fields_.size(); ++i) schema.index_[schema.fields_[i].name] = i;

    for (const auto& f : schema.fields_) {
        for (const auto& choice : f.choices) {
            FieldSpec unrestricted = f;
            unrestricted.choices.clear();
            std::string problem = schema.CheckValue(unrestricted, choice);
            if (!problem.empty()) throw SchemaError(where(f) + "choice " + choice.DebugString() + ": " + problem);
        }
        if (f.default_value) {
            std::string problem = schema.CheckValue(f, *f.default_value);
            if (!problem.empty()) {
                throw SchemaError(where(f) + "default " + f.default_value->DebugString() + " violates the field: " +
                                  problem);
            }
        }
    }
    return schema;
}

Schema Schema::FromJson(std::string table, std::string_view json_text) {
    rapidjson::Document doc;
    if (JsonInputError error = ParseUntrustedJson(doc, json_text, kMaxJsonDepthLimit)) {
        throw SchemaError(table + ": invalid JSON at offset " + std::to_string(error.offset) + ": " + error.reason);
    }
    if (!doc.IsObject()) throw SchemaError(table + ": expected an object with \"fields\"");
    for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it) {
        std::string key = it->name.GetString();
        if (key != "fields" && key != "table") {
            throw SchemaError(table + "." + key + ": unknown key; valid keys: fields, table");
        }
    }
    std::optional<std::string> storage_table;
    if (auto it = doc.FindMember("table"); it != doc.MemberEnd()) {
        if (!it->value.IsString()) throw SchemaError(table + ".table: expected the name of a database table");
        storage_table = std::string(it->value.GetString(), it->value.GetStringLength());
        if (!IsValidIdentifier(*storage_table) || IsReservedName(*storage_table)) {
            throw SchemaError(table + ".table: \"" + *storage_table +
                              "\" is not a valid table name (letters, digits and _, at most 63, not reserved)");
        }
    }
    auto fields_it = doc.FindMember("fields");
    if (fields_it != doc.MemberEnd() && fields_it->value.IsString()) {
        std::string marker(fields_it->value.GetString(), fields_it->value.GetStringLength());
        if (marker != "from_database") {
            throw SchemaError(table + ".fields: expected an object of field declarations or \"from_database\"");
        }
        std::string stored = storage_table ? *storage_table : table;
        return FromDatabase(std::move(table), std::move(stored));
    }
    if (fields_it == doc.MemberEnd() || !fields_it->value.IsObject() || fields_it->value.MemberCount() == 0) {
        throw SchemaError(table + ".fields: expected a non-empty object of field declarations");
    }
    std::vector<FieldSpec> specs;
    for (auto f = fields_it->value.MemberBegin(); f != fields_it->value.MemberEnd(); ++f) {
        FieldSpec spec;
        spec.name = f->name.GetString();
        std::string path = table + ".fields." + spec.name;
        if (!f->value.IsObject()) throw SchemaError(path + ": expected an object such as {\"type\": \"text\"}");
        const auto& decl = f->value;
        for (auto m = decl.MemberBegin(); m != decl.MemberEnd(); ++m) {
            std::string key = m->name.GetString();
            if (std::find(kFieldKeys.begin(), kFieldKeys.end(), key) == kFieldKeys.end()) {
                throw SchemaError(path + "." + key + ": unknown key; valid keys: " + JoinChoices(kFieldKeys));
            }
        }
        auto type_it = decl.FindMember("type");
        if (type_it == decl.MemberEnd()) {
            throw SchemaError(path + ".type: missing; valid types: " + JoinChoices(kTypeNames));
        }
        std::string type_name = type_it->value.IsString() ? type_it->value.GetString() : "<not a string>";
        auto type_pos = std::find(kTypeNames.begin(), kTypeNames.end(), type_name);
        if (type_pos == kTypeNames.end()) {
            throw SchemaError(path + ".type: unknown type \"" + type_name + "\"; valid types: " +
                              JoinChoices(kTypeNames));
        }
        spec.type = static_cast<FieldType>(type_pos - kTypeNames.begin());
        auto boolean = [&](const char* key, bool& out) {
            auto it = decl.FindMember(key);
            if (it == decl.MemberEnd()) return;
            if (!it->value.IsBool()) throw SchemaError(path + "." + key + ": expected true or false");
            out = it->value.GetBool();
        };
        boolean("primary_key", spec.primary_key);
        boolean("null", spec.nullable);
        boolean("blank", spec.blank);
        boolean("unique", spec.unique);
        auto number = [&](const char* key, std::optional<double>& out) {
            auto it = decl.FindMember(key);
            if (it == decl.MemberEnd()) return;
            if (!it->value.IsNumber()) throw SchemaError(path + "." + key + ": expected a number");
            out = it->value.GetDouble();
        };
        number("min_value", spec.min_value);
        number("max_value", spec.max_value);
        if (auto it = decl.FindMember("max_length"); it != decl.MemberEnd()) {
            if (!it->value.IsUint64() || it->value.GetUint64() == 0) {
                throw SchemaError(path + ".max_length: expected a positive integer");
            }
            spec.max_length = static_cast<std::size_t>(it->value.GetUint64());
        }
        if (auto it = decl.FindMember("default"); it != decl.MemberEnd()) {
            spec.default_value = ValueFromJson(it->value, spec.type);
        }
        if (auto it = decl.FindMember("choices"); it != decl.MemberEnd()) {
            if (!it->value.IsArray() || it->value.Empty()) {
                throw SchemaError(path + ".choices: expected a non-empty array of values");
            }
            for (const auto& c : it->value.GetArray()) spec.choices.push_back(ValueFromJson(c, spec.type));
        }
        specs.push_back(std::move(spec));
    }
    Schema schema = Build(std::move(table), std::move(specs));
    return storage_table ? schema.WithStorageTable(*storage_table) : schema;
}

Schema Schema::FromDatabase(std::string table, std::string storage_table) {
    Schema schema = Build(std::move(table), {}).WithStorageTable(std::move(storage_table));
    schema.from_database_ = true;
    return schema;
}

Schema Schema::WithStorageTable(std::string storage_table) const {
    if (!IsValidIdentifier(storage_table) || IsReservedName(storage_table)) {
        throw SchemaError("model \"" + table_ + "\": \"" + storage_table +
                          "\" is not a valid table name (letters, digits and _, at most 63, not reserved)");
    }
    Schema copy = *this;
    copy.storage_table_ = std::move(storage_table);
    return copy;
}

Schema Schema::ResolveFields(std::vector<FieldSpec> fields) const {
    Schema schema = Build(table_, std::move(fields));
    schema.storage_table_ = storage_table_;
    return schema;
}

std::optional<std::size_t> Schema::FieldIndex(std::string_view name) const {
    auto it = index_.find(std::string(name));
    if (it == index_.end()) return std::nullopt;
    return it->second;
}

const Value& Schema::Get(const Row& row, std::string_view name) const {
    auto index = FieldIndex(name);
    if (!index) throw std::out_of_range("model \"" + table_ + "\" has no field \"" + std::string(name) + "\"");
    return row.at(*index);
}

std::string Schema::CheckValue(const FieldSpec& field, const Value& value) const {
    if (value.IsNull()) return field.nullable ? "" : "This field may not be null.";
    switch (field.type) {
        case FieldType::kInteger:
            if (value.kind() != Value::Kind::kInteger) return "A valid integer is required.";
            break;
        case FieldType::kReal:
            if (value.kind() != Value::Kind::kInteger && value.kind() != Value::Kind::kReal) {
                return "A valid number is required.";
            }
            break;
        case FieldType::kBoolean:
            if (value.kind() != Value::Kind::kBoolean) return "Must be a valid boolean.";
            break;
        case FieldType::kText:
        case FieldType::kDateTime:
        case FieldType::kJson:
            if (value.kind() != Value::Kind::kText) return "Not a valid string.";
            if (value.AsText().empty() && !field.blank && field.type != FieldType::kJson) {
                return "This field may not be blank.";
            }
            if (field.type == FieldType::kDateTime && !value.AsText().empty() && !IsIsoDateTime(value.AsText())) {
                return "Datetime has wrong format. Use one of these formats instead: "
                       "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].";
            }
            if (field.type == FieldType::kJson && !IsValidJson(value.AsText())) return "Value must be valid JSON.";
            if (field.max_length && Utf8Length(value.AsText()) > *field.max_length) {
                return "Ensure this field has no more than " + std::to_string(*field.max_length) + " characters.";
            }
            break;
    }
    if (field.min_value && value.AsReal() < *field.min_value) {
        return "Ensure this value is greater than or equal to " + FormatNumber(*field.min_value) + ".";
    }
    if (field.max_value && value.AsReal() > *field.max_value) {
        return "Ensure this value is less than or equal to " + FormatNumber(*field.max_value) + ".";
    }
    if (!field.choices.empty() &&
        std::find_if(field.choices.begin(), field.choices.end(), [&](const Value& c) {
            return c == value || (c.kind() == Value::Kind::kInteger && value.kind() == Value::Kind::kReal &&
                                  c.AsReal() == value.AsReal());
        }) == field.choices.end()) {
        return "\"" + ChoiceText(value) + "\" is not a valid choice.";
    }
    return "";
}

std::string Schema::Fingerprint() const {
    std::string out = table_;
    if (storage_table_ != table_) out += "@" + storage_table_;
    for (const auto& f : fields_) {
        out += "|" + f.name + ":" + std::string(FieldTypeName(f.type));
        if (f.primary_key) out += ":pk";
        if (f.nullable) out += ":null";
        if (f.unique) out += ":unique";
        if (f.default_value) out += ":default=" + f.default_value->DebugString();
        if (f.database_default) out += ":dbdefault";
        if (!f.column_type.empty()) out += ":column=" + f.column_type;
        if (f.supplied_key) out += ":supplied";
    }
    return out;
}

namespace {

std::string WriteRow(const Schema& schema, const Row& row, bool captured) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    writer.StartObject();
    for (std::size_t i = 0; i < schema.size() && i < row.size(); ++i) {
        const FieldSpec& f = schema.field(i);
        writer.Key(f.name.data(), static_cast<rapidjson::SizeType>(f.name.size()));
        if (captured && f.type == FieldType::kJson && row[i].kind() == Value::Kind::kText) {
            // The text itself, as the capture trigger writes a json column: RowFromJson takes a string as the text.
            static const FieldSpec kAsText{};  // only the type matters to WriteFieldValue: text
            WriteFieldValue(writer, kAsText, row[i]);
        } else {
            WriteFieldValue(writer, f, row[i]);
        }
    }
    writer.EndObject();
    return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace

std::string RowToJson(const Schema& schema, const Row& row) { return WriteRow(schema, row, false); }

std::string RowToCapturedJson(const Schema& schema, const Row& row) { return WriteRow(schema, row, true); }

Row RowFromJson(const Schema& schema, std::string_view json_text) {
    rapidjson::Document doc;
    // Captured rows come from the database (any writer) and from the bus: untrusted. A json column nests one level
    // below the row.
    if (ParseUntrustedJson(doc, json_text, kMaxJsonDepthLimit) || !doc.IsObject()) {
        throw std::invalid_argument("captured row of \"" + schema.table() + "\" is not a JSON object");
    }
    Row row(schema.size());
    for (std::size_t i = 0; i < schema.size(); ++i) {
        const FieldSpec& f = schema.field(i);
        auto it = doc.FindMember(rapidjson::StringRef(f.name.data(), f.name.size()));
        if (it != doc.MemberEnd()) row[i] = ReadCaptured(it->value, f);
    }
    return row;
}

}  // namespace syncline
