// Every guest-physical address and I/O port of the machine, in one place.
//
//   0x0000_0000  real-mode IVT/BDA (unused, left as RAM)
//   0x0000_0500  GDT
//   0x0000_0530  IDT (empty)
//   0x0000_6000  PVH hvm_start_info, then its memory map and module list
//   0x0000_7000  zero page (struct boot_params) for the 64-bit boot protocol
//   0x0000_8ff0  initial stack (grows down)
//   0x0000_9000  PML4, PDPT, then 4 page directories identity-mapping 4 GiB
//   0x0002_0000  kernel command line
//   0x0009_fc00  reserved up to 1 MiB (EBDA, VGA hole, BIOS area)
//   0x000f_0000  MP floating pointer + MP configuration table (scanned by Linux)
//   0x0010_0000  bzImage protected-mode kernel; RAM continues up to the MMIO hole
//   0xd000_0000  MMIO hole: virtio-mmio windows, then IOAPIC, TSS, LAPIC
//   0x1_0000_0000 RAM above 4 GiB when the guest has more than fits below the hole
#pragma once

#include <cstdint>

namespace hyper::layout {

inline constexpr uint64_t kPageSize = 0x1000;

inline constexpr uint64_t kGdtStart = 0x500;
inline constexpr uint64_t kGdtEntries = 5;  // boot/cpu_state.cpp: null, code32, code64, data, TSS
inline constexpr uint64_t kIdtStart = 0x530;
static_assert(kGdtStart + kGdtEntries * 8 <= kIdtStart, "the GDT must end before the IDT");
inline constexpr uint64_t kPvhStartInfo = 0x6000;
inline constexpr uint64_t kPvhStartInfoEnd = 0x7000;
inline constexpr uint64_t kZeroPage = 0x7000;
inline constexpr uint64_t kBootStackPointer = 0x8ff0;
inline constexpr uint64_t kPml4Start = 0x9000;
inline constexpr uint64_t kPdptStart = 0xa000;
inline constexpr uint64_t kPdStart = 0xb000;  // 4 consecutive page directories
inline constexpr uint64_t kIdentityMappedBytes = 4ULL << 30;
inline constexpr uint64_t kCmdlineStart = 0x20000;
inline constexpr uint64_t kCmdlineMaxSize = 0x10000;

inline constexpr uint64_t kEbdaStart = 0x9fc00;
inline constexpr uint64_t kMpTableStart = 0xf0000;
inline constexpr uint64_t kMpTableMaxSize = 0x10000;
inline constexpr uint64_t kHighMemoryStart = 0x100000;  // 1 MiB

inline constexpr uint64_t kMmioHoleStart = 0xd0000000;
inline constexpr uint64_t kMmioHoleEnd = 1ULL << 32;
inline constexpr uint64_t kVirtioMmioStart = kMmioHoleStart;
inline constexpr uint64_t kVirtioMmioWindowSize = 0x1000;  // = virtio::kMmioWindowSize (checked in machine.cpp)
inline constexpr uint32_t kVirtioFirstIrq = 5;  // one ISA-style IRQ per virtio device
inline constexpr uint64_t kIoapicStart = 0xfec00000;
inline constexpr uint64_t kKvmIdentityMapStart = 0xfeffc000;  // one page, Intel only
inline constexpr uint64_t kKvmTssStart = 0xfeffd000;          // three pages, Intel only
inline constexpr uint64_t kLapicStart = 0xfee00000;
inline constexpr uint64_t kRamAbove4gStart = 1ULL << 32;

inline constexpr uint32_t kMaxVcpus = 64;  // xAPIC ids, one MP table; plenty for a container

// Legacy I/O ports.
inline constexpr uint16_t kI8042DataPort = 0x60;
inline constexpr uint16_t kI8042CommandPort = 0x64;
inline constexpr uint16_t kCom1Port = 0x3f8;
inline constexpr uint32_t kCom1Irq = 4;
// Our own paravirtual ports: the guest writes its exit status to the first, and
// anything to the second once its init reaches user space.
inline constexpr uint16_t kGuestExitPort = 0x501;
inline constexpr uint16_t kBootTimerPort = 0x502;

// GDT selectors (Linux's 64-bit boot protocol wants __BOOT_CS=0x10, __BOOT_DS=0x18).
inline constexpr uint16_t kCode32Selector = 0x08;
inline constexpr uint16_t kCode64Selector = 0x10;
inline constexpr uint16_t kDataSelector = 0x18;
inline constexpr uint16_t kTssSelector = 0x20;

}  // namespace hyper::layout
