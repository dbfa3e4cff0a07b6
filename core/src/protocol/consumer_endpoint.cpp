#include <syncline/core/protocol/consumer_endpoint.hpp>

#include <syncline/core/support/log.hpp>
#include <syncline/core/consumer/subscriptions.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <optional>
#include <stdexcept>

#include "json_util.hpp"
#include "text_util.hpp"

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
                    const EndpointOptions& options, bool refused = false)
        : consumer_(std::move(consumer)),
          context_(std::move(context)),
          executor_(options.executor),
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
        if (consumer_->HasOwnEnvelope()) {
            // A consumer speaking another envelope (routed, §10) answers synchronously, under the push gate.
            context_->BeginRequest();
            context_->Send(consumer_->HandleText(*context_, frame));
            context_->EndRequest();
            return;
        }
        ServeTextFrame(consumer_, context_, frame, executor_.get());
    }

    void OnBinary(std::string_view frame) override {
        if (refused_) return;
        (void)frame;
        context_->Send(
            consumer_->ErrorReply(ActionResult::Message(400, "Malformed message: binary frames are not supported")));
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
    RateLimit limit_;
    TokenBucket bucket_;
    int throttled_in_a_row_ = 0;
    bool refused_;
};

}  // namespace

namespace {

// An origin split into its parts, scheme and host lower-cased; nullopt when the text is not scheme://host[:port].
struct OriginParts {
    std::string scheme;
    std::string host;
    std::string port;  // "" when absent
    bool operator==(const OriginParts& other) const {
        return scheme == other.scheme && host == other.host && port == other.port;
    }
};

std::optional<OriginParts> ParseOrigin(std::string_view text, std::string* error = nullptr) {
    auto fail = [&](const std::string& why) -> std::optional<OriginParts> {
        if (error) *error = why;
        return std::nullopt;
    };
    const std::size_t sep = text.find("://");
    if (sep == std::string_view::npos || sep == 0) {
        return fail("expected scheme://host[:port], e.g. https://example.com");
    }
    OriginParts parts;
    for (std::size_t i = 0; i < sep; ++i) {
        const char c = text[i];
        const bool ok = std::isalpha(static_cast<unsigned char>(c)) ||
                        (i > 0 && (std::isdigit(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.'));
        if (!ok) return fail("invalid scheme");
    }
    parts.scheme = AsciiLower(text.substr(0, sep));
    std::string_view rest = text.substr(sep + 3);
    std::string_view host = rest;
    if (!rest.empty() && rest.front() == '[') {  // an IPv6 literal
        const std::size_t close = rest.find(']');
        if (close == std::string_view::npos) return fail("unterminated IPv6 address");
        host = rest.substr(0, close + 1);
        rest.remove_prefix(close + 1);
        if (!rest.empty() && rest.front() != ':') return fail("expected scheme://host[:port] with nothing after it");
    } else {
        const std::size_t colon = rest.find(':');
        host = rest.substr(0, colon);
        rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon);
    }
    if (host.empty()) return fail("missing host");
    for (char c : host) {
        if (c == '/' || c == '?' || c == '#' || c == '@' || c == '\\' || static_cast<unsigned char>(c) <= ' ' ||
            c == 0x7f) {
            return fail("expected scheme://host[:port] with no path, query, fragment or user info (\"" +
                        std::string(host) + "\" is not a host)");
        }
    }
    parts.host = AsciiLower(host);
    if (!rest.empty()) {
        std::string_view port = rest.substr(1);  // after ':'
        if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) {
                return std::isdigit(static_cast<unsigned char>(c));
            })) {
            return fail("invalid port (expected scheme://host[:port] with no path)");
        }
        const long number = std::stol(std::string(port));
        if (number < 1 || number > 65535) return fail("port out of range");
        parts.port = std::string(port);
    }
    return parts;
}

// An Origin header for a log line: bounded, printable.
std::string Printable(std::string_view text) {
    std::string out;
    for (char c : text.substr(0, 100)) out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
    if (text.size() > 100) out += "...";
    return out;
}

void CheckOriginEntries(const AllowedOrigins& allowed) {
    if (!allowed) return;
    for (const auto& entry : *allowed) {
        if (std::string error = OriginEntryError(entry); !error.empty()) {
            throw std::invalid_argument("allowed_origins: \"" + entry + "\": " + error);
        }
    }
}

}  // namespace

