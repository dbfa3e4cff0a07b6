#include <syncline/core/consumer_endpoint.hpp>

#include <syncline/core/log.hpp>

#include <rapidjson/error/en.h>

#include <algorithm>
#include <cmath>

#include "json_util.hpp"

namespace syncline {
namespace {

// An Outbox for contexts that only exist to ask permissions at the handshake: nothing may be sent yet.
class NoOutbox final : public Outbox {
public:
    void Send(std::string frame) override { (void)frame; }
    void Close(int code, std::string reason) override {
        (void)code;
        (void)reason;
    }
    std::size_t BufferedBytes() const override { return 0; }
};

class TokenBucket {
public:
    explicit TokenBucket(const RateLimit& limit)
        : rate_(limit.per_second),
          capacity_(limit.burst > 0 ? limit.burst : std::max(1.0, limit.per_second)),
          tokens_(capacity_),
          last_(std::chrono::steady_clock::now()) {}
    bool enabled() const { return rate_ > 0; }
    // Takes a token; when none is left returns the whole seconds until one is (at least 1).
    std::optional<int> Take() {
        auto now = std::chrono::steady_clock::now();
        tokens_ = std::min(capacity_, tokens_ + std::chrono::duration<double>(now - last_).count() * rate_);
        last_ = now;
        if (tokens_ >= 1) {
            tokens_ -= 1;
            return std::nullopt;
        }
        return std::max(1, static_cast<int>(std::ceil((1 - tokens_) / rate_)));
    }

private:
    double rate_;
    double capacity_;
    double tokens_;
    std::chrono::steady_clock::time_point last_;
};

class ConsumerSession final : public Session {
public:
    ConsumerSession(std::shared_ptr<GenericConsumer> consumer, std::shared_ptr<ConnectionContext> context,
                    const RateLimit& limit, bool refused = false)
        : consumer_(std::move(consumer)), context_(std::move(context)), limit_(limit), bucket_(limit),
          refused_(refused) {}

    void OnText(std::string_view frame) override {
        if (refused_) return;  // closing: authentication failed at Open
        if (bucket_.enabled()) {
            if (auto wait = bucket_.Take()) {
                ++throttled_in_a_row_;
                if (limit_.close_after > 0 && throttled_in_a_row_ > limit_.close_after) {
                    if (throttled_in_a_row_ == limit_.close_after + 1) {
                        Log(LogLevel::kWarn, "closing " + context_->request().remote + " on " +
                                                 context_->request().path + ": request rate limit exceeded");
                        context_->outbox().Close(1008, "request rate limit exceeded");
                    }
                    return;
                }
                context_->Send(consumer_->ErrorReply(ActionResult::Message(
                    429, "Request was throttled. Expected available in " + std::to_string(*wait) + " seconds.")));
                return;
            }
            throttled_in_a_row_ = 0;
        }
        context_->BeginRequest();
        context_->Send(consumer_->HandleText(*context_, frame));
        context_->EndRequest();
    }

    void OnBinary(std::string_view frame) override {
        if (refused_) return;
        (void)frame;
        context_->Send(
            consumer_->ErrorReply(ActionResult::Message(400, "Malformed message: binary frames are not supported")));
    }

