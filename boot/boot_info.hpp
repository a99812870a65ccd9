// What a loader hands the kernel besides its image: where RAM is, the command line
// and the initrd. The PVH way (hvm_start_info) and the bzImage way (boot_params).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "boot/e820.hpp"
#include "boot/kernel_image.hpp"
#include "vmm/guest_memory.hpp"

namespace hyper::boot {

struct InitrdLocation {
  uint64_t gpa;
  uint64_t size;
};

// Highest page-aligned spot for an initrd of `size` bytes in low RAM, above the kernel
// and below what the kernel can address.
[[nodiscard]] Result<uint64_t> place_initrd(const GuestMemory& memory, const KernelImage& kernel, uint64_t size);

[[nodiscard]] Status write_cmdline(const GuestMemory& memory, const KernelImage& kernel, std::string_view cmdline);

// Writes hvm_start_info + memory map (+ module list) at layout::kPvhStartInfo.
[[nodiscard]] Status write_pvh_start_info(const GuestMemory& memory, const std::vector<E820Entry>& e820,
                                          std::optional<InitrdLocation> initrd);
// Writes struct boot_params at layout::kZeroPage.
[[nodiscard]] Status write_boot_params(const GuestMemory& memory, const KernelImage& kernel,
                                       const std::vector<E820Entry>& e820,
                                       std::optional<InitrdLocation> initrd);

}  // namespace hyper::boot
