// Parsing of the arm64 Linux `Image` (Documentation/arch/arm64/booting.rst) as a pure
// function over its bytes; boot/arm64_loader.cpp places it.
#pragma once

#include <cstdint>
#include <span>

#include "vmm/result.hpp"

namespace hyper::boot {

struct Arm64Image {
  uint64_t text_offset = 0;  // from a 2 MiB-aligned base
  uint64_t image_size = 0;   // bytes the kernel uses from its load address, BSS included
  uint64_t file_size = 0;
};

inline constexpr uint32_t kArm64ImageMagic = 0x644d5241;  // "ARM\x64", at offset 0x38
inline constexpr uint64_t kArm64ImageAlignment = 2ULL << 20;

[[nodiscard]] Result<Arm64Image> parse_arm64_image(std::span<const uint8_t> image);

}  // namespace hyper::boot
