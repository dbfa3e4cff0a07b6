#include "hiredis_asio.hpp"

#include <hiredis/async.h>

#include <boost/asio/posix/stream_descriptor.hpp>

#include <memory>
#include <utility>

namespace syncline::observer::detail {
namespace {

namespace asio = boost::asio;

// One per attached context; ac->ev.data points at it. It keeps itself alive (self_) until hiredis calls cleanup, and
// each armed wait holds a reference too, so a wait that completes after the context is gone finds a live object
// whose context_ is null.
class AsioEvents : public std::enable_shared_from_this<AsioEvents> {
public:
    AsioEvents(redisAsyncContext* ac, asio::io_context& io) : context_(ac), descriptor_(io) {}

    bool Assign() {
        boost::system::error_code ec;
        descriptor_.assign(context_->c.fd, ec);
        if (ec) return false;
        self_ = shared_from_this();
        return true;
    }

    static void AddRead(void* data) {
        auto* self = static_cast<AsioEvents*>(data);
        self->want_read_ = true;
        self->ArmRead();
    }
    static void DelRead(void* data) { static_cast<AsioEvents*>(data)->want_read_ = false; }
    static void AddWrite(void* data) {
        auto* self = static_cast<AsioEvents*>(data);
        self->want_write_ = true;
        self->ArmWrite();
    }
    static void DelWrite(void* data) { static_cast<AsioEvents*>(data)->want_write_ = false; }
    static void Cleanup(void* data) {
        auto* self = static_cast<AsioEvents*>(data);
        // Holding the last self-reference here lets the object outlive the rest of this function; armed waits keep
        // their own references until their (aborted) completions have run.
        std::shared_ptr<AsioEvents> keep = std::move(self->self_);
        self->context_ = nullptr;
        self->want_read_ = false;
        self->want_write_ = false;
        // release(), never close(): hiredis closes the fd right after this hook returns. Releasing deregisters the fd
        // from the reactor and completes the armed waits with operation_aborted.
        self->descriptor_.release();
    }

private:
    void ArmRead() {
        if (read_armed_ || context_ == nullptr) return;
        read_armed_ = true;
        descriptor_.async_wait(asio::posix::stream_descriptor::wait_read,
                               [self = shared_from_this()](const boost::system::error_code& ec) {
                                   self->read_armed_ = false;
                                   if (ec || self->context_ == nullptr || !self->want_read_) return;
                                   // May free the context (cleanup runs inside); nothing here touches it afterwards.
                                   redisAsyncHandleRead(self->context_);
                               });
    }

    void ArmWrite() {
        if (write_armed_ || context_ == nullptr) return;
        write_armed_ = true;
        descriptor_.async_wait(asio::posix::stream_descriptor::wait_write,
                               [self = shared_from_this()](const boost::system::error_code& ec) {
                                   self->write_armed_ = false;
                                   if (ec || self->context_ == nullptr || !self->want_write_) return;
                                   redisAsyncHandleWrite(self->context_);
                               });
    }

    redisAsyncContext* context_;
    asio::posix::stream_descriptor descriptor_;
    std::shared_ptr<AsioEvents> self_;
    bool want_read_ = false;
    bool want_write_ = false;
    bool read_armed_ = false;
    bool write_armed_ = false;
};

}  // namespace

bool AttachAsio(redisAsyncContext* ac, asio::io_context& io) {
    if (ac->ev.data != nullptr) return false;
    auto events = std::make_shared<AsioEvents>(ac, io);
    if (!events->Assign()) return false;
    ac->ev.data = events.get();
    ac->ev.addRead = &AsioEvents::AddRead;
    ac->ev.delRead = &AsioEvents::DelRead;
    ac->ev.addWrite = &AsioEvents::AddWrite;
    ac->ev.delWrite = &AsioEvents::DelWrite;
    ac->ev.cleanup = &AsioEvents::Cleanup;
    return true;
}

void RequestWrite(redisAsyncContext* ac) {
    if (ac->ev.addWrite != nullptr) ac->ev.addWrite(ac->ev.data);
}

}  // namespace syncline::observer::detail
