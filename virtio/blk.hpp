// virtio-blk (device type 2) over a raw image file: reads, writes, FLUSH (fdatasync, so
// data the guest flushed survives the VMM), GET_ID (serial), an optional read-only mode.
// Requests are validated against the image size and served, in order, on the disk's own
// I/O thread (or the event loop), straight between the image and guest memory.
#pragma once

#include <atomic>
#include <mutex>
#include <optional>
#include <string>

#include "virtio/device.hpp"
#include <memory>

#include "vmm/unique_fd.hpp"

namespace hyper::virtio {

struct BlkOptions {
  std::string path;
  bool read_only = false;
  std::string serial;  // GET_ID answer, at most 20 bytes
  // Serve the disk on an I/O thread of its own, so the event loop (console, network,
  // vsock) never waits for the disk; false serves it on the event loop.
  bool io_thread = true;
};

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
  std::string describe() const override { return slot_.describe(); }

  [[nodiscard]] uint64_t capacity_sectors() const { return sectors_; }
  [[nodiscard]] uint64_t rejected_requests() const { return rejected_.load(); }

  // Serves one request chain: returns the number of bytes written into the guest's
  // buffers (status byte included). Public for unit tests.
  uint32_t serve(const GuestMemory& memory, const DescriptorChain& chain);

 private:
  Blk(UniqueFd fd, uint64_t sectors, BlkOptions options)
      : fd_(std::move(fd)), sectors_(sectors), options_(std::move(options)) {}
  uint8_t execute(const GuestMemory& memory, const DescriptorChain& chain, uint32_t& data_in);

  UniqueFd fd_;
  uint64_t sectors_;
  BlkOptions options_;
  ActivationSlot slot_;
  std::atomic<uint64_t> rejected_{0};
};

}  // namespace hyper::virtio
