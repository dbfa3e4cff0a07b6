#include <syncline/core/model/change.hpp>

namespace syncline {

std::string_view ChangeOpName(ChangeOp op) {
    switch (op) {
        case ChangeOp::kInsert:
            return "insert";
        case ChangeOp::kUpdate:
            return "update";
        case ChangeOp::kDelete:
            return "delete";
    }
    return "?";
}

}  // namespace syncline
