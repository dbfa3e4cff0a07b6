// From a text frame to its reply: Prepare (envelope errors, 403, 405), then the action inline (Run) or on the executor
// (DetachedCall, step by step). GenericConsumer::HandleText (declared in consumer.hpp) is defined here too: it is this
// dispatcher's synchronous entry, HandleTextFrame.

#include <syncline/core/protocol/frame_dispatch.hpp>

#include <syncline/core/consumer/subscriptions.hpp>
#include <syncline/core/support/log.hpp>

#include <algorithm>
#include <chrono>
#include <optional>

#include "json_util.hpp"

namespace syncline {

namespace {

// One request from its frame to its reply. The request refers into in.doc, which must stay put.
struct Call {
    const Envelope* envelope = nullptr;  // the consumer's
    FrameRequest in;
    std::optional<ActionRequest> request;
    const ActionSpec* spec = nullptr;       // owned by the consumer
    ActionMeter* meter = nullptr;           // the consumer's, or null
    std::chrono::steady_clock::time_point start{};  // when the frame was read (only with a meter)
};

// The action label a meter gets: a name the route serves, or one of two fixed labels, so that what clients send cannot
// grow the set of labels.
std::string_view MeterLabel(const GenericConsumer& consumer, const Call& call) {
    if (call.spec) return call.spec->name;
    if (!call.request) return "(invalid)";
    const ActionSpec* spec = consumer.FindAction(call.request->action());
    return spec ? std::string_view(spec->name) : std::string_view("(unknown)");
}

// The name a request's action is looked up by: the string, or the JSON text of anything else.
std::string ActionName(const rapidjson::Value& action) {
    return action.IsString() ? std::string(action.GetString(), action.GetStringLength()) : JsonText(action);
}

// Reports an answered request to the route's meter, if it has one.
void Measure(const GenericConsumer& consumer, const Call& call, int status) {
    if (!call.meter) return;
    call.meter->Record(MeterLabel(consumer, call), status, std::chrono::steady_clock::now() - call.start);
}

// Reads and authorizes a frame. Returns the reply when it is answered without running an action (the envelope's
// errors, 403, 405); otherwise fills call.request and call.spec.
std::optional<std::string> Prepare(GenericConsumer& consumer, ConnectionContext& connection, std::string_view frame,
                                   Call& call) {
    const Envelope& envelope = consumer.envelope();
    call.envelope = &envelope;
    call.meter = consumer.action_meter();
    if (call.meter) call.start = std::chrono::steady_clock::now();
    if (std::optional<std::string> reply = envelope.Read(frame, connection.limits(), call.in)) {
        Measure(consumer, call, call.in.refused_status);
        return reply;
    }
    const rapidjson::Value& action = *call.in.echo.action;
    std::string name = ActionName(action);
    ActionRequest& request = call.request.emplace(connection, name, call.in.doc);
    if (!action.IsString()) {
        // Permission still comes first (403 beats 405), then a non-string action is never an action name.
        Result<const ActionSpec*> authorized = consumer.Authorize(request);
        ActionResult refused = authorized || authorized.error().status == 405
                                   ? ActionResult::Message(405, "Method \"" + name + "\" not allowed.")
                                   : authorized.error();
        Measure(consumer, call, refused.status);
        return envelope.Write(call.in.echo, refused);
    }
    Result<const ActionSpec*> authorized = consumer.Authorize(request);
    if (!authorized) {
        Measure(consumer, call, authorized.error().status);
        return envelope.Write(call.in.echo, authorized.error());
    }
    call.spec = *authorized;
    request.set_detached(call.spec->detached);
    return std::nullopt;
}

// The reply to an action's final result, or nullopt when there is none to send: the action streamed its frames, or
// its final result is one more frame of its stream (e.g. a 500 mid-stream), sent here and dropped if the stream was
// cancelled.
std::optional<std::string> Finish(const GenericConsumer& consumer, Call& call, const ActionResult& result) {
    Measure(consumer, call, result.status);
    if (result.streamed) return std::nullopt;
    if (call.request->streaming()) {
        call.request->SendFrame(result);
        return std::nullopt;
    }
    return call.envelope->Write(call.in.echo, result);
}

// A request served off the strand may have subscribed after the socket closed and the session dropped its
// subscriptions: drops them again (MarkClosed comes before that drop, so one of the two sees the other).
void DropSubscriptionsIfClosed(GenericConsumer& consumer, ConnectionContext& connection) {
    if (!connection.closed()) return;
    try {
        consumer.registry().DropConnection(connection);
    } catch (const std::exception& e) {
        Log(LogLevel::kError, std::string("dropping the subscriptions of a closed socket failed: ") + e.what());
    }
}

// Runs a prepared call's action inline, continuation steps included (nothing waits: there is no executor to come back
// on). nullopt when its stream was cancelled meanwhile.
std::optional<ActionResult> RunAction(GenericConsumer& consumer, Call& call) {
    ActionResult result = consumer.Execute(*call.spec, *call.request);
    while (result.next) {
        if (call.request->stream_cancelled()) return std::nullopt;
        ActionHandler step = std::move(result.next);
        result = consumer.ExecuteStep(step, *call.request);
    }
    return result;
}

// Runs a prepared call inline and returns its reply (see Finish).
std::optional<std::string> Run(GenericConsumer& consumer, Call& call) {
    std::optional<ActionResult> result = RunAction(consumer, call);
    if (!result) return std::nullopt;
    return Finish(consumer, call, *result);
}

// The answer to a write whose batch did not commit it: the store's error as a write answers it, else a 500.
ActionResult FailedWrite(const GenericConsumer& consumer, std::exception_ptr error) {
    try {
        std::rethrow_exception(error);
    } catch (const StoreError& e) {
        if (std::optional<ActionResult> later = RetryLaterReply(e)) return std::move(*later);
        if (e.kind() == StoreErrc::kIo) {
            Log(LogLevel::kError, std::string("a batched write failed: ") + e.what());
            return ActionResult::Message(500, "Internal server error.");
        }
        return WriteErrorReply(consumer, e);
    } catch (const std::exception& e) {
        Log(LogLevel::kError, std::string("a batched write failed: ") + e.what());
    } catch (...) {
        Log(LogLevel::kError, "a batched write failed");
    }
    return ActionResult::Message(500, "Internal server error.");
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
        if (call.spec->subscribes) DropSubscriptionsIfClosed(*consumer, *connection);
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
        std::optional<std::string> reply = Finish(*c.consumer, c.call, result);
        if (reply && !c.connection->closed()) c.connection->Send(std::move(*reply));
    }
};

// Serves one frame (see ServeTextFrame). With `lane`, a write is posted to the lane's write executor, which answers
// the frames that wait behind it (SerialRequests); without, a write runs here.
void ServeFrame(const std::shared_ptr<GenericConsumer>& consumer, const std::shared_ptr<ConnectionContext>& connection,
                std::string_view frame, Executor* executor, SerialRequests* lane) {
    const std::size_t max_pending_actions = connection->limits().max_pending_actions;
    connection->BeginRequest();
    // Heap-allocated and shared with the executor when detached: the request refers into the call's document.
    auto detached = std::make_shared<DetachedCall>(consumer, connection);
    Call& call = detached->call;
    if (std::optional<std::string> reply = Prepare(*consumer, *connection, frame, call)) {
        connection->Send(std::move(*reply));
    } else if (lane && call.spec->writes && !call.spec->detached) {
        // Held until the write's reply is queued, on the write's thread.
        connection->BeginRequest();
        lane->TakeForWrite();
        std::shared_ptr<SerialRequests> owner = lane->shared_from_this();
        bool accepted = false;
        if (WriteBatcher* batcher = lane->write_batcher()) {
            // The whole request runs on the batcher's thread inside the batch's transaction; its reply goes out once
            // that has committed. What run leaves for done: the action's result (none when the socket had closed).
            auto result = std::make_shared<std::optional<ActionResult>>();
            auto run = [detached, result] {
                DetachedCall& c = *detached;
                result->reset();
                if (c.connection->closed()) return;
                *result = RunAction(*c.consumer, c.call);
            };
            auto done = [owner, detached, result](std::exception_ptr error) {
                DetachedCall& c = *detached;
                std::optional<std::string> answer;
                if (error) {
                    answer = Finish(*c.consumer, c.call, FailedWrite(*c.consumer, error));
                } else if (*result) {
                    answer = Finish(*c.consumer, c.call, **result);
                }
                if (answer && !c.connection->closed()) c.connection->Send(std::move(*answer));
                c.connection->EndRequest();
                owner->BatchedWriteEnded();
            };
            accepted = batcher->Submit(std::move(run), std::move(done));
        } else {
            auto write = [owner, detached] {
                DetachedCall& c = *detached;
                if (!c.connection->closed()) {
                    std::optional<std::string> done;
                    try {
                        done = Run(*c.consumer, c.call);
                    } catch (const std::exception& e) {
                        // Execute answers a handler's exception itself; this is for the rare one outside it.
                        Log(LogLevel::kError, std::string("a write threw outside its handler: ") + e.what());
                        Measure(*c.consumer, c.call, 500);
                        done = c.call.envelope->Write(c.call.in.echo,
                                                      ActionResult::Message(500, "Internal server error."));
                    }
                    if (done && !c.connection->closed()) c.connection->Send(std::move(*done));
                }
                c.connection->EndRequest();
                owner->Drain();
            };
            accepted = lane->write_executor()->Post(connection->id(), std::move(write));
        }
        if (!accepted) {
            connection->EndRequest();
            lane->GiveBack();
            Measure(*consumer, call, 503);
            connection->Send(
                call.envelope->Write(call.in.echo, ActionResult::Message(503, "The server is shutting down.")));
        }
    } else if (!call.spec->detached || !executor) {
        if (std::optional<std::string> done = Run(*consumer, call)) connection->Send(std::move(*done));
    } else if (!connection->TryBeginDetached(max_pending_actions)) {
        Measure(*consumer, call, 429);
        connection->Send(call.envelope->Write(
            call.in.echo,
            ActionResult::Message(429, "Too many detached actions in progress on this socket (at most " +
                                           std::to_string(max_pending_actions) +
                                           "); wait for a reply, or cancel a streamed list with list_cancel.")));
    } else {
        // From here the call's destructor ends it (EndDetached, and EndRequest for a writer), however it goes.
        detached->counted = true;
        detached->executor = executor;
        // A writer keeps the push gate closed until its reply is queued; other detached actions (streams) let pushes
        // through meanwhile.
        detached->writes = call.spec->writes;
        if (detached->writes) connection->BeginRequest();
        if (!executor->Post(connection->id(), [detached] { DetachedCall::Step(detached); })) {
            Measure(*consumer, call, 503);
            connection->Send(
                call.envelope->Write(call.in.echo, ActionResult::Message(503, "The server is shutting down.")));
        }
    }
    detached.reset();
    connection->EndRequest();
}

}  // namespace

