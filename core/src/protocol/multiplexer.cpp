// Multiplexing (docs/protocol.md §9): one socket, several streams, each served by a child Endpoint's Session.

#include <syncline/core/protocol/multiplexer.hpp>

#include <syncline/core/consumer/consumer.hpp>
#include <syncline/core/protocol/consumer_endpoint.hpp>
#include <syncline/core/protocol/envelope.hpp>
#include <syncline/core/protocol/close_code.hpp>
#include <syncline/core/support/log.hpp>

#include <rapidjson/document.h>

#include <algorithm>
#include <mutex>
#include <stdexcept>

#include "json_util.hpp"

namespace syncline {
namespace {

// The Outbox a stream's child session writes to: wraps each frame in the stream's envelope.
class StreamOutbox final : public Outbox {
public:
    StreamOutbox(std::shared_ptr<Outbox> socket, const std::string& name)
        : socket_(std::move(socket)),
          head_("{\"stream\":" + JsonString(name) + ",\"payload\":"),
          key_prefix_(name + '\n') {}

    void Send(std::string frame) override { socket_->Send(Wrap(frame)); }
    // Pushes of every stream wait in the socket's one queue, held while the socket answers any frame (the
    // MultiplexSession holds them too): a reply is queued before the pushes its own change causes even when another
    // stream subscribed to the row.
    void SendPush(std::string frame, const std::string& key) override {
        socket_->SendPush(Wrap(frame), key_prefix_ + key);
    }
    void Close(int code, std::string reason) override { socket_->Close(code, std::move(reason)); }
    std::size_t BufferedBytes() const override { return socket_->BufferedBytes(); }
    void HoldPushes() override { socket_->HoldPushes(); }
    void ReleasePushes() override { socket_->ReleasePushes(); }

private:
    std::string Wrap(const std::string& frame) const {
        std::string out;
        out.reserve(head_.size() + frame.size() + 1);
        out += head_;
        out += frame;
        out += '}';
        return out;
    }

    std::shared_ptr<Outbox> socket_;
    std::string head_;        // {"stream":"<name>","payload":
    std::string key_prefix_;  // keeps the coalescing keys of different streams apart
};

struct StreamSlot {
    std::string name;
    std::unique_ptr<Session> session;  // null: the child refused this handshake
};

class MultiplexSession final : public Session {
public:
    MultiplexSession(std::shared_ptr<Outbox> socket, std::vector<StreamSlot> slots, std::size_t max_json_depth)
        : socket_(std::move(socket)), slots_(std::move(slots)), max_json_depth_(max_json_depth) {}

    void OnText(std::string_view frame) override {
        socket_->HoldPushes();
        Answer(frame);
        socket_->ReleasePushes();
    }

    void OnBinary(std::string_view frame) override {
        (void)frame;
        Reply("null", DcrfEnvelope().Malformed("binary frames are not supported"));
    }

    void OnClose() override {
        for (auto& slot : slots_) {
            if (slot.session) slot.session->OnClose();
        }
    }

private:
    void Reply(std::string_view stream_json, std::string_view payload_frame) {
        socket_->Send(StreamFrame(stream_json, payload_frame));
    }

    void Answer(std::string_view frame) {
        if (frame.empty()) return Reply("null", DcrfEnvelope().Malformed("empty frame"));
        rapidjson::Document doc;
        // One level more than a stream's own limit: the envelope's; the stream's session checks its payload again.
        if (JsonInputError error = ParseUntrustedJson(doc, frame, max_json_depth_ + 1)) {
            return Reply("null", DcrfEnvelope().Malformed(error.Describe()));
        }
        if (!doc.IsObject()) {
            return Reply("null", DcrfEnvelope().Malformed("expected a JSON object, got " + std::string(PythonTypeName(doc))));
        }
        auto stream_it = doc.FindMember("stream");
        auto payload_it = doc.FindMember("payload");
        std::string stream_json = stream_it == doc.MemberEnd() ? "null" : JsonText(stream_it->value);
        if (stream_it == doc.MemberEnd() || payload_it == doc.MemberEnd()) {
            return Reply(stream_json,
                         DcrfEnvelope().Write({}, ActionResult::Message(
                                                      400, "A multiplexed message needs \"stream\" and \"payload\".")));
        }
        const rapidjson::Value& payload = payload_it->value;
        if (!payload.IsObject()) {
            return Reply(stream_json, DcrfEnvelope().Malformed("expected a JSON object as payload, got " +
                                                     std::string(PythonTypeName(payload))));
        }
        // The payload's action and request_id are echoed in errors, so a client can tell which request failed.
        auto action_it = payload.FindMember("action");
        auto id_it = payload.FindMember("request_id");
        const rapidjson::Value* action = action_it == payload.MemberEnd() ? nullptr : &action_it->value;
        const rapidjson::Value* request_id = id_it == payload.MemberEnd() ? nullptr : &id_it->value;
        const rapidjson::Value& stream = stream_it->value;
        auto slot = std::find_if(slots_.begin(), slots_.end(), [&](const StreamSlot& s) {
            return stream.IsString() && s.name == std::string_view(stream.GetString(), stream.GetStringLength());
        });
        if (slot == slots_.end()) {
            return Reply(
                stream_json,
                DcrfEnvelope().Write({action, request_id, nullptr},
                                     ActionResult::Message(400, "Unknown stream " + stream_json + ".")));
        }
        if (!slot->session) {
            return Reply(
                stream_json,
                DcrfEnvelope().Write({action, request_id, nullptr},
                                     ActionResult::Message(403, "You do not have permission to perform this action.")));
        }
        slot->session->OnText(JsonText(payload));
    }

