// virtio-net (device type 1) over a tap: one receive and one transmit queue, the 12-byte
// virtio-net header passed through to the tap so checksum and TSO offloads reach the host
// stack, mergeable receive buffers, the MAC address and link status in config space.
// Transmit is zero-copy (writev from guest memory); a received frame is read once into a
// scratch buffer and copied into as many receive chains as it needs. All work runs on the
// event-loop thread; the tap is only watched while the guest has receive buffers.
#pragma once

#include <sys/uio.h>

#include <array>
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "virtio/device.hpp"
#include "vmm/mac_address.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::virtio {

using hyper::format_mac;
using hyper::MacAddress;
using hyper::parse_mac;
// A random, locally administered unicast address (02:xx:xx:xx:xx:xx).
[[nodiscard]] MacAddress random_mac();

struct NetOptions {
  std::string tap;
  // An already-open tap, dup'ed by Net::open; `tap` is then only its name for messages.
  int tap_fd = -1;
  std::optional<MacAddress> mac;  // random when absent
};

class Net final : public VirtioDevice {
 public:
  // The largest frame a tap hands over with TSO: a 64 KiB IP packet plus Ethernet and VLAN.
  static constexpr uint32_t kMaxFrame = 65550;

  static Result<std::shared_ptr<Net>> open(const NetOptions& options);
  // Over any packet fd whose datagrams carry a virtio-net header (a SOCK_SEQPACKET socket
  // in tests); `is_tap` says whether tap offload ioctls apply.
  static std::shared_ptr<Net> over_fd(UniqueFd packets, MacAddress mac, bool is_tap);

  uint32_t device_type() const override { return 1; }
  uint64_t device_features() const override;
  std::vector<uint16_t> queue_max_sizes() const override { return {256, 256}; }
  void read_config(uint64_t offset, std::span<uint8_t> data) const override;
  void write_config(uint64_t, std::span<const uint8_t>) override {}
  Status activate(Activation activation) override;
  void queue_notify(uint32_t index) override;
  void reset() override;
  Status attach(EventLoop& loop) override;
  std::string describe() const override { return slot_.describe(); }
  std::vector<QueuePosition> queue_positions() const override { return slot_.positions(); }

  [[nodiscard]] const MacAddress& mac() const { return mac_; }
  struct Stats {
    uint64_t rx_frames, tx_frames, rx_dropped, tx_dropped;
  };
  [[nodiscard]] Stats stats() const;

 private:
  enum class Delivery { done, stalled, broken };

  Net(UniqueFd fd, MacAddress mac, bool is_tap);
  void on_backend_readable();
  // Both run with the activation locked and return false when a ring broke.
  bool receive(Activation& active, bool& stalled);
  bool transmit(Activation& active);
  bool read_frame();
  Delivery deliver_frame(Activation& active);
  // Applies `change` to the watch state, then watches the backend for frames exactly
  // when the driver is active and has not run out of receive buffers.
  template <class Change>
  void update_watch(Change&& change);

  UniqueFd fd_;
  MacAddress mac_;
  bool is_tap_;
  ActivationSlot slot_;
  EventLoop* loop_ = nullptr;
  std::mutex watch_mutex_;
  bool active_ = false, stalled_ = false, watching_ = false;

  // Receive state, touched only with the activation locked.
  std::vector<uint8_t> frame_;  // header + frame, kVirtioNetHeaderSize + kMaxFrame bytes
  size_t frame_len_ = 0;        // 0: no frame waiting for guest buffers
  size_t frame_done_ = 0;       // bytes of it already copied into `held_` chains
  std::vector<DescriptorChain> held_;  // chains filled with the frame so far
  std::vector<uint32_t> held_len_;
  std::vector<iovec> iov_;  // transmit scatter list, reused

  std::atomic<uint64_t> rx_frames_{0}, tx_frames_{0}, rx_dropped_{0}, tx_dropped_{0};
};

}  // namespace hyper::virtio
