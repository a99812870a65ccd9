// Kernel image parsing (x86's bzImage and ELF, arm64's Image) must refuse any byte
// string it cannot boot, never crash on it, and whatever it accepts must describe
// segments that lie inside the image, and an arm64 kernel that fits where it goes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "boot/arm64_image.hpp"
#include "boot/kernel_image.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (auto arm = hyper::boot::parse_arm64_image({data, size})) {
    if (arm->file_size != size || arm->image_size < size) std::abort();
    if (arm->text_offset >= hyper::boot::kArm64ImageAlignment) std::abort();
  }
  auto kernel = hyper::boot::parse_kernel({data, size});
  if (!kernel) return 0;
  for (const auto& seg : kernel->segments) {
    if (seg.file_offset > size || seg.file_size > size - seg.file_offset) std::abort();
    if (seg.file_size > seg.mem_size) std::abort();
  }
  return 0;
}
