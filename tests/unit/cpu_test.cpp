#include <doctest/doctest.h>

#include <algorithm>

#include "boot/cpu_state.hpp"
#include "vmm/cpu_config.hpp"
#include "vmm/layout.hpp"

using namespace hyper;
using namespace hyper::boot;

TEST_CASE("GDT: descriptors encode and decode to the segments KVM loads") {
  CHECK(gdt_entry(0xa09b, 0, 0xfffff) == 0x00af9b000000ffffULL);
  CHECK(gdt_entry(0xc093, 0, 0xfffff) == 0x00cf93000000ffffULL);
  const auto code64 = segment_from_gdt(gdt_entry(0xa09b, 0, 0xfffff), layout::kCode64Selector);
  CHECK(code64.l == 1);
  CHECK(code64.db == 0);
  CHECK(code64.type == 0xb);
  CHECK(code64.limit == 0xffffffffu);
  CHECK(code64.present == 1);
  const auto tss = segment_from_gdt(gdt_entry(0x008b, 0x1234567, 0x67), layout::kTssSelector);
  CHECK(tss.base == 0x1234567);
  CHECK(tss.limit == 0x67);
  CHECK(tss.s == 0);
}

TEST_CASE("boot registers: PVH starts in 32-bit protected mode, bzImage in long mode") {
  KernelImage pvh{};
  pvh.format = KernelFormat::elf_pvh;
  pvh.entry = 0x1234;
  const auto pvh_regs = boot_regs(pvh);
  CHECK(pvh_regs.rip == 0x1234);
  CHECK(pvh_regs.rbx == layout::kPvhStartInfo);
  const auto pvh_sregs = boot_sregs(kvm_sregs{}, KernelFormat::elf_pvh);
  CHECK((pvh_sregs.cr0 & 1) == 1);
  CHECK((pvh_sregs.cr0 & (1u << 31)) == 0);
  kvm_sregs reset{};
  reset.cr0 = 0x60000010;  // KVM's reset value: CD|NW|ET
  CHECK((boot_sregs(reset, KernelFormat::elf_pvh).cr0 & 0x60000000) == 0);  // caches on
  CHECK(pvh_sregs.efer == 0);
  CHECK(pvh_sregs.cs.selector == layout::kCode32Selector);
  CHECK(pvh_sregs.cs.db == 1);

  KernelImage bz{};
  bz.format = KernelFormat::bzimage;
  bz.entry = 0x100200;
  const auto bz_regs = boot_regs(bz);
  CHECK(bz_regs.rsi == layout::kZeroPage);
  const auto bz_sregs = boot_sregs(kvm_sregs{}, KernelFormat::bzimage);
  CHECK(bz_sregs.cs.selector == 0x10);  // __BOOT_CS
  CHECK(bz_sregs.ds.selector == 0x18);  // __BOOT_DS
  CHECK(bz_sregs.cs.l == 1);
  CHECK(bz_sregs.cr3 == layout::kPml4Start);
  CHECK((bz_sregs.efer & 0x500) == 0x500);
}

TEST_CASE("page tables: 4 GiB identity-mapped with 2 MiB pages") {
  auto specs = GuestMemory::x86_layout(64ULL << 20);
  auto mem = GuestMemory::create(specs).value();
  REQUIRE(write_cpu_tables(mem, KernelFormat::bzimage).ok());
  CHECK(mem.read_obj<uint64_t>(layout::kPml4Start).value() == (layout::kPdptStart | 3));
  // The IDT must not overwrite the last GDT entry (the TSS that TR refers to).
  CHECK(mem.read_obj<uint64_t>(layout::kGdtStart + layout::kTssSelector).value() == boot_gdt()[4]);
  for (uint64_t gib = 0; gib < 4; ++gib) {
    const uint64_t pd = mem.read_obj<uint64_t>(layout::kPdptStart + gib * 8).value() & ~0xfffULL;
    CHECK(pd == layout::kPdStart + gib * 0x1000);
    // The 2 MiB page covering address (gib GiB + 6 MiB) maps to itself.
    const uint64_t pde = mem.read_obj<uint64_t>(pd + 3 * 8).value();
    CHECK((pde & ~0xfffULL) == (gib << 30) + (6ULL << 20));
    CHECK((pde & 0x83) == 0x83);
  }
}

