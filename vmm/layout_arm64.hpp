// Every guest-physical address and interrupt of the arm64 machine, in one place. The
// devices sit below RAM, where QEMU's `virt` machine puts its own, so a guest kernel's
// expectations (and an engineer's) carry over:
//
//   0x0800_0000  GIC distributor (64 KiB)
//   0x0801_0000  GICv2 CPU interface (8 KiB), only when the host offers no GICv3
//   0x080a_0000  GICv3 redistributors, 128 KiB per vCPU (up to kMaxVcpus)
//   0x0900_0000  16550 UART (our devices::Serial, registers one byte apart)
//   0x0901_0000  our paravirtual page: the guest writes its exit status at +0 and
//                anything at +1 once its init reaches user space (the x86 ports 0x501
//                and 0x502); the command line's hyper_exit_page= names it, because
//                QEMU's virt machine has its RTC there
//   0x0a00_0000  virtio-mmio windows, 4 KiB each
//   0x4000_0000  RAM: the kernel Image at its start (+ text_offset), the initrd after
//                it, the device tree in the last 2 MiB
#pragma once

#include <cstdint>

namespace hyper::layout::arm64 {

inline constexpr uint64_t kGicDistributorStart = 0x08000000;
inline constexpr uint64_t kGicDistributorSize = 0x10000;
inline constexpr uint64_t kGicV2CpuInterfaceStart = 0x08010000;
inline constexpr uint64_t kGicV2CpuInterfaceSize = 0x2000;
inline constexpr uint64_t kGicRedistributorStart = 0x080a0000;
inline constexpr uint64_t kGicRedistributorSizePerVcpu = 0x20000;
inline constexpr uint64_t kUartStart = 0x09000000;
inline constexpr uint64_t kUartSize = 0x1000;
inline constexpr uint64_t kGuestPortsStart = 0x09010000;
inline constexpr uint64_t kGuestPortsSize = 0x1000;
// The kernel command line names the page to the guest init: "hyper_exit_page=0x9010000".
inline constexpr const char* kGuestPortsParameter = "hyper_exit_page";
inline constexpr uint64_t kGuestExitOffset = 0;
inline constexpr uint64_t kBootTimerOffset = 1;
inline constexpr uint64_t kVirtioMmioStart = 0x0a000000;
inline constexpr uint64_t kVirtioMmioWindowSize = 0x1000;
inline constexpr uint64_t kRamStart = 0x40000000;
// Booting.rst: the device tree fits in 2 MiB and is mapped in 2 MiB blocks.
inline constexpr uint64_t kDeviceTreeMaxSize = 2ULL << 20;

inline constexpr uint32_t kMaxVcpus = 64;  // as on x86; the redistributors below the UART fit 123
static_assert(kGicRedistributorStart + kMaxVcpus * kGicRedistributorSizePerVcpu <= kUartStart);

// Shared peripheral interrupts, numbered as the device tree and KVM_IRQFD's GSI count
// them (the GIC's interrupt ID minus 32).
inline constexpr uint32_t kUartSpi = 1;
inline constexpr uint32_t kVirtioFirstSpi = 16;
// Private peripheral interrupts of the architected timer and the GIC's maintenance
// interrupt (interrupt ID minus 16), as every arm64 guest expects them.
inline constexpr uint32_t kTimerSecurePhysPpi = 13;
inline constexpr uint32_t kTimerPhysPpi = 14;
inline constexpr uint32_t kTimerVirtPpi = 11;
inline constexpr uint32_t kTimerHypPpi = 10;
inline constexpr uint32_t kGicMaintenancePpi = 9;
// The GIC's interrupt lines: enough SPIs for every virtio window we hand out.
inline constexpr uint32_t kGicInterruptCount = 128;

}  // namespace hyper::layout::arm64
