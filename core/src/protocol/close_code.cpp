#include <syncline/core/protocol/close_code.hpp>

namespace syncline {
namespace {

class CloseCategory final : public std::error_category {
public:
    const char* name() const noexcept override { return "websocket close"; }
    std::string message(int value) const override {
        switch (static_cast<CloseCode>(value)) {
            case CloseCode::kNormal:
                return "normal closure";
            case CloseCode::kGoingAway:
                return "going away";
            case CloseCode::kInvalidPayload:
                return "invalid frame payload data";
            case CloseCode::kPolicyViolation:
                return "policy violation";
            case CloseCode::kMessageTooBig:
                return "message too big";
            case CloseCode::kInternalError:
                return "internal server error";
            case CloseCode::kTryAgainLater:
                return "try again later";
        }
        return "close code " + std::to_string(value);
    }
};

}  // namespace

const std::error_category& close_category() {
    static const CloseCategory category;
    return category;
}

std::error_code make_error_code(CloseCode code) { return {ToInt(code), close_category()}; }

}  // namespace syncline
