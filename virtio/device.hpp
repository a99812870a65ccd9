// What a virtio device implements; the transport (virtio/mmio.hpp) calls it and knows
// nothing device-specific, and the device knows nothing of the transport.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <span>
#include <vector>

#include "virtio/queue.hpp"
#include "vmm/event_loop.hpp"

namespace hyper::virtio {

inline constexpr uint64_t kFeatureVersion1 = 1ULL << 32;
inline constexpr uint64_t kFeatureRingEventIdx = 1ULL << 29;
inline constexpr uint64_t kFeatureRingIndirectDesc = 1ULL << 28;

// Handed to a device when the driver sets DRIVER_OK.
struct Activation {
  const GuestMemory* memory;
  uint64_t features;            // what the driver accepted
  std::vector<Queue> queues;    // one per queue the device declared, ready to use
  std::function<void()> notify_used;  // raise the used-buffer interrupt
  // Report a broken ring: the transport sets DEVICE_NEEDS_RESET and raises a
  // configuration-change interrupt, so the driver resets the device.
  std::function<void()> needs_reset = [] {};
};

// Interrupts the driver if it asked to hear about the chains used since the last call
// (a ring too broken to tell gets the interrupt anyway).
inline void notify_if_wanted(Activation& active, Queue& queue) {
  auto wanted = queue.should_notify();
  if (!wanted || *wanted) active.notify_used();
}

// A config-space read of `out.size()` bytes at `offset` from a device's `config` bytes;
// bytes past its end read as zero.
inline void read_config_window(std::span<const uint8_t> config, uint64_t offset, std::span<uint8_t> out) {
  for (size_t i = 0; i < out.size(); ++i) out[i] = offset + i < config.size() ? config[offset + i] : 0;
}

// Serves every chain the driver made available on `queue`: `serve(chain)` returns the
// bytes it wrote into the chain's buffers; each chain is then returned as used and the
// driver interrupted if it asked to be. Returns false when the ring is broken (the
// device should stop serving it until the driver resets it).
template <class Serve>
[[nodiscard]] bool serve_queue(Activation& active, size_t queue, Serve&& serve) {
  Queue& q = active.queues[queue];
  bool used_any = false;
  for (;;) {
    auto chain = q.pop();
    if (!chain) return false;
    if (!chain->has_value()) break;
    if (!q.push_used((*chain)->head, serve(**chain))) return false;
    used_any = true;
  }
  if (used_any) notify_if_wanted(active, q);
  return true;
}

// What a device holds between DRIVER_OK and reset: its activation, under a lock shared by
// the event loop (queue work) and the transport (activate/reset).
class ActivationSlot {
 public:
  // Takes `activation` if it carries exactly `queues` queues.
  [[nodiscard]] Status set(Activation activation, size_t queues, const char* device) {
    if (activation.queues.size() != queues)
      return make_error(Errc::invalid_argument, std::string(device) + ": expected " + std::to_string(queues) + " queue(s)");
    std::lock_guard lock(mutex_);
    active_ = std::move(activation);
    return {};
  }
  void clear() {
    std::lock_guard lock(mutex_);
    active_.reset();
  }
  // Runs `work(activation)` when active; work returns false when the ring broke: the
  // device then reports NEEDS_RESET and stays inactive until the driver resets it, and
  // `broken` counts it. Returns that verdict.
  template <class Work>
  bool run(Work&& work) {
    std::lock_guard lock(mutex_);
    if (!active_) return true;  // a kick before DRIVER_OK or after a reset
    if (work(*active_)) return true;
    active_->needs_reset();
    active_.reset();
    ++broken_;
    return false;
  }
  // The queues' state, without waiting: a device thread that holds the slot (serving a
  // request, or stuck in one) is itself the answer.
  [[nodiscard]] std::string describe() const {
    std::unique_lock lock(mutex_, std::try_to_lock);
    if (!lock.owns_lock()) return "busy: its thread is serving a request";
    std::string text = active_ ? "active" : "inactive";
    if (broken_) text += ", " + std::to_string(broken_) + " broken ring(s) so far";
    if (active_) {
      for (size_t q = 0; q < active_->queues.size(); ++q)
        text += "\n  queue " + std::to_string(q) + ": " + active_->queues[q].describe();
    }
    return text;
  }
  // Each queue's position; empty when inactive.
  [[nodiscard]] std::vector<QueuePosition> positions() const {
    std::lock_guard lock(mutex_);
    std::vector<QueuePosition> out;
    if (active_)
      for (const auto& q : active_->queues) out.push_back(q.position());
    return out;
  }
  // Rings found broken since start.
  [[nodiscard]] uint64_t broken() const {
    std::lock_guard lock(mutex_);
    return broken_;
  }

 private:
  mutable std::mutex mutex_;
  std::optional<Activation> active_;
  uint64_t broken_ = 0;
};

class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;
  [[nodiscard]] virtual uint32_t device_type() const = 0;
  // Must include kFeatureVersion1.
  [[nodiscard]] virtual uint64_t device_features() const = 0;
  // The maximum size of each queue; the count is the number of queues.
  [[nodiscard]] virtual std::vector<uint16_t> queue_max_sizes() const = 0;
  virtual void read_config(uint64_t offset, std::span<uint8_t> data) const = 0;
  virtual void write_config(uint64_t offset, std::span<const uint8_t> data) = 0;
  // The driver is ready; an error puts the device into DEVICE_NEEDS_RESET.
  [[nodiscard]] virtual Status activate(Activation activation) = 0;
  // The driver kicked queue `index` (when no ioeventfd carries the kick).
  virtual void queue_notify(uint32_t index) = 0;
  // The driver reset the device: drop every queue and in-flight request.
  virtual void reset() = 0;
  // Called once on the machine's event-loop thread before the guest runs: a device with
  // a host backend (a tap, sockets) watches its fds here. Handlers then run on that
  // thread, as do queue_notify() calls that come from ioeventfds.
  [[nodiscard]] virtual Status attach(EventLoop& /*loop*/) { return {}; }
  // Whether the machine should serve this device's queue kicks on a thread of its own
  // rather than the shared event loop: for devices whose work blocks (disk I/O).
  [[nodiscard]] virtual bool wants_io_thread() const { return false; }
  // Its queues and whatever else explains a stalled guest (Machine::describe_devices).
  [[nodiscard]] virtual std::string describe() const { return {}; }
  // Snapshots: where each active queue is (empty when inactive, or when the device cannot
  // be saved), and whether it can be saved at all (a device whose queues another process
  // serves cannot).
  [[nodiscard]] virtual bool can_snapshot() const { return true; }
  [[nodiscard]] virtual std::vector<QueuePosition> queue_positions() const { return {}; }
  // Called after a restore re-activated the device: what a new host behind the same
  // guest driver must tell it (vsock: its connections are gone). True when the driver
  // must read the configuration again (a disk restored onto another image: its size),
  // which the transport then announces with a configuration-change interrupt.
  virtual bool restored() { return false; }
};

}  // namespace hyper::virtio
