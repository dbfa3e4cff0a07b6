#pragma once
/// \file
/// From a text frame to its reply (PROTOCOL.md §1-§4, §10): the envelope's errors, permission (403) and action lookup
/// (405), then the action, inline or, when detached, on an executor. ConsumerEndpoint's sessions call it for every
/// frame.

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <rapidjson/document.h>

#include <syncline/core/consumer/consumer.hpp>
#include <syncline/core/protocol/envelope.hpp>
#include <syncline/core/support/executor.hpp>

namespace syncline {

/// Both read the frame and write every reply in the consumer's envelope (GenericConsumer::envelope()), then check
/// permission (403) before the action lookup (405): a non-string action answers 405 once permission allows it.

/// Answers one text frame on a connection, synchronously: the reply frame to send, exactly one, except for a
/// streaming action, whose frames went to the connection's outbox (then ""). Detached actions run inline.
std::string HandleTextFrame(GenericConsumer& consumer, ConnectionContext& connection, std::string_view frame);

/// Answers one text frame on a connection through its outbox, bracketed by the connection's push gate. Envelope
/// errors, 403 and 405 are answered at once, as are ordinary actions; a detached action is posted to `executor` on
/// the connection's lane and answers when it finishes (a 500 frame if it throws; nothing if the connection closed
/// first; a detached writer holds the push gate until its reply). Its continuation steps (ActionResult::Continue)
/// are posted one by one, each once the socket has room (at most ActionRequest::kStreamQueueBytes queued), so a
/// stream waiting for a slow reader holds no thread. A detached action beyond the connection's
/// ConnectionLimits::max_pending_actions in progress on it (0: no limit) answers 429. With no executor, detached
/// actions run inline. Call it from the connection's serial thread of calls.
void ServeTextFrame(const std::shared_ptr<GenericConsumer>& consumer,
                    const std::shared_ptr<ConnectionContext>& connection, std::string_view frame, Executor* executor);

}  // namespace syncline
