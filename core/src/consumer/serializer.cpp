#include <syncline/core/consumer/serializer.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>

#include "json_util.hpp"
#include "text_util.hpp"

namespace syncline {
namespace {

// DRF's BooleanField accepts these (and 1/0, 1.0/0.0, true/false).
constexpr std::string_view kTrueValues[] = {"t", "T", "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE",
                                            "on", "On", "ON", "1"};
constexpr std::string_view kFalseValues[] = {"f", "F", "n", "N", "no", "No", "NO", "false", "False", "FALSE",
                                             "off", "Off", "OFF", "0"};
constexpr std::string_view kNullValues[] = {"null", "Null", "NULL", ""};

constexpr const char* kDateTimeFormat =
    "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].";

template <std::size_t N>
bool OneOf(std::string_view s, const std::string_view (&set)[N]) {
    return std::find(std::begin(set), std::end(set), s) != std::end(set);
}

std::string_view Trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

std::string_view AsView(const rapidjson::Value& json) { return {json.GetString(), json.GetStringLength()}; }

// Python's str() of a JSON number, which is how DRF's CharField stores numbers and how messages quote input.
std::string NumberText(const rapidjson::Value& json) {
    if (json.IsInt64()) return std::to_string(json.GetInt64());
    if (json.IsUint64()) return std::to_string(json.GetUint64());
    return JsonText(json);
}

// DRF's IntegerField: int(re.sub(r'\.0*\s*$', '', str(data))).
std::optional<std::int64_t> ParseInteger(const rapidjson::Value& json) {
    if (json.IsInt64()) return json.GetInt64();
    if (json.IsDouble()) {
        double d = json.GetDouble();
        if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9.2e18) return static_cast<std::int64_t>(d);
        return std::nullopt;
    }
    if (!json.IsString()) return std::nullopt;
    std::string_view s = Trim(AsView(json));
    if (auto dot = s.find('.'); dot != std::string_view::npos) {
        std::string_view frac = s.substr(dot + 1);
        if (!std::all_of(frac.begin(), frac.end(), [](char c) { return c == '0'; })) return std::nullopt;
        s = s.substr(0, dot);
    }
    std::string digits(s);
    if (digits.empty()) return std::nullopt;
    std::size_t start = (digits[0] == '-' || digits[0] == '+') ? 1 : 0;
    if (start == digits.size() ||
        !std::all_of(digits.begin() + static_cast<std::ptrdiff_t>(start), digits.end(),
                     [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
        return std::nullopt;
    }
    errno = 0;
    long long v = std::strtoll(digits.c_str(), nullptr, 10);
    if (errno == ERANGE) return std::nullopt;
    return static_cast<std::int64_t>(v);
}

// DRF's FloatField: float(data), finite only.
std::optional<double> ParseReal(const rapidjson::Value& json) {
    if (json.IsNumber()) return json.GetDouble();
    if (json.IsBool()) return json.GetBool() ? 1.0 : 0.0;
    if (!json.IsString()) return std::nullopt;
    std::string s(Trim(AsView(json)));
    if (s.empty()) return std::nullopt;
    char* end = nullptr;
    double d = std::strtod(s.c_str(), &end);
    if (end != s.c_str() + s.size() || !std::isfinite(d)) return std::nullopt;
    return d;
}

std::optional<bool> ParseBoolean(const rapidjson::Value& json) {
    if (json.IsBool()) return json.GetBool();
    if (json.IsNumber()) {
        double d = json.GetDouble();
        if (d == 1) return true;
        if (d == 0) return false;
        return std::nullopt;
    }
    if (json.IsString()) {
        std::string_view s = AsView(json);
        if (OneOf(s, kTrueValues)) return true;
        if (OneOf(s, kFalseValues)) return false;
    }
    return std::nullopt;
}

// How DRF quotes an input in "\"x\" is not a valid choice.": str() of the input.
std::string InputText(const rapidjson::Value& json) {
    if (json.IsString()) return std::string(AsView(json));
    if (json.IsBool()) return json.GetBool() ? "True" : "False";
    if (json.IsNumber()) return NumberText(json);
    return JsonText(json);
}

}  // namespace

std::string_view PythonTypeName(const rapidjson::Value& json) {
    if (json.IsString()) return "str";
    if (json.IsBool()) return "bool";
    if (json.IsInt64() || json.IsUint64()) return "int";
    if (json.IsNumber()) return "float";
    if (json.IsArray()) return "list";
    if (json.IsObject()) return "dict";
    return "NoneType";
}

bool Serializer::IsRequired(const FieldSpec& field) {
    bool text = field.type == FieldType::kText || field.type == FieldType::kDateTime;
    return !field.default_value && !field.database_default && !field.nullable && !(text && field.blank);
}

Serializer::Serializer(const Schema& schema, SerializerOptions options) : schema_(schema) {
    std::vector<std::string> names = options.fields;
    if (names.empty()) {
        for (const auto& f : schema.fields()) names.push_back(f.name);
    }
    // "pk" names the primary key unless the model has a column of that name (DRF's ModelSerializer does the same).
    auto pk_alias = [&](const std::string& name) { return name == "pk" && !schema.FieldIndex(name); };
    // The alias may be listed as a field, and as read-only (it is anyway); it is never input, so no write-only or
    // validators.
    auto known = [&](const std::string& name, const char* what) {
        bool alias_allowed = std::string_view(what) == "fields" || std::string_view(what) == "read_only";
        if (!schema.FieldIndex(name) && !(alias_allowed && pk_alias(name))) {
            throw std::invalid_argument("serializer " + std::string(what) + ": model \"" + schema.table() +
                                        "\" has no field \"" + name + "\"");
        }
    };
    for (const auto& n : options.read_only) known(n, "read_only");
    for (const auto& n : options.write_only) known(n, "write_only");
    for (const auto& [n, v] : options.validators) known(n, "validators");
    auto listed = [](const std::vector<std::string>& list, const std::string& name) {
        return std::find(list.begin(), list.end(), name) != list.end();
    };
    for (const auto& name : names) {
        known(name, "fields");
        if (pk_alias(name)) {
            // Output only: the primary key under "pk"; a client sets a text key through its own column.
            Entry e;
            e.index = schema.pk_index();
            e.key = name;
            e.read_only = true;
            e.write_only = false;
            entries_.push_back(std::move(e));
            continue;
        }
        std::size_t index = *schema.FieldIndex(name);
        const FieldSpec& f = schema.field(index);
        Entry e;
        e.index = index;
        e.key = name;
        e.read_only = listed(options.read_only, name) || (f.primary_key && schema.pk_auto());
        e.write_only = listed(options.write_only, name);
        if (auto it = options.validators.find(name); it != options.validators.end()) e.validators = it->second;
        entries_.push_back(std::move(e));
    }
}

bool Serializer::Has(std::string_view field) const {
    return std::any_of(entries_.begin(), entries_.end(),
                       [&](const Entry& e) { return e.key == schema_.field(e.index).name && e.key == field; });
}

std::string Serializer::Represent(const Row& row) const {
    rapidjson::StringBuffer buffer;
    JsonWriter writer(buffer);
    writer.StartObject();
    for (const auto& e : entries_) {
        if (e.write_only) continue;
        const FieldSpec& f = schema_.field(e.index);
        WriteString(writer, e.key);
        WriteFieldValue(writer, f, e.index < row.size() ? row[e.index] : Value());
    }
    writer.EndObject();
    return std::string(buffer.GetString(), buffer.GetSize());
}

std::pair<Value, std::vector<std::string>> Serializer::Coerce(const FieldSpec& f, const rapidjson::Value& json) const {
    auto fail = [](std::string message) { return std::make_pair(Value(), std::vector<std::string>{std::move(message)}); };
    if (json.IsNull()) {
        if (f.nullable) return {Value(), {}};
        return fail("This field may not be null.");
    }
    Value value;
    switch (f.type) {
        case FieldType::kInteger: {
            auto v = ParseInteger(json);
            if (!v) return fail("A valid integer is required.");
            value = Value(*v);
            break;
        }
        case FieldType::kReal: {
            auto v = ParseReal(json);
            if (!v) return fail("A valid number is required.");
            value = Value(*v);
            break;
        }
        case FieldType::kBoolean: {
            if (f.nullable && json.IsString() && OneOf(AsView(json), kNullValues)) return {Value(), {}};
            auto v = ParseBoolean(json);
            if (!v) return fail("Must be a valid boolean.");
            value = Value(*v);
            break;
        }
        case FieldType::kText: {
            std::string text;
            if (json.IsString()) {
                text = std::string(Trim(AsView(json)));  // DRF's CharField trims whitespace by default
            } else if (json.IsNumber()) {
                text = NumberText(json);
            } else {
                return fail("Not a valid string.");
            }
            if (text.empty()) {
                if (f.blank) return {Value(""), {}};
                return fail("This field may not be blank.");
            }
            if (f.max_length && Utf8Length(text) > *f.max_length) {
                return fail("Ensure this field has no more than " + std::to_string(*f.max_length) + " characters.");
            }
            value = Value(std::move(text));
            break;
        }
        case FieldType::kDateTime: {
            if (!json.IsString()) return fail(kDateTimeFormat);
            std::string text(Trim(AsView(json)));
            if (text.empty() && f.blank) return {Value(""), {}};
            if (!IsIsoDateTime(text)) return fail(kDateTimeFormat);
            value = Value(std::move(text));
            break;
        }
        case FieldType::kJson:
            value = Value(JsonText(json));
            break;
    }
    if (!f.choices.empty()) {
        std::string problem = schema_.CheckValue(f, value);
        if (problem.find("is not a valid choice") != std::string::npos) {
            return fail("\"" + InputText(json) + "\" is not a valid choice.");
        }
    }
    if (f.max_value && value.AsReal() > *f.max_value) {
        return fail("Ensure this value is less than or equal to " + FormatNumber(*f.max_value) + ".");
    }
    if (f.min_value && value.AsReal() < *f.min_value) {
        return fail("Ensure this value is greater than or equal to " + FormatNumber(*f.min_value) + ".");
    }
    return {std::move(value), {}};
}

Validated Serializer::Validate(const rapidjson::Value& data, ValidationMode mode) const {
    Validated out;
    for (const auto& e : entries_) {
        if (e.read_only) continue;
        const FieldSpec& f = schema_.field(e.index);
        auto member = data.FindMember(rapidjson::StringRef(f.name.data(), f.name.size()));
        if (member == data.MemberEnd()) {
            if (mode == ValidationMode::kPartial) continue;
            if (IsRequired(f)) {
                out.errors.push_back({f.name, {"This field is required."}});
            } else if (mode == ValidationMode::kCreate && !f.default_value && !f.database_default && !f.nullable) {
                out.values.emplace_back(f.name, Value(""));  // Django's empty default for blank text
            }
            continue;
        }
        auto [value, messages] = Coerce(f, member->value);
        if (messages.empty()) {
            for (const auto& validator : e.validators) {
                std::string message = validator(value);
                if (!message.empty()) messages.push_back(std::move(message));
            }
        }
        if (!messages.empty()) {
            out.errors.push_back({f.name, std::move(messages)});
        } else {
            out.values.emplace_back(f.name, std::move(value));
        }
    }
    return out;
}

}  // namespace syncline
