#include <syncline/core/model/store.hpp>

namespace syncline {
namespace {

class StoreCategory final : public std::error_category {
public:
    const char* name() const noexcept override { return "store"; }
    std::string message(int value) const override {
        switch (static_cast<StoreErrc>(value)) {
            case StoreErrc::kInvalid:
                return "invalid value";
            case StoreErrc::kConstraint:
                return "constraint violated";
            case StoreErrc::kBusy:
                return "database busy";
            case StoreErrc::kSchema:
                return "schema mismatch";
            case StoreErrc::kIo:
                return "database failure";
            case StoreErrc::kNotFound:
                return "row not found";
            case StoreErrc::kUnavailable:
                return "database unavailable";
        }
        return "store error " + std::to_string(value);
    }
};

}  // namespace

const std::error_category& store_category() {
    static const StoreCategory category;
    return category;
}

std::error_code make_error_code(StoreErrc errc) { return {static_cast<int>(errc), store_category()}; }

}  // namespace syncline