std::string HandleTextFrame(GenericConsumer& consumer, ConnectionContext& connection, std::string_view frame) {
    Call call;
    if (std::optional<std::string> reply = Prepare(consumer, connection, frame, call)) return std::move(*reply);
    return Run(consumer, call).value_or(std::string());
}

void ServeTextFrame(const std::shared_ptr<GenericConsumer>& consumer,
                    const std::shared_ptr<ConnectionContext>& connection, std::string_view frame, Executor* executor) {
    ServeFrame(consumer, connection, frame, executor, nullptr);
}

SerialRequests::SerialRequests(std::shared_ptr<GenericConsumer> consumer, std::shared_ptr<ConnectionContext> connection,
                               Executor* executor, Executor* write_executor, WriteBatcher* write_batcher)
    : consumer_(std::move(consumer)),
      connection_(std::move(connection)),
      executor_(executor),
      write_executor_(write_executor),
      write_batcher_(write_executor ? write_batcher : nullptr) {}

void SerialRequests::OnText(std::string_view frame) {
    if (write_executor_) {
        std::unique_lock<std::mutex> lock(mutex_);
        if (busy_) {
            const std::size_t limit = connection_->limits().max_waiting_request_bytes;
            if (limit == 0 || waiting_.empty() || waiting_bytes_ + frame.size() <= limit) {
                waiting_.emplace_back(frame);
                waiting_bytes_ += frame.size();
                return;
            }
            lock.unlock();
            // Answered now, ahead of the frames that wait: its request_id says which request it refuses.
            const Envelope& envelope = consumer_->envelope();
            Call call;
            call.meter = consumer_->action_meter();
            if (call.meter) call.start = std::chrono::steady_clock::now();
            FrameRequest& in = call.in;
            if (std::optional<std::string> malformed = envelope.Read(frame, connection_->limits(), in)) {
                Measure(*consumer_, call, in.refused_status);
                connection_->Send(std::move(*malformed));
                return;
            }
            // Labelled as Prepare labels it: by the action the frame names.
            if (call.meter) call.request.emplace(*connection_, ActionName(*in.echo.action), in.doc);
            Measure(*consumer_, call, 429);
            connection_->Send(envelope.Write(
                in.echo, ActionResult::Message(429, "Too many requests waiting behind a write on this socket (at most " +
                                                        std::to_string(limit) +
                                                        " bytes); wait for replies before sending more.")));
            return;
        }
    }
    ServeFrame(consumer_, connection_, frame, executor_, write_executor_ ? this : nullptr);
}