    void OnClose() override { consumer_->OnDisconnect(*context_); }

private:
    std::shared_ptr<GenericConsumer> consumer_;
    std::shared_ptr<ConnectionContext> context_;
    RateLimit limit_;
    TokenBucket bucket_;
    int throttled_in_a_row_ = 0;
    bool refused_;
};

}  // namespace

std::string MalformedReply(std::string_view reason) {
    return BuildReply(nullptr, ActionResult::Message(400, "Malformed message: " + std::string(reason)), nullptr);
}

std::string HandleTextFrame(GenericConsumer& consumer, ConnectionContext& connection, std::string_view frame) {
    if (frame.empty()) return MalformedReply("empty frame");
    rapidjson::Document doc;
    // Validate UTF-8 at ingress: text that reaches the database unchecked could never be sent out again.
    doc.Parse<rapidjson::kParseValidateEncodingFlag>(frame.data(), frame.size());
    if (doc.HasParseError()) {
        return MalformedReply(std::string(rapidjson::GetParseError_En(doc.GetParseError())) + " (at offset " +
                              std::to_string(doc.GetErrorOffset()) + ")");
    }
    if (!doc.IsObject()) return MalformedReply("expected a JSON object, got " + std::string(PythonTypeName(doc)));
    auto request_id_it = doc.FindMember("request_id");
    const rapidjson::Value* request_id = request_id_it == doc.MemberEnd() ? nullptr : &request_id_it->value;
    auto action_it = doc.FindMember("action");
    if (action_it == doc.MemberEnd()) {
        return BuildReply(nullptr, ActionResult::Message(405, "Unable to find action in message body."), request_id);
    }
    const rapidjson::Value& action = action_it->value;
    std::string name = action.IsString() ? std::string(action.GetString(), action.GetStringLength())
                                         : JsonText(action);
    ActionRequest request(connection, name, doc);
    ActionResult result;
    if (!action.IsString()) {
        // Permission still comes first (403 beats 405), then a non-string action is never an action name.
        try {
            result = consumer.HasPermission(request)
                         ? ActionResult::Message(405, "Method \"" + name + "\" not allowed.")
                         : ActionResult::Message(403, "You do not have permission to perform this action.");
        } catch (const std::exception& e) {
            Log(LogLevel::kError, "permission check on \"" + consumer.options().model + "\" failed: " + e.what());
            result = ActionResult::Message(500, "Internal server error");
        }
    } else {
        result = consumer.Dispatch(request);
    }
    return BuildReply(&action, result, request_id);
}

std::string GenericConsumer::HandleText(ConnectionContext& connection, std::string_view frame) {
    return HandleTextFrame(*this, connection, frame);
}

std::string GenericConsumer::ErrorReply(const ActionResult& result) const {
    return BuildReply(nullptr, result, nullptr);
}

ConsumerEndpoint::ConsumerEndpoint(std::shared_ptr<GenericConsumer> consumer, EndpointOptions options)
    : consumer_(std::move(consumer)), options_(std::move(options)) {}

int ConsumerEndpoint::Admit(const HandshakeRequest& request) {
    HandshakeAuth auth = options_.auth ? AuthenticateHandshake(*options_.auth, request) : HandshakeAuth{};
    if (auth.status != 101) return auth.status;
    return AdmitUser(request, std::move(auth.user));
}

int ConsumerEndpoint::AdmitUser(const HandshakeRequest& request, User user) {
    ConnectionContext context(request, std::make_shared<NoOutbox>(), std::move(user));
    try {
        return consumer_->CanConnect(context) ? 101 : 403;
    } catch (const std::exception& e) {
        // 500, not 403: the permission failed rather than decided; either way the socket does not open.
        Log(LogLevel::kError, "can_connect on " + request.path + " failed for " + request.remote + ": " + e.what());
    } catch (...) {
        Log(LogLevel::kError, "can_connect on " + request.path + " failed for " + request.remote);
    }
    return 500;
}

std::unique_ptr<Session> ConsumerEndpoint::Open(const HandshakeRequest& request, std::shared_ptr<Outbox> outbox) {
    HandshakeAuth auth = options_.auth ? AuthenticateHandshake(*options_.auth, request, false) : HandshakeAuth{};
    bool refused = auth.status != 101;
    if (refused) {
        Log(LogLevel::kWarn, "auth: credential of " + request.remote + " on " + request.path +
                                 " no longer accepted when the socket opened; closing with 1008");
        outbox->Close(1008, "authentication failed");
    }
    return std::make_unique<ConsumerSession>(
        consumer_, std::make_shared<ConnectionContext>(request, std::move(outbox), std::move(auth.user)),
        options_.rate_limit, refused);
}

std::unique_ptr<Session> ConsumerEndpoint::OpenUser(const HandshakeRequest& request, std::shared_ptr<Outbox> outbox,
                                                    User user) {
    return std::make_unique<ConsumerSession>(
        consumer_, std::make_shared<ConnectionContext>(request, std::move(outbox), std::move(user)),
        options_.rate_limit);
}

}  // namespace syncline
