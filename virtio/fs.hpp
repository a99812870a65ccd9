// virtio-fs (device type 26) served by a vhost-user back-end such as virtiofsd: the
// guest's FUSE requests go from its rings straight to the back-end process, which maps
// guest memory itself; the VMM only sets the rings up and tears them down.
//  - Config space: the mount tag (36 bytes, NUL-padded), then num_request_queues (le32, 1).
//  - Queues: hiprio (FORGET and INTERRUPT) and one request queue.
//  - Kicks: the machine registers the back-end's kick eventfds as the queues' ioeventfds,
//    so a guest's kick reaches the back-end from KVM without waking the VMM.
//  - Interrupts: the back-end signals a call eventfd per ring; the event loop turns it
//    into the transport's used-buffer interrupt (InterruptStatus, then the irq).
//  - The set-up runs when the driver sets DRIVER_OK and the tear-down (GET_VRING_BASE)
//    when it resets the device, on the vCPU that wrote the status, each request bounded
//    by the reply timeout.
//  - A back-end that hangs up, or fails the protocol, makes the device report
//    DEVICE_NEEDS_RESET; it stays unusable (every activation fails) and the VMM runs on.
#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "virtio/device.hpp"
#include "virtio/vhost_user.hpp"
#include "vmm/event_fd.hpp"

namespace hyper::virtio {

struct FsOptions {
  // A back-end listening on this Unix socket (virtiofsd --socket-path=PATH) ...
  std::string socket_path;
  // ... or an already connected socket, dup'ed (e.g. one end of a socketpair whose other
  // end virtiofsd got with --fd=N); socket_path then only names it in messages.
  int socket_fd = -1;
  // What the guest mounts: mount -t virtiofs TAG /mnt. 1 to 36 bytes.
  std::string tag;
  // How long the back-end may take to answer one request (connection set-up, ring
  // set-up at DRIVER_OK, ring stop at reset); keep it below the 5 s a vCPU has to stop.
  uint32_t reply_timeout_ms = vhost_user::Frontend::kDefaultReplyTimeoutMs;
  // Gets a line when the back-end goes away (the machine passes its log).
  std::function<void(const std::string&)> log = [](const std::string&) {};
};

// A tag the device can carry: 1 to 36 bytes, no NUL.
[[nodiscard]] Status check_fs_tag(const std::string& tag);

class Fs final : public VirtioDevice {
 public:
  static constexpr uint32_t kDeviceType = 26;
  static constexpr size_t kTagBytes = 36;
  static constexpr uint32_t kRequestQueues = 1;
  static constexpr uint32_t kQueues = 1 + kRequestQueues;  // hiprio, then the request queue
  static constexpr uint16_t kQueueSize = 1024;

  // Connects to the back-end and opens the session (features, owner).
  static Result<std::shared_ptr<Fs>> connect(const FsOptions& options);

  uint32_t device_type() const override { return kDeviceType; }
  uint64_t device_features() const override { return features_; }
  std::vector<uint16_t> queue_max_sizes() const override { return std::vector<uint16_t>(kQueues, kQueueSize); }
  void read_config(uint64_t offset, std::span<uint8_t> data) const override;
  void write_config(uint64_t, std::span<const uint8_t>) override {}
  Status activate(Activation activation) override;
  void queue_notify(uint32_t index) override;
  void reset() override;
  Status attach(EventLoop& loop) override;
  std::string describe() const override;
  // virtiofsd holds the queues: their positions are not ours to save.
  bool can_snapshot() const override { return false; }

  // The eventfds the back-end waits on, one per queue: the machine registers them as
  // the queues' ioeventfds.
  [[nodiscard]] std::vector<int> kick_fds() const;
  // The back-end's socket: vCPU threads may send and receive on it (vmm/seccomp.hpp).
  [[nodiscard]] int socket_fd() const { return socket_fd_; }
  [[nodiscard]] const std::string& tag() const { return options_.tag; }
  // Whether the back-end hung up or failed the protocol.
  [[nodiscard]] bool backend_gone() const { return gone_.load(); }

 private:
  Fs(FsOptions options, vhost_user::Frontend frontend, uint64_t backend_features,
     std::array<EventFd, kQueues> kicks, std::array<EventFd, kQueues> calls);

  struct RingPlan {
    std::vector<vhost_user::SharedRegion> memory;
    std::array<vhost_user::VringAddress, kQueues> rings;
    std::array<uint16_t, kQueues> sizes;
  };
  [[nodiscard]] static Result<RingPlan> plan_rings(const Activation& activation);
  // Under control_: the requests that hand the rings over, and the ones that stop them.
  [[nodiscard]] Status start_rings(uint64_t driver_features, const RingPlan& plan);
  void stop_rings();
  void forward_call(uint32_t queue);
  void on_backend_hangup();

  FsOptions options_;
  uint64_t backend_features_;
  uint64_t features_;  // what we offer the driver
  int socket_fd_;
  std::array<EventFd, kQueues> kicks_;
  std::array<EventFd, kQueues> calls_;
  ActivationSlot slot_;
  std::atomic<bool> gone_{false};
  EventLoop* loop_ = nullptr;

  mutable std::mutex control_;  // the conversation with the back-end; taken before slot_'s
  vhost_user::Frontend frontend_;
  std::array<bool, kQueues> started_{};
  uint64_t activations_ = 0;
};

}  // namespace hyper::virtio
