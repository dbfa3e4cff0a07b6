#include <syncline/core/consumer/action.hpp>

#include <syncline/core/protocol/envelope.hpp>

#include <stdexcept>

#include "json_util.hpp"

namespace syncline {

ActionResult ActionResult::Message(int status, std::string_view message) { return Error(status, ActionErrors::Message(std::string(message))); }

ActionRequest::ActionRequest(ConnectionContext& connection, std::string action, const rapidjson::Value& message)
    : connection_(connection),
      action_(std::move(action)),
      message_(message),
      stream_epoch_(connection.stream_epoch()) {}

const Row& ActionRequest::object() const {
    if (!object_) throw std::logic_error("action \"" + action_ + "\" has no object (it does not need one)");
    return *object_;
}

bool ActionRequest::cancelled() const { return connection_.closed(); }

bool ActionRequest::stream_cancelled() const {
    return connection_.closed() || connection_.stream_epoch() != stream_epoch_;
}

// Frames of a stream are written in DCRF's envelope whatever the route speaks (as before envelopes were strategies: a
// routed handler's streamed list sends DCRF frames).
bool ActionRequest::SendFrame(const ActionResult& frame) {
    streaming_ = true;
    // A continuation step runs only when there was room (the dispatcher checks first): it never holds its thread here.
    if (detached_ && !continued_) {
        // Backpressure for a handler that loops: the outbox has no "drained" signal, so poll it; a cancel wakes the
        // wait at once.
        while (connection_.outbox().BufferedBytes() > kStreamQueueBytes) {
            if (connection_.WaitStreamCancelled(stream_epoch_, std::chrono::milliseconds(5))) return false;
        }
    }
    return connection_.SendStreamed(DcrfEnvelope().Write({Arg("action"), request_id(), nullptr}, frame), stream_epoch_);
}

ActionSpec CustomAction(std::string name, ActionHandler handler) {
    ActionSpec spec;
    spec.name = std::move(name);
    spec.handler = std::move(handler);
    return spec;
}

const rapidjson::Value* ActionRequest::Arg(std::string_view name) const {
    auto it = message_.FindMember(rapidjson::StringRef(name.data(), name.size()));
    return it == message_.MemberEnd() ? nullptr : &it->value;
}

}  // namespace syncline
