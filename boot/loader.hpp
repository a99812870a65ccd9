// Puts a kernel, its initrd and every boot structure into guest memory.
#pragma once

#include <optional>
#include <string>

#include "boot/boot_info.hpp"
#include "boot/kernel_image.hpp"
#include "vmm/guest_memory.hpp"

namespace hyper::boot {

struct BootRequest {
  std::string kernel_path;
  std::optional<std::string> initrd_path;
  std::string cmdline;
  uint32_t vcpus = 1;
};

// Loads everything and returns the parsed kernel, whose format and entry decide the
// boot vCPU's registers (see cpu_state.hpp).
[[nodiscard]] Result<KernelImage> load_boot_image(const GuestMemory& memory, const BootRequest& request);

}  // namespace hyper::boot
