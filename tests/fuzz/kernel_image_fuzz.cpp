// Kernel image parsing must refuse any byte string it cannot boot, never crash on it,
// and whatever it accepts must describe segments that lie inside the image.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "boot/kernel_image.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto kernel = hyper::boot::parse_kernel({data, size});
  if (!kernel) return 0;
  for (const auto& seg : kernel->segments) {
    if (seg.file_offset > size || seg.file_size > size - seg.file_offset) std::abort();
    if (seg.file_size > seg.mem_size) std::abort();
  }
  return 0;
}