int CheckOrigin(const AllowedOrigins& allowed, const HandshakeRequest& request) {
    if (OriginAllowed(allowed, request)) return 101;
    Log(LogLevel::kWarn, "refused handshake of " + request.remote + " on " + request.path + ": origin \"" +
                             Printable(request.Header("origin").value_or("")) + "\" is not in allowed_origins");
    return 403;
}

std::string OriginEntryError(std::string_view entry) {
    if (entry == "*") return "";
    std::string error;
    return ParseOrigin(entry, &error) ? "" : error;
}

bool OriginAllowed(const AllowedOrigins& allowed, const HandshakeRequest& request) {
    if (!allowed) return true;
    const std::optional<std::string> origin = request.Header("origin");
    if (!origin) return true;  // not a browser: nothing to hijack
    const std::optional<OriginParts> sent = ParseOrigin(*origin);
    for (const auto& entry : *allowed) {
        if (entry == "*") return true;
        if (sent && ParseOrigin(entry) == sent) return true;
    }
    return false;
}

bool RestrictsOrigins(const AllowedOrigins& allowed) {
    return allowed && std::find(allowed->begin(), allowed->end(), "*") == allowed->end();
}

bool ReadsCookies(const Authenticator& authenticator) { return authenticator.ReadsCookies(); }

const HandshakeRequest& CredentialsView(const AllowedOrigins& allowed, const HandshakeRequest& request,
                                        std::optional<HandshakeRequest>& storage) {
    if (RestrictsOrigins(allowed) || !request.Header("cookie")) return request;
    HandshakeRequest& copy = storage.emplace(request);
    copy.headers.erase(std::remove_if(copy.headers.begin(), copy.headers.end(),
                                      [](const auto& header) { return header.first == "cookie"; }),
                       copy.headers.end());
    return copy;
}

std::string MalformedReply(std::string_view reason) {
    return BuildReply(nullptr, ActionResult::Message(400, "Malformed message: " + std::string(reason)), nullptr);
}

std::optional<ActionResult> CheckRequestId(const rapidjson::Value* request_id, const ConnectionLimits& limits) {
    if (!request_id) return std::nullopt;
    // A string's length bounds its JSON text from below, so a long one is refused without writing it out.
    bool long_string = request_id->IsString() && request_id->GetStringLength() + 2 > limits.max_request_id_bytes;
    if (!long_string && JsonText(*request_id).size() <= limits.max_request_id_bytes) return std::nullopt;
    return ActionResult::Message(400, "request_id is too long (the limit is " +
                                          std::to_string(limits.max_request_id_bytes) + " bytes of JSON).");
}

