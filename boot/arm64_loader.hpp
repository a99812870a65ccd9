// Puts an arm64 kernel Image and its initrd into guest RAM and says where the device
// tree goes; the machine writes the tree (it names the initrd) with write_device_tree.
#pragma once

#include <optional>
#include <span>
#include <string>

#include "boot/device_tree.hpp"
#include "vmm/guest_memory.hpp"

namespace hyper::boot {

struct Arm64BootRequest {
  std::string kernel_path;
  std::optional<std::string> initrd_path;
  MmioRange ram;  // one region, its base 2 MiB-aligned
};

struct Arm64Boot {
  uint64_t entry = 0;  // the Image's first byte: x0 = device tree, PC here
  std::optional<MmioRange> initrd;
  uint64_t device_tree = 0;  // the last 2 MiB of RAM
};

[[nodiscard]] Result<Arm64Boot> load_arm64_kernel(const GuestMemory& memory, const Arm64BootRequest& request);
[[nodiscard]] Status write_device_tree(const GuestMemory& memory, const Arm64Boot& boot, std::span<const uint8_t> tree);

}  // namespace hyper::boot
