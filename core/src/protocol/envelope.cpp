// The two envelopes (DCRF's, §2-§4, and the routed one, §10): what they read alike (ReadObject) and the one reply
// builder (WriteReply) both write with.

#include <syncline/core/protocol/envelope.hpp>

#include <syncline/core/consumer/serializer.hpp>
#include <syncline/core/protocol/json_input.hpp>
#include <syncline/core/support/log.hpp>

#include <atomic>

#include "json_util.hpp"

namespace syncline {
namespace {

// How an envelope spells a reply.
struct ReplySpelling {
    const char* status_key;         // "response_status" or "status"
    bool route = false;             // writes "route" (echoed, or null) before the status
    bool always_request_id = true;  // writes "request_id" even when absent (null); else only when the request had one
};

constexpr ReplySpelling kDcrfSpelling{"response_status", false, true};
constexpr ReplySpelling kRoutedSpelling{"status", true, false};

// The errors as the reply's JSON list: the messages, then one object with the field errors when there are any.
void WriteErrors(JsonWriter& writer, const ActionErrors& errors) {
    writer.StartArray();
    for (const auto& message : errors.messages) WriteString(writer, message);
    if (!errors.fields.empty()) {
        writer.StartObject();
        for (const auto& [field, messages] : errors.fields) {
            WriteString(writer, field);
            writer.StartArray();
            for (const auto& message : messages) WriteString(writer, message);
            writer.EndArray();
        }
        writer.EndObject();
    }
    writer.EndArray();
}

bool ValidUtf8(const ActionErrors& errors) {
    for (const auto& message : errors.messages) {
        if (!IsValidUtf8(message)) return false;
    }
    for (const auto& [field, messages] : errors.fields) {
        if (!IsValidUtf8(field)) return false;
        for (const auto& message : messages) {
            if (!IsValidUtf8(message)) return false;
        }
    }
    return true;
}

// The one reply builder: {"errors", "data", "action", ["route",] <status>, ["request_id"]}.
std::string WriteReply(const ReplySpelling& spelling, const ReplyEcho& echo, const ActionResult& any_result) {
    const ActionResult& result = EncodableResult(any_result);
    rapidjson::StringBuffer buffer;
    JsonWriter writer(buffer);
    writer.StartObject();
    writer.Key("errors");
    WriteErrors(writer, result.errors);
    writer.Key("data");
    writer.RawValue(result.data.data(), result.data.size(), rapidjson::kObjectType);
    writer.Key("action");
    WriteOrNull(writer, echo.action);
    if (spelling.route) {
        writer.Key("route");
        WriteOrNull(writer, echo.route);
    }
    writer.Key(spelling.status_key);
    writer.Int(result.status);
    if (spelling.always_request_id || echo.request_id) {
        writer.Key("request_id");
        WriteOrNull(writer, echo.request_id);
    }
    for (const auto& [key, json] : result.extra) {
        writer.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
        writer.RawValue(json.data(), json.size(), rapidjson::kObjectType);
    }
    writer.EndObject();
    return std::string(buffer.GetString(), buffer.GetSize());
}

const rapidjson::Value* Member(const rapidjson::Document& doc, const char* key) {
    auto it = doc.FindMember(key);
    return it == doc.MemberEnd() ? nullptr : &it->value;
}

// What both envelopes read alike: a JSON object (iterative, depth-limited, and refusing text that is not valid
// Unicode: text that reached the database unchecked could never be sent out again), its action and request_id.
std::optional<std::string> ReadObject(const Envelope& envelope, std::string_view frame, const ConnectionLimits& limits,
                                      FrameRequest& request) {
    request.refused_status = 400;  // every refusal here is a malformed message
    if (frame.empty()) return envelope.Malformed("empty frame");
    rapidjson::Document& doc = request.doc;
    if (JsonInputError error = ParseUntrustedJson(doc, frame, limits.max_json_depth)) {
        return envelope.Malformed(error.Describe());
    }
    if (!doc.IsObject()) return envelope.Malformed("expected a JSON object, got " + std::string(PythonTypeName(doc)));
    request.refused_status = 0;
    request.echo.request_id = Member(doc, "request_id");
    request.echo.action = Member(doc, "action");
    return std::nullopt;
}

class Dcrf final : public Envelope {
public:
    std::optional<std::string> Read(std::string_view frame, const ConnectionLimits& limits,
                                    FrameRequest& request) const override {
        if (std::optional<std::string> reply = ReadObject(*this, frame, limits, request)) return reply;
        ReplyEcho& echo = request.echo;
        if (std::optional<ActionResult> refused = CheckRequestId(echo.request_id, limits)) {
            request.refused_status = refused->status;
            return Write({echo.action, nullptr, nullptr}, *refused);
        }
        if (!echo.action) {
            request.refused_status = 405;
            return Write({nullptr, echo.request_id, nullptr},
                         ActionResult::Message(405, "Unable to find action in message body."));
        }
        return std::nullopt;
    }

