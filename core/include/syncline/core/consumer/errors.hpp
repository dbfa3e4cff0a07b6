#pragma once
/// \file
/// The errors of a reply as a value (docs/protocol.md §4): messages about the request as a whole (`["Not found"]`) and
/// messages per field (`[{"title": ["This field is required."]}]`). Actions and checks build them; the envelope turns
/// them into the reply's JSON `errors` list, once, at the edge (envelope.hpp).

#include <string>
#include <utility>
#include <vector>

namespace syncline {

/// Field errors in the serializer's field order: field name → every message for it.
using FieldErrors = std::vector<std::pair<std::string, std::vector<std::string>>>;

/// A reply's `errors`. Written as the JSON list `["<message>", ..., {"<field>": ["<message>", ...], ...}]`: the
/// messages, then one object holding the field errors when there are any; `[]` when empty (a success).
struct ActionErrors {
    std::vector<std::string> messages;  ///< Messages about the request as a whole.
    FieldErrors fields;                 ///< Messages per field (DRF's validation errors, `non_field_errors`).

    bool empty() const { return messages.empty() && fields.empty(); }
    bool operator==(const ActionErrors& other) const { return messages == other.messages && fields == other.fields; }
    /// One message: `["message"]`.
    static ActionErrors Message(std::string message) { return {{std::move(message)}, {}}; }
    /// Messages per field: `[{"field": ["message", ...], ...}]`.
    static ActionErrors Fields(FieldErrors fields) { return {{}, std::move(fields)}; }
    /// One message on one field, e.g. DRF's `[{"non_field_errors": ["No data provided"]}]`.
    static ActionErrors Field(std::string field, std::string message) {
        return Fields({{std::move(field), {std::move(message)}}});
    }
};

}  // namespace syncline
