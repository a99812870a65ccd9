#include "boot/e820.hpp"

#include "vmm/layout.hpp"

namespace hyper::boot {

std::vector<E820Entry> e820_map(const GuestMemory& memory) {
  std::vector<E820Entry> map;
  for (const auto& region : memory.regions()) {
    uint64_t start = region.gpa;
    if (start < layout::kEbdaStart) {
      map.push_back({start, layout::kEbdaStart - start, kE820Ram});
      map.push_back({layout::kEbdaStart, layout::kHighMemoryStart - layout::kEbdaStart, kE820Reserved});
      start = layout::kHighMemoryStart;
    }
    if (region.end() > start) map.push_back({start, region.end() - start, kE820Ram});
  }
  return map;
}

}  // namespace hyper::boot
