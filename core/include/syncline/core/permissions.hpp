#pragma once
/// \file
/// Permissions (PROTOCOL.md §8): each answers CanConnect at the handshake and HasPermission per request.

#include <memory>
#include <string_view>

#include <syncline/core/consumer.hpp>

namespace syncline {

/// A permission. Implementations must be thread-safe (shared by every connection) and should not block.
class Permission {
public:
    virtual ~Permission() = default;
    /// May this connection open? false refuses the handshake with HTTP 403.
    virtual bool CanConnect(const ConnectionContext& connection) const {
        (void)connection;
        return true;
    }
    /// May this request run? false answers 403 before the action is even looked up.
    virtual bool HasPermission(const ActionRequest& request, const GenericConsumer& consumer) const = 0;
};

/// Allows everything (the default).
class AllowAny final : public Permission {
public:
    bool HasPermission(const ActionRequest& request, const GenericConsumer& consumer) const override;
};

}  // namespace syncline
