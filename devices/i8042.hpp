// Just enough of the PC keyboard controller for Linux's `reboot=k`: the CPU-reset pulse
// (command 0xfe on port 0x64) becomes a reset request to the VMM.
#pragma once

#include <functional>

#include "vmm/bus.hpp"

namespace hyper::devices {

class I8042 final : public BusDevice {
 public:
  explicit I8042(std::function<void()> on_reset) : on_reset_(std::move(on_reset)) {}
  // Status reads 0: output buffer empty, input buffer empty, so the guest never waits.
  void read(uint64_t, uint64_t, std::span<uint8_t> data) override {
    for (auto& b : data) b = 0;
  }
  void write(uint64_t base, uint64_t offset, std::span<const uint8_t> data) override;

 private:
  std::function<void()> on_reset_;
};

}  // namespace hyper::devices
