// The kernel and initrd files a loader reads: regular, non-empty, opened without
// blocking (a FIFO given as a kernel would otherwise block open() forever).
#pragma once

#include <cstdint>
#include <string>

#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::boot {

struct BootFile {
  UniqueFd fd;
  uint64_t size = 0;
};

// `role` names the file in errors: "kernel", "initrd".
[[nodiscard]] Result<BootFile> open_boot_file(const std::string& path, const char* role);

}  // namespace hyper::boot
