// A PIO or MMIO address space: ordered, non-overlapping ranges, each owned by a device.
// The bus is filled by the machine builder and read-only once vCPUs run, so lookups
// take no lock; devices serialize their own state.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "vmm/result.hpp"

namespace hyper {

class BusDevice {
 public:
  virtual ~BusDevice() = default;
  // `offset` is relative to the start of the range the device was inserted at.
  virtual void read(uint64_t base, uint64_t offset, std::span<uint8_t> data) = 0;
  virtual void write(uint64_t base, uint64_t offset, std::span<const uint8_t> data) = 0;
};

class Bus {
 public:
  explicit Bus(std::string name) : name_(std::move(name)) {}

  [[nodiscard]] Status insert(std::shared_ptr<BusDevice> device, uint64_t base, uint64_t len);
  // Return false when no device claims the address.
  bool read(uint64_t addr, std::span<uint8_t> data) const;
  bool write(uint64_t addr, std::span<const uint8_t> data) const;

 private:
  struct Range {
    uint64_t base;
    uint64_t len;
    std::shared_ptr<BusDevice> device;
  };
  [[nodiscard]] const Range* find(uint64_t addr, uint64_t len) const;

  std::string name_;
  std::vector<Range> ranges_;  // sorted by base
};

}  // namespace hyper