namespace {

// One request from its frame to its reply. The request refers into doc, which must stay put.
struct Call {
    rapidjson::Document doc;
    const rapidjson::Value* action = nullptr;      // into doc
    const rapidjson::Value* request_id = nullptr;  // into doc
    std::optional<ActionRequest> request;
    const ActionSpec* spec = nullptr;  // owned by the consumer
};

// Parses and authorizes a frame. Returns the reply when it is answered without running an action (envelope errors,
// 403, 405); otherwise fills call.request and call.spec.
std::optional<std::string> Prepare(GenericConsumer& consumer, ConnectionContext& connection, std::string_view frame,
                                   Call& call) {
    if (frame.empty()) return MalformedReply("empty frame");
    rapidjson::Document& doc = call.doc;
    // Iterative, depth-limited, and refusing text that is not valid Unicode: text that reached the database unchecked
    // could never be sent out again.
    if (JsonInputError error = ParseUntrustedJson(doc, frame, connection.limits().max_json_depth)) {
        return MalformedReply(error.Describe());
    }
    if (!doc.IsObject()) return MalformedReply("expected a JSON object, got " + std::string(PythonTypeName(doc)));
    auto request_id_it = doc.FindMember("request_id");
    call.request_id = request_id_it == doc.MemberEnd() ? nullptr : &request_id_it->value;
    auto action_it = doc.FindMember("action");
    if (std::optional<ActionResult> refused = CheckRequestId(call.request_id, connection.limits())) {
        return BuildReply(action_it == doc.MemberEnd() ? nullptr : &action_it->value, *refused, nullptr);
    }
    if (action_it == doc.MemberEnd()) {
        return BuildReply(nullptr, ActionResult::Message(405, "Unable to find action in message body."),
                          call.request_id);
    }
    const rapidjson::Value& action = action_it->value;
    call.action = &action;
    std::string name = action.IsString() ? std::string(action.GetString(), action.GetStringLength())
                                         : JsonText(action);
    ActionRequest& request = call.request.emplace(connection, name, doc);
    if (!action.IsString()) {
        // Permission still comes first (403 beats 405), then a non-string action is never an action name.
        Result<const ActionSpec*> authorized = consumer.Authorize(request);
        return BuildReply(&action,
                          authorized || authorized.error().status == 405
                              ? ActionResult::Message(405, "Method \"" + name + "\" not allowed.")
                              : authorized.error(),
                          call.request_id);
    }
    Result<const ActionSpec*> authorized = consumer.Authorize(request);
    if (!authorized) return BuildReply(&action, authorized.error(), call.request_id);
    call.spec = *authorized;
    request.set_detached(call.spec->detached);
    return std::nullopt;
}

// The reply to an action's final result, or nullopt when there is none to send: the action streamed its frames, or
// its final result is one more frame of its stream (e.g. a 500 mid-stream), sent here and dropped if the stream was
// cancelled.
std::optional<std::string> Finish(Call& call, const ActionResult& result) {
    if (result.streamed) return std::nullopt;
    if (call.request->streaming()) {
        call.request->SendFrame(result);
        return std::nullopt;
    }
    return BuildReply(call.action, result, call.request_id);
}

// Runs a prepared call inline, continuation steps included (nothing waits: there is no executor to come back on).
std::optional<std::string> Run(GenericConsumer& consumer, Call& call) {
    ActionResult result = consumer.Execute(*call.spec, *call.request);
    while (result.next) {
        if (call.request->stream_cancelled()) return std::nullopt;
        ActionHandler step = std::move(result.next);
        result = consumer.ExecuteStep(step, *call.request);
    }
    return Finish(call, result);
}

// A detached call on the executor, on its connection's lane: the first step runs the action, later ones its
// continuations (ActionResult::Continue), each a task of its own, run once the socket has room; in between nothing is
// held but this object. Its destructor ends the call whatever way it goes (replied, cancelled, dropped by an executor
// that shuts down): a writer's hold on the push gate, the connection's count of detached actions.
struct DetachedCall {
    // A stream whose socket has no room checks again after this long, doubling up to kMaxWait. The outbox has no
    // "drained" signal; a check is one BufferedBytes call.
    static constexpr std::chrono::milliseconds kFirstWait{1};
    static constexpr std::chrono::milliseconds kMaxWait{16};

    std::shared_ptr<GenericConsumer> consumer;
    std::shared_ptr<ConnectionContext> connection;
    Executor* executor = nullptr;
    bool counted = false;  // the connection counts it among its detached actions (set when it is posted)
    bool writes = false;   // holds the connection's push gate
    Call call;
    ActionHandler next;  // the step to run; empty before the first
    std::chrono::milliseconds wait = kFirstWait;

    DetachedCall(std::shared_ptr<GenericConsumer> c, std::shared_ptr<ConnectionContext> conn)
        : consumer(std::move(c)), connection(std::move(conn)) {}
    DetachedCall(const DetachedCall&) = delete;
    DetachedCall& operator=(const DetachedCall&) = delete;
    ~DetachedCall() {
        if (!counted) return;  // answered on the strand: nothing to end
        // The socket may have closed while this action subscribed, after OnClose dropped its subscriptions: drop them
        // again (OnClose marks the socket closed before dropping, so one of the two sees the other).
        if (call.spec->subscribes && connection->closed()) {
            try {
                consumer->registry().DropConnection(*connection);
            } catch (const std::exception& e) {
                Log(LogLevel::kError, std::string("dropping the subscriptions of a closed socket failed: ") + e.what());
            }
        }
        if (writes) connection->EndRequest();
        connection->EndDetached();
    }

    static void Post(const std::shared_ptr<DetachedCall>& self) {
        // Refused once the executor shuts down: the call ends here (its socket is closing).
        self->executor->Post(self->connection->id(), [self] { Step(self); });
    }

