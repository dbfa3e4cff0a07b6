// PushCheck (subscriptions.hpp): the request a push is checked as, built once per row and action, so that the
// observer never writes a client's frame to ask a permission.

#include <syncline/core/consumer/subscriptions.hpp>

namespace syncline {

PushCheck::PushCheck(std::string action, const Value& pk) : action_(std::move(action)) {
    auto& allocator = message_.GetAllocator();
    message_.SetObject();
    message_.AddMember("action", rapidjson::Value(action_.c_str(), allocator), allocator);
    if (pk.kind() == Value::Kind::kInteger) {
        message_.AddMember("pk", static_cast<int64_t>(pk.AsInteger()), allocator);
    } else if (pk.kind() == Value::Kind::kText) {
        const std::string& text = pk.AsText();
        message_.AddMember("pk", rapidjson::Value(text.data(), static_cast<rapidjson::SizeType>(text.size()), allocator),
                           allocator);
    }
}

bool PushCheck::Allowed(const GenericConsumer& consumer, ConnectionContext& connection) const {
    return consumer.HasPermission(ActionRequest(connection, action_, message_));
}

bool PushCheck::CanSee(const GenericConsumer& consumer, ConnectionContext& connection, const Row& row) const {
    return consumer.CanSee(ActionRequest(connection, action_, message_), row);
}

PushCheck::Verdict PushCheck::AllowedAndSees(const GenericConsumer& consumer, ConnectionContext& connection,
                                             const Row* row) const {
    const ActionRequest request(connection, action_, message_);
    if (!consumer.HasPermission(request)) return Verdict::kDenied;
    return row && consumer.CanSee(request, *row) ? Verdict::kVisible : Verdict::kHidden;
}

}  // namespace syncline
