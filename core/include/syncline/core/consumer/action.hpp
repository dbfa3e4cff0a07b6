#pragma once
/// \file
/// Actions: what a request is (ActionRequest), what an action answers (ActionResult, Result), and the action table's
/// rows (ActionSpec) that mixins (Mixin) install into a consumer.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <rapidjson/document.h>

#include <syncline/core/consumer/connection.hpp>
#include <syncline/core/consumer/errors.hpp>
#include <syncline/core/model/value.hpp>

namespace syncline {

class ActionRequest;
class GenericConsumer;
struct ActionResult;

/// An action's body. Runs on the connection's thread of calls, or, for a detached action, on an executor thread
/// (concurrently with the socket's other requests); may throw (the dispatcher answers 500).
using ActionHandler = std::function<ActionResult(GenericConsumer& consumer, ActionRequest& request)>;

/// What an action answers: a status with data (raw JSON text) or errors (a value; the envelope writes them).
struct ActionResult {
    int status = 200;
    std::string data = "null";
    ActionErrors errors;
    /// The action sent its frames itself (ActionRequest::SendFrame): no reply follows.
    bool streamed = false;
    /// Set by Continue: the action is not finished, this is its next step.
    ActionHandler next = nullptr;
    /// More top-level keys of the reply, after the envelope's own: (key, JSON text), e.g. {"version", "42"}. Clients
    /// that do not know a key ignore it (DCRF's do).
    std::vector<std::pair<std::string, std::string>> extra;

    /// A success: `data_json` is the payload's JSON text.
    static ActionResult Ok(int status, std::string data_json = "null") {
        return {status, std::move(data_json), {}, false, nullptr, {}};
    }
    /// A failure with these errors, e.g. ActionErrors::Field("title", "This field is required.").
    static ActionResult Error(int status, ActionErrors errors) {
        return {status, "null", std::move(errors), false, nullptr, {}};
    }
    /// A failure with one message: errors `["message"]`.
    static ActionResult Message(int status, std::string_view message);
    /// What a streaming action returns once it has sent its frames with ActionRequest::SendFrame (or was cancelled):
    /// nothing more is sent.
    static ActionResult Streamed() { return {200, "null", {}, true, nullptr, {}}; }
    /// What a resumable action returns after each step, e.g. a streamed list after each page: `next` runs later, as a
    /// new task on the executor, once the socket has room for more frames (at most ActionRequest::kStreamQueueBytes
    /// queued) and after the other sockets' waiting tasks had their turn; no thread is held while it waits. It is
    /// dropped, with no reply, once the stream is cancelled (ActionRequest::stream_cancelled()). A step should send at
    /// most one frame; the last step returns any other result (Streamed() after its frames). Not detached (run inline,
    /// e.g. without an executor): the steps run one after the other at once.
    static ActionResult Continue(ActionHandler next) { return {200, "null", {}, false, std::move(next), {}}; }
};

/// A value or the error reply that replaces it.
template <class T>
class Result {
public:
    Result(T value) : v_(std::move(value)) {}             // NOLINT(google-explicit-constructor)
    Result(ActionResult error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)
    explicit operator bool() const { return v_.index() == 0; }
    T& operator*() { return std::get<0>(v_); }
    T* operator->() { return &std::get<0>(v_); }
    const ActionResult& error() const { return std::get<1>(v_); }

private:
    std::variant<T, ActionResult> v_;
};

/// One request: the parsed object (its top-level keys are the arguments) on a connection. Made where the frame
/// arrives (remembering the connection's stream epoch then); a detached action uses it on an executor thread.
class ActionRequest {
public:
    ActionRequest(ConnectionContext& connection, std::string action, const rapidjson::Value& message);
    ConnectionContext& connection() const { return connection_; }
    const std::string& action() const { return action_; }
    const rapidjson::Value& message() const { return message_; }
    /// A top-level argument, or nullptr when absent.
    const rapidjson::Value* Arg(std::string_view name) const;
    /// The request_id, or nullptr when absent.
    const rapidjson::Value* request_id() const { return Arg("request_id"); }