void SerialRequests::TakeForWrite() {
    std::lock_guard<std::mutex> lock(mutex_);
    busy_ = true;
    if (!paused_) paused_ = connection_->outbox().PauseReading();
}

void SerialRequests::GiveBack() {
    bool resume = false;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        resume = ReleaseLocked();
    }
    if (resume) connection_->outbox().ResumeReading();
}

bool SerialRequests::ReleaseLocked() {
    busy_ = false;
    const bool resume = paused_;
    paused_ = false;
    return resume;
}

void SerialRequests::BatchedWriteEnded() {
    bool resume = false;
    bool waiting = false;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        waiting = !waiting_.empty();
        // In the same hold as the check: a frame OnText queues from now on finds the connection its own.
        if (!waiting) resume = ReleaseLocked();
    }
    if (waiting) {
        std::shared_ptr<SerialRequests> self = shared_from_this();
        // Refused only while the write executor shuts down, after every socket closed: Drain then drops what waits.
        if (!write_executor_->Post(connection_->id(), [self] { self->Drain(); })) Drain();
        return;
    }
    DropSubscriptionsIfClosed(*consumer_, *connection_);
    if (resume) connection_->outbox().ResumeReading();
}

void SerialRequests::Drain() {
    // After this many frames the rest wait for their turn at the back of the executor's line, so a multiplexed stream
    // that keeps sending cannot keep a thread to itself.
    constexpr int kFramesPerTurn = 64;
    bool resume = false;
    for (int served = 0;; ++served) {
        std::string frame;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (waiting_.empty()) {
                // In the same hold as the check: a frame OnText queues from now on finds the connection its own.
                resume = ReleaseLocked();
                break;
            }
            if (served == kFramesPerTurn) {
                std::shared_ptr<SerialRequests> self = shared_from_this();
                if (write_executor_->Post(connection_->id(), [self] { self->Drain(); })) return;
            }
            frame = std::move(waiting_.front());
            waiting_.pop_front();
            waiting_bytes_ -= frame.size();
        }
        if (connection_->closed()) continue;  // dropped: nobody reads the reply
        ServeFrame(consumer_, connection_, frame, executor_, nullptr);
    }
    DropSubscriptionsIfClosed(*consumer_, *connection_);
    if (resume) connection_->outbox().ResumeReading();
}

std::string GenericConsumer::HandleText(ConnectionContext& connection, std::string_view frame) {
    return HandleTextFrame(*this, connection, frame);
}

}  // namespace syncline
