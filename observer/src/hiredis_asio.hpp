#pragma once
// A hiredis 0.14 event-library adapter for Boost.Asio (hiredis ships none). Private to the observer module.
//
// hiredis drives I/O through five hooks (addRead, delRead, addWrite, delWrite, cleanup). Here each "add" arms one
// one-shot `async_wait` on a `posix::stream_descriptor` wrapping the context's fd; when it fires, the matching
// redisAsyncHandleRead/Write runs, and hiredis re-adds the interest it still has (it "always re-schedules reads" and
// re-adds writes until its output buffer is empty). "del" only clears the interest: an armed wait that later fires
// for an interest that was removed is ignored. `cleanup` (called while hiredis frees the context) releases the fd
// without closing it: hiredis owns and closes it.
//
// Thread rules: everything here runs on the one thread that runs the io_context given to AttachAsio, which must be
// the thread that makes every hiredis call on the context.

#include <boost/asio/io_context.hpp>

struct redisAsyncContext;

namespace syncline::observer::detail {

/// Attaches `ac` to `io`. Call right after redisAsyncConnect succeeded and before setting the connect callback
/// (setting it asks for a write event, which needs the hooks). Returns false (and attaches nothing) when the context
/// already has an event library or its fd cannot be registered with the reactor; the caller then frees the context.
bool AttachAsio(redisAsyncContext* ac, boost::asio::io_context& io);

/// Asks for a write event on an attached context, after bytes were appended to its output buffer directly (with
/// redisAppendCommandArgv, which registers no reply callback).
void RequestWrite(redisAsyncContext* ac);

}  // namespace syncline::observer::detail