    std::shared_ptr<Outbox> socket_;
    std::vector<StreamSlot> slots_;
    std::size_t max_json_depth_;
};

}  // namespace

std::string StreamFrame(std::string_view stream_json, std::string_view payload_frame) {
    std::string out;
    out.reserve(stream_json.size() + payload_frame.size() + 24);
    out += "{\"stream\":";
    out += stream_json;
    out += ",\"payload\":";
    out += payload_frame;
    out += '}';
    return out;
}

Multiplexer::Multiplexer(std::vector<Stream> streams, std::optional<AuthOptions> auth, std::size_t max_json_depth,
                         AllowedOrigins allowed_origins)
    : streams_(std::move(streams)),
      auth_(std::move(auth)),
      max_json_depth_(max_json_depth),
      allowed_origins_(std::move(allowed_origins)) {
    if (streams_.empty()) throw std::invalid_argument("multiplexer: no streams");
    if (allowed_origins_) {
        for (const auto& entry : *allowed_origins_) {
            if (std::string error = OriginEntryError(entry); !error.empty()) {
                throw std::invalid_argument("multiplexer: allowed_origins: \"" + entry + "\": " + error);
            }
        }
    }
    for (std::size_t i = 0; i < streams_.size(); ++i) {
        const Stream& s = streams_[i];
        if (s.name.empty()) throw std::invalid_argument("multiplexer: empty stream name");
        if (!s.endpoint) throw std::invalid_argument("multiplexer: stream \"" + s.name + "\" has no endpoint");
        for (std::size_t j = 0; j < i; ++j) {
            if (streams_[j].name == s.name) {
                throw std::invalid_argument("multiplexer: stream \"" + s.name + "\" declared twice");
            }
        }
    }
}

std::vector<int> Multiplexer::AdmitEach(const HandshakeRequest& request, const User* user) const {
    std::vector<int> statuses;
    statuses.reserve(streams_.size());
    for (const auto& stream : streams_) {
        auto* consumer_endpoint = user ? dynamic_cast<ConsumerEndpoint*>(stream.endpoint.get()) : nullptr;
        statuses.push_back(consumer_endpoint ? consumer_endpoint->AdmitUser(request, *user)
                                             : stream.endpoint->Admit(request));
    }
    return statuses;
}

int Multiplexer::Admit(const HandshakeRequest& request) {
    if (int status = CheckOrigin(allowed_origins_, request); status != 101) return status;
    std::optional<HandshakeAuth> auth;
    if (auth_) {
        std::optional<HandshakeRequest> storage;
        auth = AuthenticateHandshake(*auth_, CredentialsView(allowed_origins_, request, storage));
        if (auth->status != 101) return auth->status;
    }
    int first_refusal = 0;
    for (int status : AdmitEach(request, auth ? &auth->user : nullptr)) {
        if (status == 101) return 101;
        if (first_refusal == 0) first_refusal = status;
    }
    return first_refusal;
}

std::unique_ptr<Session> Multiplexer::Open(const HandshakeRequest& request, std::shared_ptr<Outbox> outbox) {
    std::optional<HandshakeAuth> auth;
    if (auth_) {
        // Admit logged the outcome; a credential that stopped being valid in between closes the socket (1008).
        std::optional<HandshakeRequest> storage;
        auth = AuthenticateHandshake(*auth_, CredentialsView(allowed_origins_, request, storage), false);
        if (auth->status != 101) {
            Log(LogLevel::kWarn, "auth: credential of " + request.remote + " on " + request.path +
                                     " no longer accepted when the socket opened; closing with 1008");
            outbox->Close(ToInt(CloseCode::kPolicyViolation), "authentication failed");
            auth->user = User{};
        }
    }
    const User* user = auth ? &auth->user : nullptr;
    std::vector<bool> admitted;
    admitted.reserve(streams_.size());
    for (int status : AdmitEach(request, user)) admitted.push_back(status == 101);
    std::vector<StreamSlot> slots;
    slots.reserve(streams_.size());
    try {
        for (std::size_t i = 0; i < streams_.size(); ++i) {
            StreamSlot slot{streams_[i].name, nullptr};
            if (admitted[i]) {
                auto stream_outbox = std::make_shared<StreamOutbox>(outbox, slot.name);
                auto* consumer_endpoint = user ? dynamic_cast<ConsumerEndpoint*>(streams_[i].endpoint.get()) : nullptr;
                slot.session = consumer_endpoint ? consumer_endpoint->OpenUser(request, std::move(stream_outbox), *user)
                                                 : streams_[i].endpoint->Open(request, std::move(stream_outbox));
                if (!slot.session) {
                    throw std::runtime_error("stream \"" + slot.name + "\": Endpoint::Open returned no session");
                }
            }
            slots.push_back(std::move(slot));
        }
    } catch (...) {
        // The transport closes the socket without a session: the children already opened still get their OnClose.
        for (auto& slot : slots) {
            if (slot.session) slot.session->OnClose();
        }
        throw;
    }
    return std::make_unique<MultiplexSession>(std::move(outbox), std::move(slots), max_json_depth_);
}

}  // namespace syncline
