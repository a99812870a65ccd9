// An export on an NBD server behind a virtio-blk disk, through libnbd's asynchronous API:
// a request's segments go out back to back (pipelined, straight from and into guest
// memory), then finish() waits for all their replies within the network timeout.
//
// When the server goes away (the connection closes or breaks) or stops answering, the
// disk gives it up for good: the connection is shut down, the guest's requests fail with
// VIRTIO_BLK_S_IOERR from then on, and the VMM and its other devices go on. Once given
// up, libnbd is not called again, so no late reply can reach guest memory.
#include <libnbd.h>
#include <sys/socket.h>

#include <atomic>
#include <mutex>

#include "virtio/block_backend.hpp"
#include "virtio/nbd_connection.hpp"

namespace hyper::virtio {
namespace {

class NbdBackend final : public BlockBackend {
 public:
  NbdBackend(NbdHandle handle, const BlkOptions& options)
      : handle_(std::move(handle)),
        uri_(options.path),
        timeout_ms_(options.network_timeout_ms),
        log_(options.log),
        size_(static_cast<uint64_t>(nbd_get_size(handle_.get()))),
        can_flush_(nbd_can_flush(handle_.get()) == 1),
        socket_(nbd_aio_get_fd(handle_.get())) {}

  uint64_t size_bytes() const override { return size_; }
  bool can_flush() const override { return can_flush_; }

  bool start_read(std::span<uint8_t> into, uint64_t offset) override {
    if (gone_.load()) return false;
    return track(nbd_aio_pread(handle_.get(), into.data(), into.size(), offset, NBD_NULL_COMPLETION, 0));
  }
  bool start_write(std::span<const uint8_t> from, uint64_t offset) override {
    if (gone_.load()) return false;
    return track(nbd_aio_pwrite(handle_.get(), from.data(), from.size(), offset, NBD_NULL_COMPLETION, 0));
  }
  bool flush() override {
    const bool started = !gone_.load() && track(nbd_aio_flush(handle_.get(), NBD_NULL_COMPLETION, 0));
    return finish() && started;
  }
  bool finish() override;

  std::vector<int> sockets() const override { return {socket_}; }
  std::string describe() const override {
    return "NBD " + uri_ + (gone_.load() ? ": server given up (" + gone_reason() + ")" : ": connected");
  }

 private:
  bool track(int64_t cookie) {
    if (cookie < 0) return false;
    cookies_.push_back(static_cast<uint64_t>(cookie));
    return true;
  }
  bool connection_lost() { return nbd_aio_is_dead(handle_.get()) == 1 || nbd_aio_is_closed(handle_.get()) == 1; }
  void give_up(const std::string& why);
  std::string gone_reason() const {
    std::lock_guard lock(reason_mutex_);
    return gone_reason_;
  }

  NbdHandle handle_;
  std::string uri_;
  uint32_t timeout_ms_;
  std::function<void(const std::string&)> log_;
  uint64_t size_;
  bool can_flush_;
  int socket_;
  std::vector<uint64_t> cookies_;  // started since the last finish()
  std::atomic<bool> gone_{false};
  mutable std::mutex reason_mutex_;
  std::string gone_reason_;
};

bool NbdBackend::finish() {
  if (gone_.load()) {
    cookies_.clear();
    return false;
  }
  nbd_handle* h = handle_.get();
  // A lost connection ends the wait too: libnbd then fails every command in flight.
  const Status answered = nbd_poll_until(h, timeout_ms_, [&] { return nbd_aio_in_flight(h) == 0 || connection_lost(); },
                                         "disk " + uri_);
  bool ok = answered.ok();
  if (ok) {
    for (const uint64_t cookie : cookies_) ok = nbd_aio_command_completed(h, cookie) == 1 && ok;
  }
  cookies_.clear();
  if (!answered.ok()) {
    give_up(answered.error().message);
  } else if (connection_lost()) {
    give_up(nbd_error("disk " + uri_ + ": the connection to the NBD server was lost").message);
  }
  return ok && !gone_.load();
}

void NbdBackend::give_up(const std::string& why) {
  if (gone_.exchange(true)) return;
  // Whatever is still in flight stays unanswered: nothing reads this socket again.
  ::shutdown(socket_, SHUT_RDWR);
  {
    std::lock_guard lock(reason_mutex_);
    gone_reason_ = why;
  }
  log_(why + "; the server is given up and the guest's requests to this disk now fail");
}

}  // namespace

Result<std::unique_ptr<BlockBackend>> open_nbd_backend(const BlkOptions& options) {
  NbdHandle handle = HYPER_TRY(connect_nbd(options.path, options.network_timeout_ms));
  const int64_t size = nbd_get_size(handle.get());
  if (size < 0) return nbd_error("disk " + options.path);
  if (!options.read_only && nbd_is_read_only(handle.get()) == 1)
    return make_error(Errc::invalid_argument, "disk " + options.path + ": the NBD export is read-only (open it with ro)");
  return std::unique_ptr<BlockBackend>(new NbdBackend(std::move(handle), options));
}

}  // namespace hyper::virtio