namespace {
std::vector<kvm_cpuid_entry2> fake_supported(const char* vendor) {
  std::vector<kvm_cpuid_entry2> t(4);
  t[0].function = 0;
  t[0].eax = 0x1f;
  std::memcpy(&t[0].ebx, vendor, 4);
  std::memcpy(&t[0].edx, vendor + 4, 4);
  std::memcpy(&t[0].ecx, vendor + 8, 4);
  t[1].function = 1;
  t[1].ebx = 0x00000800;  // CLFLUSH line size, must survive
  t[2].function = 0xb;    // KVM's own topology entry: replaced
  t[2].ebx = 99;
  t[3].function = 0x80000008;
  t[3].ecx = 0xff;
  return t;
}
const kvm_cpuid_entry2* find(const std::vector<kvm_cpuid_entry2>& t, uint32_t fn, uint32_t idx = 0) {
  auto it = std::find_if(t.begin(), t.end(), [&](auto& e) { return e.function == fn && e.index == idx; });
  return it == t.end() ? nullptr : &*it;
}
}  // namespace

TEST_CASE("CPUID: APIC ID, logical count and topology leaves agree with the vCPU count") {
  const auto supported = fake_supported("GenuineIntel");
  CHECK(cpu_vendor(supported) == CpuVendor::intel);
  const auto t = vcpu_cpuid(supported, 3, 4);
  const auto* leaf1 = find(t, 1);
  REQUIRE(leaf1);
  CHECK((leaf1->ebx >> 24) == 3);
  CHECK(((leaf1->ebx >> 16) & 0xff) == 4);
  CHECK((leaf1->ebx & 0xffff) == 0x0800);
  CHECK((leaf1->edx & (1u << 28)) != 0);  // HTT: more than one logical CPU
  CHECK((leaf1->ecx & (1u << 31)) != 0);  // hypervisor
  const auto* core = find(t, 0xb, 1);
  REQUIRE(core);
  CHECK(core->ebx == 4);
  CHECK(core->eax == 2);  // 2 bits of APIC ID for 4 cores
  CHECK(core->edx == 3);
  CHECK(std::count_if(t.begin(), t.end(), [](auto& e) { return e.function == 0xb; }) == 3);
  CHECK(find(t, 0x1f, 1) != nullptr);
  CHECK((find(t, 0x80000008)->ecx & 0xff) == 3);

  const auto single = vcpu_cpuid(supported, 0, 1);
  CHECK((find(single, 1)->edx & (1u << 28)) == 0);
  CHECK((find(single, 1)->ecx & (1u << 24)) == 0);  // TSC deadline only when KVM has it
  const auto deadline = vcpu_cpuid(supported, 0, 1, {.tsc_deadline_timer = true});
  CHECK((find(deadline, 1)->ecx & (1u << 24)) != 0);
  CHECK(cpu_vendor(fake_supported("AuthenticAMD")) == CpuVendor::amd);
}

TEST_CASE("boot MSRs: only those KVM can set") {
  const uint32_t settable[] = {0x10, 0x1a0, 0xc0000082};
  const auto msrs = boot_msrs(settable);
  REQUIRE(msrs.size() == 4);
  CHECK(std::any_of(msrs.begin(), msrs.end(), [](auto& m) { return m.index == 0x2ff && m.data == 0x806; }));
  auto misc = std::find_if(msrs.begin(), msrs.end(), [](auto& m) { return m.index == 0x1a0; });
  REQUIRE(misc != msrs.end());
  CHECK(misc->data == 1);  // fast strings
}
