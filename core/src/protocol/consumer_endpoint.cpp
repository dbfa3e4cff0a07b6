#include <syncline/core/protocol/consumer_endpoint.hpp>

#include <syncline/core/protocol/close_code.hpp>
#include <syncline/core/support/log.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iterator>
#include <optional>

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

// The handshake as the session keeps it for its whole life (ConnectionContext::request): without the headers that only
// carry the websocket handshake itself (Connection, Upgrade, Sec-WebSocket-Key, -Version, -Extensions), which no
// consumer or permission reads, and with no spare capacity. Every idle socket holds one (benchmarks/README.md, memory
// per idle connection).
HandshakeRequest KeptForTheSession(const HandshakeRequest& request) {
    static constexpr std::string_view kHandshakeOnly[] = {"connection", "upgrade", "sec-websocket-key",
                                                          "sec-websocket-version", "sec-websocket-extensions"};
    auto handshake_only = [](const std::pair<std::string, std::string>& header) {
        return std::find(std::begin(kHandshakeOnly), std::end(kHandshakeOnly), header.first) !=
               std::end(kHandshakeOnly);
    };
    HandshakeRequest kept;
    kept.path = request.path;
    kept.query = request.query;
    kept.remote = request.remote;
    kept.headers.reserve(static_cast<std::size_t>(
        std::count_if(request.headers.begin(), request.headers.end(), [&](const auto& h) { return !handshake_only(h); })));
    for (const auto& header : request.headers) {
        if (!handshake_only(header)) kept.headers.push_back(header);
    }
    return kept;
}

class ConsumerSession final : public Session {
public:
    ConsumerSession(std::shared_ptr<GenericConsumer> consumer, std::shared_ptr<ConnectionContext> context,
                    const EndpointOptions& options, bool refused = false)
        : consumer_(std::move(consumer)),
          context_(std::move(context)),
          executor_(options.executor),
          write_executor_(options.write_executor),
          write_batcher_(options.write_executor ? options.write_batcher : nullptr),
          requests_(std::make_shared<SerialRequests>(consumer_, context_, executor_.get(), write_executor_.get(),
                                                     write_batcher_.get())),
          limit_(options.rate_limit),
          bucket_(options.rate_limit),
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
                        context_->outbox().Close(ToInt(CloseCode::kPolicyViolation), "request rate limit exceeded");
                    }
                    return;
                }
                context_->Send(consumer_->envelope().Write({}, ActionResult::Message(
                    429, "Request was throttled. Expected available in " + std::to_string(*wait) + " seconds.")));
                return;
            }
            throttled_in_a_row_ = 0;
        }
        requests_->OnText(frame);
    }

    void OnBinary(std::string_view frame) override {
        if (refused_) return;
        (void)frame;
        context_->Send(consumer_->envelope().Malformed("binary frames are not supported"));
    }

    // Does not wait for detached actions: they hold the context and the consumer, see the close and stop.
    void OnClose() override {
        context_->MarkClosed();
        consumer_->OnDisconnect(*context_);
    }

private:
    std::shared_ptr<GenericConsumer> consumer_;
    std::shared_ptr<ConnectionContext> context_;
    std::shared_ptr<Executor> executor_;
    std::shared_ptr<Executor> write_executor_;
    std::shared_ptr<WriteBatcher> write_batcher_;
    std::shared_ptr<SerialRequests> requests_;
    RateLimit limit_;
    TokenBucket bucket_;
    int throttled_in_a_row_ = 0;
    bool refused_;
};

}  // namespace

ConsumerEndpoint::ConsumerEndpoint(std::shared_ptr<GenericConsumer> consumer, EndpointOptions options)
    : consumer_(std::move(consumer)), options_(std::move(options)) {
    CheckOriginEntries(options_.allowed_origins);
}

int ConsumerEndpoint::Admit(const HandshakeRequest& request) {
    if (int status = CheckOrigin(options_.allowed_origins, request); status != 101) return status;
    std::optional<HandshakeRequest> storage;
    const HandshakeRequest& credentials = CredentialsView(options_.allowed_origins, request, storage);
    HandshakeAuth auth = options_.auth ? AuthenticateHandshake(*options_.auth, credentials) : HandshakeAuth{};
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
    std::optional<HandshakeRequest> storage;
    const HandshakeRequest& credentials = CredentialsView(options_.allowed_origins, request, storage);
    HandshakeAuth auth = options_.auth ? AuthenticateHandshake(*options_.auth, credentials, false) : HandshakeAuth{};
    bool refused = auth.status != 101;
    if (refused) {
        Log(LogLevel::kWarn, "auth: credential of " + request.remote + " on " + request.path +
                                 " no longer accepted when the socket opened; closing with 1008");
        outbox->Close(ToInt(CloseCode::kPolicyViolation), "authentication failed");
    }
    return std::make_unique<ConsumerSession>(
        consumer_,
        std::make_shared<ConnectionContext>(KeptForTheSession(request), std::move(outbox), std::move(auth.user),
                                            options_.limits.value_or(ConnectionLimits{})),
        options_, refused);
}

std::unique_ptr<Session> ConsumerEndpoint::OpenUser(const HandshakeRequest& request, std::shared_ptr<Outbox> outbox,
                                                    User user) {
    return std::make_unique<ConsumerSession>(
        consumer_,
        std::make_shared<ConnectionContext>(KeptForTheSession(request), std::move(outbox), std::move(user),
                                            options_.limits.value_or(ConnectionLimits{})),
        options_);
}

}  // namespace syncline
