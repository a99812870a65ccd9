// What every container VM is made of besides its image: the guest kernel, the init's
// initramfs, and the machine settings a container gets unless it asks otherwise.
#pragma once

#include <cstdint>
#include <string>

#include "vmm/result.hpp"

namespace hyper::runtime {

inline constexpr uint32_t kDefaultCpus = 1;
inline constexpr uint64_t kDefaultMemoryMib = 256;
inline constexpr uint64_t kGuestCid = 3;
// The kernel's own chatter costs a VM exit per byte on the serial console.
inline constexpr const char* kGuestCmdline = "quiet";

struct GuestArtifacts {
  std::string kernel;
  std::string initrd;
};

// $HYPER_KERNEL and $HYPER_INITRD, else the ones this build made (scripts/setup).
Result<GuestArtifacts> find_guest_artifacts();

}  // namespace hyper::runtime
