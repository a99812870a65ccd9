// The virtio-mmio transport, version 2 (virtio 1.x, section 4.2): the register window a
// guest driver sees, the device-status state machine with only the legal transitions,
// feature negotiation (VIRTIO_F_VERSION_1 required), queue set-up, interrupt status.
// Every register access comes from the guest and is treated as hostile.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "virtio/device.hpp"
#include "vmm/bus.hpp"
#include "vmm/event_fd.hpp"

namespace hyper::virtio {

inline constexpr uint64_t kMmioWindowSize = 0x1000;  // "4K" in mmio_cmdline_entry
inline constexpr uint64_t kMmioQueueNotify = 0x050;  // the register a kick writes

// Device-status bits (virtio 1.x, section 2.1).
enum StatusBit : uint32_t {
  kStatusAcknowledge = 1,
  kStatusDriver = 2,
  kStatusDriverOk = 4,
  kStatusFeaturesOk = 8,
  kStatusNeedsReset = 64,
  kStatusFailed = 128,
};

// "virtio_mmio.device=4K@0xd0000000:5": how Linux learns of a device without ACPI/DT.
[[nodiscard]] std::string mmio_cmdline_entry(uint64_t base, uint32_t irq);

class MmioTransport final : public BusDevice {
 public:
  MmioTransport(std::shared_ptr<VirtioDevice> device, const GuestMemory& memory, EventFd irq);

  void read(uint64_t base, uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t base, uint64_t offset, std::span<const uint8_t> data) override;

  [[nodiscard]] int irq_fd() const { return irq_.fd(); }
  [[nodiscard]] uint32_t status() const;
  // The transport's registers and the device's queues, for Machine::describe_devices.
  [[nodiscard]] std::string describe() const;
  // Register writes the state machine refused (illegal transitions, bad values).
  [[nodiscard]] uint64_t rejected_writes() const;
  // Snapshots, taken while no vCPU runs: the registers and each queue's layout and
  // position. restore() needs a device of the same type and queue count, re-activates
  // it when the driver had, and then lets it tell the driver what a restore changed.
  [[nodiscard]] std::vector<uint8_t> save() const;
  [[nodiscard]] Status restore(std::span<const uint8_t> bytes, const std::string& what);

 private:
  struct QueueState {
    uint16_t max_size;
    uint16_t size = 0;
    bool ready = false;
    uint64_t desc = 0, driver = 0, device = 0;
  };

  uint32_t read_register(uint64_t offset) const;
  void write_register(uint64_t offset, uint32_t value);
  void write_status(uint32_t value);
  bool features_acceptable() const;
  [[nodiscard]] std::optional<std::string> impossible_state_locked() const;
  // The queues as the driver set them up, for the device at DRIVER_OK.
  Result<Activation> activation_locked();
  void enter_needs_reset();
  void reset_locked();
  void raise(uint32_t interrupt_bit);
  [[nodiscard]] bool configuring_queues() const;
  QueueState* selected_queue();
  const QueueState* selected_queue() const;

  std::shared_ptr<VirtioDevice> device_;
  const GuestMemory* memory_;
  EventFd irq_;
  mutable std::mutex mutex_;
  std::vector<QueueState> queues_;
  uint32_t status_ = 0;
  uint32_t device_features_sel_ = 0, driver_features_sel_ = 0, queue_sel_ = 0;
  uint64_t driver_features_ = 0;
  uint32_t interrupt_status_ = 0;
  uint32_t config_generation_ = 0;
  uint64_t rejected_ = 0;
};

}  // namespace hyper::virtio