    std::string Write(const ReplyEcho& echo, const ActionResult& result) const override {
        return WriteReply(kDcrfSpelling, echo, result);
    }
};

class Routed final : public Envelope {
public:
    std::optional<std::string> Read(std::string_view frame, const ConnectionLimits& limits,
                                    FrameRequest& request) const override {
        if (std::optional<std::string> reply = ReadObject(*this, frame, limits, request)) return reply;
        ReplyEcho& echo = request.echo;
        // rest_framework_channels reads a missing route as "" (the consumer itself).
        static const rapidjson::Value kNoRoute(rapidjson::StringRef(""));
        echo.route = Member(request.doc, "route");
        if (!echo.route) echo.route = &kNoRoute;
        if (std::optional<ActionResult> refused = CheckRequestId(echo.request_id, limits)) {
            request.refused_status = refused->status;
            return Write({echo.action, nullptr, echo.route}, *refused);
        }
        if (!echo.action) {
            request.refused_status = 404;
            return Write(echo, ActionResult::Message(404, "Unable to find action in message body."));
        }
        if (!echo.route->IsString()) {
            request.refused_status = 400;
            return Write(echo, ActionResult::Message(400, "route must be a string."));
        }
        return std::nullopt;
    }

    std::string Write(const ReplyEcho& echo, const ActionResult& result) const override {
        return WriteReply(kRoutedSpelling, echo, result);
    }
};

}  // namespace

std::string Envelope::Malformed(std::string_view reason) const {
    return Write({}, ActionResult::Message(400, "Malformed message: " + std::string(reason)));
}

const Envelope& DcrfEnvelope() {
    static const Dcrf envelope;
    return envelope;
}

const Envelope& RoutedEnvelope() {
    static const Routed envelope;
    return envelope;
}

std::string ErrorsJson(const ActionErrors& errors) {
    rapidjson::StringBuffer buffer;
    JsonWriter writer(buffer);
    WriteErrors(writer, errors);
    return std::string(buffer.GetString(), buffer.GetSize());
}

std::optional<ActionResult> CheckRequestId(const rapidjson::Value* request_id, const ConnectionLimits& limits) {
    if (!request_id) return std::nullopt;
    // A string's length bounds its JSON text from below, so a long one is refused without writing it out.
    bool long_string = request_id->IsString() && request_id->GetStringLength() + 2 > limits.max_request_id_bytes;
    if (!long_string && JsonText(*request_id).size() <= limits.max_request_id_bytes) return std::nullopt;
    return ActionResult::Message(400, "request_id is too long (the limit is " +
                                          std::to_string(limits.max_request_id_bytes) + " bytes of JSON).");
}

const ActionResult& EncodableResult(const ActionResult& result) {
    if (IsValidUtf8(result.data) && ValidUtf8(result.errors)) return result;
    static std::atomic<std::uint64_t> occurrences{0};
    LogRarely(occurrences, LogLevel::kError,
              "a reply was not valid UTF-8 and could not be sent; answered 500 instead (status " +
                  std::to_string(result.status) + ")");
    static const ActionResult kUnencodable = ActionResult::Message(500, "Internal server error");
    return kUnencodable;
}

}  // namespace syncline
