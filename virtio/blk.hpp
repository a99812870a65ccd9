// virtio-blk (device type 2) over a raw image file or an NBD export (virtio/block_backend.hpp):
// reads, writes, FLUSH (fdatasync or NBD_CMD_FLUSH, so data the guest flushed survives the
// VMM), GET_ID (serial), an optional read-only mode. Requests are validated against the
// disk's size and served, in order, on the disk's own I/O thread (or the event loop),
// straight between the store and guest memory.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "virtio/blk_options.hpp"
#include "virtio/block_backend.hpp"
#include "virtio/device.hpp"

namespace hyper::virtio {

class Blk final : public VirtioDevice {
 public:
  static constexpr uint64_t kSectorSize = 512;
  // Advertised limits: without them Linux sends one segment per request (4 KiB, mostly),
  // which costs a round trip per page. Their product bounds the work of one request.
  static constexpr uint32_t kMaxSegments = 254;            // the queue size minus header and status
  static constexpr uint32_t kMaxSegmentBytes = 64 * 1024;
  static constexpr uint32_t kMaxRequestBytes = kMaxSegments * kMaxSegmentBytes;

  static Result<std::shared_ptr<Blk>> open(const BlkOptions& options);

  uint32_t device_type() const override { return 2; }
  uint64_t device_features() const override;
  std::vector<uint16_t> queue_max_sizes() const override { return {256}; }
  void read_config(uint64_t offset, std::span<uint8_t> data) const override;
  void write_config(uint64_t, std::span<const uint8_t>) override {}
  Status activate(Activation activation) override;
  void queue_notify(uint32_t index) override;
  void reset() override;
  bool wants_io_thread() const override { return options_.io_thread; }
  std::string describe() const override { return backend_->describe() + "; " + slot_.describe(); }
  std::vector<QueuePosition> queue_positions() const override { return slot_.positions(); }
  // Restored onto another image (a template's placeholder, then the container's disk).
  bool restored() override { return true; }

  [[nodiscard]] uint64_t capacity_sectors() const { return sectors_; }
  [[nodiscard]] uint64_t rejected_requests() const { return rejected_.load(); }
  // Sockets the disk's thread talks on (an NBD disk's connection), for its seccomp filter.
  [[nodiscard]] std::vector<int> sockets() const { return backend_->sockets(); }

  // Serves one request chain: returns the number of bytes written into the guest's
  // buffers (status byte included). Public for unit tests.
  uint32_t serve(const GuestMemory& memory, const DescriptorChain& chain);

 private:
  Blk(std::unique_ptr<BlockBackend> backend, uint64_t sectors, BlkOptions options)
      : backend_(std::move(backend)), sectors_(sectors), options_(std::move(options)) {
    buffers_.reserve(kMaxSegments + 2);
  }
  uint8_t execute(const GuestMemory& memory, const DescriptorChain& chain, uint32_t& data_in);
  // Host views of `len` bytes of the chain's buffers from byte `skip` on, into buffers_.
  bool gather(const GuestMemory& memory, const std::vector<Buffer>& chain, uint64_t skip, uint64_t len);

  std::unique_ptr<BlockBackend> backend_;
  std::vector<iovec> buffers_;  // the request being served (one at a time, in queue order)
  uint64_t sectors_;
  BlkOptions options_;
  ActivationSlot slot_;
  std::atomic<uint64_t> rejected_{0};
};

}  // namespace hyper::virtio
