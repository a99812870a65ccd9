// Parsing of Linux x86_64 kernel images, as pure functions over the image bytes:
// an ELF vmlinux with a PVH entry note, or a bzImage (64-bit boot protocol).
#pragma once

#include <asm/bootparam.h>

#include <cstdint>
#include <span>
#include <vector>

#include "vmm/result.hpp"

namespace hyper::boot {

enum class KernelFormat { elf_pvh, bzimage };

// A piece of the file to copy into guest memory; bytes past file_size up to mem_size
// are zero (ELF .bss).
struct LoadSegment {
  uint64_t gpa;
  uint64_t file_offset;
  uint64_t file_size;
  uint64_t mem_size;
};

struct KernelImage {
  KernelFormat format;
  std::vector<LoadSegment> segments;
  uint64_t entry;       // PVH: 32-bit protected-mode entry; bzImage: 64-bit entry
  uint64_t kernel_end;  // first guest-physical byte the kernel will not touch while booting
  // bzImage only: the setup header to hand back in boot_params, and its limits.
  setup_header header{};
  uint64_t initrd_addr_max = 0xffffffff;
  uint32_t cmdline_max = 2048;  // bytes, including the terminating NUL
};

[[nodiscard]] Result<KernelImage> parse_kernel(std::span<const uint8_t> image);
[[nodiscard]] Result<KernelImage> parse_elf_pvh(std::span<const uint8_t> image);
[[nodiscard]] Result<KernelImage> parse_bzimage(std::span<const uint8_t> image);

// Where we load a bzImage's protected-mode part (its 32-bit entry; +0x200 for 64-bit).
inline constexpr uint64_t kBzImageLoadAddress = 0x100000;

}  // namespace hyper::boot
