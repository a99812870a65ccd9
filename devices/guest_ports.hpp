// Our paravirtual I/O ports: the guest-exit port (the byte written becomes the VMM's
// exit status) and the boot-timer port (written once by the guest init on reaching
// user space, so the VMM can report time-to-init as Firecracker does).
#pragma once

#include <functional>

#include "vmm/bus.hpp"

namespace hyper::devices {

class GuestExitPort final : public BusDevice {
 public:
  explicit GuestExitPort(std::function<void(int status)> on_exit) : on_exit_(std::move(on_exit)) {}
  void read(uint64_t, uint64_t, std::span<uint8_t> data) override {
    for (auto& b : data) b = 0;
  }
  void write(uint64_t, uint64_t, std::span<const uint8_t> data) override {
    if (!data.empty()) on_exit_(data[0]);
  }

 private:
  std::function<void(int)> on_exit_;
};

class BootTimerPort final : public BusDevice {
 public:
  explicit BootTimerPort(std::function<void()> on_boot_done) : on_boot_done_(std::move(on_boot_done)) {}
  void read(uint64_t, uint64_t, std::span<uint8_t> data) override {
    for (auto& b : data) b = 0;
  }
  void write(uint64_t, uint64_t, std::span<const uint8_t>) override { on_boot_done_(); }

 private:
  std::function<void()> on_boot_done_;
};

}  // namespace hyper::devices
