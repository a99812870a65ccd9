// The register state a vCPU starts in for each boot protocol, and the in-memory
// structures (GDT, identity page tables) that state points at.
#pragma once

#include <linux/kvm.h>

#include <array>
#include <cstdint>

#include "boot/kernel_image.hpp"
#include "vmm/guest_memory.hpp"
#include "vmm/layout.hpp"

namespace hyper::boot {

// A GDT descriptor from 16 bits of access+flags (as in 0xa09b), a base and a 20-bit limit.
[[nodiscard]] constexpr uint64_t gdt_entry(uint16_t flags, uint32_t base, uint32_t limit) {
  return (uint64_t{base & 0xff000000u} << 32) | (uint64_t{flags & 0xf0ffu} << 40) |
         (uint64_t{limit & 0x000f0000u} << 32) | (uint64_t{base & 0x00ffffffu} << 16) |
         uint64_t{limit & 0x0000ffffu};
}

// null, 32-bit code, 64-bit code, data, TSS: indexed by selector / 8.
[[nodiscard]] std::array<uint64_t, layout::kGdtEntries> boot_gdt();
// The segment register KVM should load for `selector` of a descriptor.
[[nodiscard]] kvm_segment segment_from_gdt(uint64_t entry, uint16_t selector);

// GDT, empty IDT and (for 64-bit entry) identity page tables for the low 4 GiB.
[[nodiscard]] Status write_cpu_tables(const GuestMemory& memory, KernelFormat format);

// Boot-CPU state: `base` is what KVM_GET_SREGS returned for the fresh vCPU.
[[nodiscard]] kvm_sregs boot_sregs(kvm_sregs base, KernelFormat format);
[[nodiscard]] kvm_regs boot_regs(const KernelImage& kernel);

}  // namespace hyper::boot
