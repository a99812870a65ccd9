// virtio-rng (device type 4): fills the guest's buffers from getrandom(), so the guest's
// entropy pool is ready at boot. One queue; work runs when the queue is kicked.
#pragma once

#include <atomic>

#include "virtio/device.hpp"

namespace hyper::virtio {

class Rng final : public VirtioDevice {
 public:
  // At most this much entropy per request: a guest asking for more gets a short answer.
  static constexpr uint32_t kMaxBytesPerRequest = 64 * 1024;

  uint32_t device_type() const override { return 4; }
  uint64_t device_features() const override { return kFeatureVersion1 | kFeatureRingEventIdx; }
  std::vector<uint16_t> queue_max_sizes() const override { return {256}; }
  void read_config(uint64_t, std::span<uint8_t> data) const override;
  void write_config(uint64_t, std::span<const uint8_t>) override {}
  Status activate(Activation activation) override;
  void queue_notify(uint32_t index) override;
  void reset() override;
  std::string describe() const override { return slot_.describe(); }
  std::vector<QueuePosition> queue_positions() const override { return slot_.positions(); }

  [[nodiscard]] uint64_t bytes_served() const { return bytes_served_.load(); }

 private:
  ActivationSlot slot_;
  std::atomic<uint64_t> bytes_served_{0};
};

}  // namespace hyper::virtio