    /// The row of a needs_object action, looked up by the dispatcher before the handler runs; throws
    /// std::logic_error when there is none (the action does not need an object).
    const Row& object() const;
    bool has_object() const { return object_.has_value(); }
    void set_object(Row row) { object_ = std::move(row); }

    /// True once the socket closed. A detached action should poll it and return early; its reply is not sent.
    bool cancelled() const;
    /// True once the socket closed or list_cancel arrived after this request: a streaming action stops.
    bool stream_cancelled() const;
    /// Sends one frame of this request's stream, with the request's action and request_id (a streamed list sends one
    /// per page). In the first step of a detached action (a handler that loops over its frames) it first waits,
    /// polling the cancel flags, while the socket's outgoing queue holds more than kStreamQueueBytes, so a stream
    /// never queues a whole table; such a wait holds an executor thread, so a long stream should send one frame per
    /// step instead (ActionResult::Continue), whose steps run only when there is room and never wait here. Returns
    /// false once the stream is cancelled (stream_cancelled()): the handler should stop and return
    /// ActionResult::Streamed(). Once a request has sent a frame, its final reply (e.g. a 500 mid-stream) goes the
    /// same way, so it is dropped after a cancel.
    bool SendFrame(const ActionResult& frame);
    /// Whether SendFrame was called.
    bool streaming() const { return streaming_; }
    /// Whether the action runs detached (set by the dispatcher; SendFrame only waits for room when it does).
    bool detached() const { return detached_; }
    void set_detached(bool detached) { detached_ = detached; }
    /// Whether a continuation step (ActionResult::Continue) is running (set by the dispatcher): SendFrame never waits.
    bool continued() const { return continued_; }
    void set_continued(bool continued) { continued_ = continued; }

    /// A streaming action waits while the socket has more than this many bytes queued and unwritten.
    static constexpr std::size_t kStreamQueueBytes = 256 * 1024;

private:
    ConnectionContext& connection_;
    std::string action_;
    const rapidjson::Value& message_;
    std::uint64_t stream_epoch_;
    bool detached_ = false;
    bool continued_ = false;
    bool streaming_ = false;
    std::optional<Row> object_;
};

class SubscriptionRegistry;

/// One row of the action table. The flags document the action and drive generic behaviour (permissions audit
/// them; detached actions do not block the socket's other requests).
struct ActionSpec {
    std::string name;
    ActionHandler handler;
    /// Looks up one row by the lookup argument: the dispatcher calls GetObject before the handler (400 when the
    /// argument is missing, 404 when no row matches) and hands the row over as ActionRequest::object().
    bool needs_object = false;
    /// Changes data: a detached writer holds the connection's push gate until its reply, so the reply comes before
    /// the pushes its write causes on the same socket.
    bool writes = false;
    bool subscribes = false;  ///< Adds or removes a subscription.
    /// Runs on the server's executor without blocking the socket's other messages; its reply (or 500 error frame)
    /// is sent when it finishes; it is cancelled when the socket closes (ActionRequest::cancelled()).
    bool detached = false;

    // Chainable flag setters: CustomAction("publish", handler).NeedsObject().Writes().
    ActionSpec& NeedsObject(bool on = true) {
        needs_object = on;
        return *this;
    }
    ActionSpec& Writes(bool on = true) {
        writes = on;
        return *this;
    }
    ActionSpec& Subscribes(bool on = true) {
        subscribes = on;
        return *this;
    }
    ActionSpec& Detached(bool on = true) {
        detached = on;
        return *this;
    }
};

/// Declares a custom action: `consumer.AddAction(CustomAction("publish", Publish).NeedsObject().Writes())`, or in a
/// mixin: `options.mixins.push_back(Mixin{{CustomAction("stats", Stats).Detached()}})`. The handler returns any
/// status and data (ActionResult::Ok, ::Error, ::Message).
ActionSpec CustomAction(std::string name, ActionHandler handler);

/// A mixin: a set of actions to install.
struct Mixin {
    std::vector<ActionSpec> actions;
};

}  // namespace syncline
