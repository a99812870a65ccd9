#include "boot/cpu_state.hpp"

#include "vmm/layout.hpp"

namespace hyper::boot {
namespace {

constexpr uint64_t kCr0Pe = 1ULL << 0, kCr0Et = 1ULL << 4, kCr0Pg = 1ULL << 31;
constexpr uint64_t kCr4Pae = 1ULL << 5;
constexpr uint64_t kEferLme = 1ULL << 8, kEferLma = 1ULL << 10;
constexpr uint64_t kPtePresentWritable = 0x3, kPdeHugePage = 0x80;
constexpr uint64_t kTwoMiB = 2ULL << 20, kOneGiB = 1ULL << 30;

}  // namespace

std::array<uint64_t, layout::kGdtEntries> boot_gdt() {
  return {
      0,
      gdt_entry(0xc09b, 0, 0xfffff),  // 32-bit code, flat (PVH entry)
      gdt_entry(0xa09b, 0, 0xfffff),  // 64-bit code
      gdt_entry(0xc093, 0, 0xfffff),  // data, flat
      gdt_entry(0x008b, 0, 0x67),     // busy 32-bit TSS (VMX requires a usable TR)
  };
}

kvm_segment segment_from_gdt(uint64_t entry, uint16_t selector) {
  kvm_segment s{};
  s.base = ((entry >> 16) & 0xffffff) | (((entry >> 56) & 0xff) << 24);
  uint32_t limit = static_cast<uint32_t>((entry & 0xffff) | ((entry >> 32) & 0xf0000));
  s.g = (entry >> 55) & 1;
  s.limit = s.g ? (limit << 12) | 0xfff : limit;
  s.selector = selector;
  s.type = (entry >> 40) & 0xf;
  s.s = (entry >> 44) & 1;
  s.dpl = (entry >> 45) & 3;
  s.present = (entry >> 47) & 1;
  s.avl = (entry >> 52) & 1;
  s.l = (entry >> 53) & 1;
  s.db = (entry >> 54) & 1;
  s.unusable = s.present ? 0 : 1;
  return s;
}

Status write_cpu_tables(const GuestMemory& memory, KernelFormat format) {
  const auto gdt = boot_gdt();
  HYPER_CHECK(memory.write_obj(layout::kGdtStart, gdt));
  HYPER_CHECK(memory.write_obj(layout::kIdtStart, uint64_t{0}));
  if (format != KernelFormat::bzimage) return {};

  // PML4[0] -> PDPT; PDPT[i] -> PD i; each PD maps 1 GiB with 2 MiB pages.
  HYPER_CHECK(memory.write_obj(layout::kPml4Start, layout::kPdptStart | kPtePresentWritable));
  constexpr uint64_t kDirectories = layout::kIdentityMappedBytes / kOneGiB;
  for (uint64_t i = 0; i < kDirectories; ++i) {
    const uint64_t pd = layout::kPdStart + i * layout::kPageSize;
    HYPER_CHECK(memory.write_obj(layout::kPdptStart + i * 8, pd | kPtePresentWritable));
    std::array<uint64_t, 512> entries;
    for (uint64_t j = 0; j < entries.size(); ++j)
      entries[j] = (i * kOneGiB + j * kTwoMiB) | kPtePresentWritable | kPdeHugePage;
    HYPER_CHECK(memory.write_obj(pd, entries));
  }
  return {};
}

kvm_sregs boot_sregs(kvm_sregs base, KernelFormat format) {
  const auto gdt = boot_gdt();
  const bool long_mode = format == KernelFormat::bzimage;
  const uint16_t code = long_mode ? layout::kCode64Selector : layout::kCode32Selector;

  kvm_sregs s = base;
  s.cs = segment_from_gdt(gdt[code / 8], code);
  s.ds = s.es = s.fs = s.gs = s.ss = segment_from_gdt(gdt[layout::kDataSelector / 8], layout::kDataSelector);
  s.tr = segment_from_gdt(gdt[layout::kTssSelector / 8], layout::kTssSelector);
  s.ldt = kvm_segment{};
  s.ldt.type = 2;  // LDT, present but empty
  s.ldt.present = 1;
  s.ldt.limit = 0xffff;
  s.gdt.base = layout::kGdtStart;
  s.gdt.limit = static_cast<uint16_t>(sizeof(gdt) - 1);
  s.idt.base = layout::kIdtStart;
  s.idt.limit = 7;

  s.cr0 = kCr0Pe | kCr0Et;  // not KVM's reset value, which has caching disabled (CD|NW)
  s.cr4 = 0;
  s.efer = 0;
  if (long_mode) {
    s.cr3 = layout::kPml4Start;
    s.cr4 = kCr4Pae;
    s.cr0 |= kCr0Pg;
    s.efer = kEferLme | kEferLma;
  }
  return s;
}

kvm_regs boot_regs(const KernelImage& kernel) {
  kvm_regs r{};
  r.rflags = 0x2;  // bit 1 is reserved and must be set; interrupts off
  r.rip = kernel.entry;
  if (kernel.format == KernelFormat::elf_pvh) {
    r.rbx = layout::kPvhStartInfo;
  } else {
    r.rsi = layout::kZeroPage;
    r.rsp = r.rbp = layout::kBootStackPointer;
  }
  return r;
}

}  // namespace hyper::boot