    static void Step(const std::shared_ptr<DetachedCall>& self) {
        DetachedCall& c = *self;
        // Not started before the socket closed: never runs; a stream of a closed socket stops.
        if (c.connection->closed()) return;
        ActionRequest& request = *c.call.request;
        ActionResult result;
        if (!c.next) {
            result = c.consumer->Execute(*c.call.spec, request);
        } else {
            if (request.stream_cancelled()) return;
            if (c.connection->outbox().BufferedBytes() > ActionRequest::kStreamQueueBytes) {
                // No room: come back later, holding no thread meanwhile.
                std::chrono::milliseconds wait = c.wait;
                c.wait = std::min(c.wait * 2, kMaxWait);
                c.executor->PostAfter(c.connection->id(), wait, [self] { Step(self); });
                return;
            }
            c.wait = kFirstWait;
            request.set_continued(true);
            ActionHandler step = std::move(c.next);
            result = c.consumer->ExecuteStep(step, request);
        }
        if (result.next) {
            c.next = std::move(result.next);
            // Back in line behind the other sockets' tasks: a long stream takes turns with them, page by page.
            if (!request.stream_cancelled()) Post(self);
            return;
        }
        std::optional<std::string> reply = Finish(c.call, result);
        if (reply && !c.connection->closed()) c.connection->Send(std::move(*reply));
    }
};

}  // namespace

std::string HandleTextFrame(GenericConsumer& consumer, ConnectionContext& connection, std::string_view frame) {
    Call call;
    if (std::optional<std::string> reply = Prepare(consumer, connection, frame, call)) return std::move(*reply);
    return Run(consumer, call).value_or(std::string());
}

void ServeTextFrame(const std::shared_ptr<GenericConsumer>& consumer,
                    const std::shared_ptr<ConnectionContext>& connection, std::string_view frame, Executor* executor) {
    const std::size_t max_pending_actions = connection->limits().max_pending_actions;
    connection->BeginRequest();
    // Heap-allocated and shared with the executor when detached: the request refers into the call's document.
    auto detached = std::make_shared<DetachedCall>(consumer, connection);
    Call& call = detached->call;
    if (std::optional<std::string> reply = Prepare(*consumer, *connection, frame, call)) {
        connection->Send(std::move(*reply));
    } else if (!call.spec->detached || !executor) {
        if (std::optional<std::string> done = Run(*consumer, call)) connection->Send(std::move(*done));
    } else if (!connection->TryBeginDetached(max_pending_actions)) {
        connection->Send(BuildReply(
            call.action,
            ActionResult::Message(429, "Too many detached actions in progress on this socket (at most " +
                                           std::to_string(max_pending_actions) +
                                           "); wait for a reply, or cancel a streamed list with list_cancel."),
            call.request_id));
    } else {
        // From here the call's destructor ends it (EndDetached, and EndRequest for a writer), however it goes.
        detached->counted = true;
        detached->executor = executor;
        // A writer keeps the push gate closed until its reply is queued; other detached actions (streams) let pushes
        // through meanwhile.
        detached->writes = call.spec->writes;
        if (detached->writes) connection->BeginRequest();
        if (!executor->Post(connection->id(), [detached] { DetachedCall::Step(detached); })) {
            connection->Send(
                BuildReply(call.action, ActionResult::Message(503, "The server is shutting down."), call.request_id));
        }
    }
    detached.reset();
    connection->EndRequest();
}

std::string GenericConsumer::HandleText(ConnectionContext& connection, std::string_view frame) {
    return HandleTextFrame(*this, connection, frame);
}

std::string GenericConsumer::ErrorReply(const ActionResult& result) const {
    return BuildReply(nullptr, result, nullptr);
}

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
        outbox->Close(1008, "authentication failed");
    }
    return std::make_unique<ConsumerSession>(
        consumer_,
        std::make_shared<ConnectionContext>(request, std::move(outbox), std::move(auth.user),
                                            options_.limits.value_or(ConnectionLimits{})),
        options_, refused);
}

std::unique_ptr<Session> ConsumerEndpoint::OpenUser(const HandshakeRequest& request, std::shared_ptr<Outbox> outbox,
                                                    User user) {
    return std::make_unique<ConsumerSession>(
        consumer_,
        std::make_shared<ConnectionContext>(request, std::move(outbox), std::move(user),
                                            options_.limits.value_or(ConnectionLimits{})),
        options_);
}

}  // namespace syncline
