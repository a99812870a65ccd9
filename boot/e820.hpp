// The guest's physical memory map, shared by both boot protocols.
#pragma once

#include <cstdint>
#include <vector>

#include "vmm/guest_memory.hpp"

namespace hyper::boot {

inline constexpr uint32_t kE820Ram = 1;
inline constexpr uint32_t kE820Reserved = 2;

struct E820Entry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
};

// RAM below the EBDA, the legacy hole (EBDA, VGA, BIOS: holds the MP table) reserved,
// then every byte of RAM from 1 MiB on.
[[nodiscard]] std::vector<E820Entry> e820_map(const GuestMemory& memory);

}  // namespace hyper::boot
