// The flattened device tree that describes an arm64 machine to its guest kernel, built
// with libfdt from a plain description: no KVM is needed, so unit tests read it back.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vmm/result.hpp"

namespace hyper::boot {

enum class GicVersion { v2, v3 };

struct MmioRange {
  uint64_t base = 0;
  uint64_t size = 0;
};

struct MmioDevice {
  MmioRange range;
  uint32_t spi = 0;  // shared peripheral interrupt: the GIC's interrupt ID minus 32
};

struct ArmMachineDescription {
  MmioRange memory;
  std::vector<uint64_t> cpu_mpidrs;  // each vCPU's MPIDR_EL1 affinity, in vCPU order
  GicVersion gic = GicVersion::v3;
  MmioRange gic_distributor;
  MmioRange gic_cpu;  // GICv3: the redistributors; GICv2: the CPU interface
  MmioDevice uart;
  uint32_t uart_clock_hz = 1843200;
  std::vector<MmioDevice> virtio;  // one virtio,mmio node each
  std::string bootargs;
  std::optional<MmioRange> initrd;  // where the loader put it
  std::vector<uint8_t> rng_seed;    // /chosen/rng-seed: entropy before any driver runs
};

// Node names the guest finds (and tests look up).
inline constexpr const char* kGicNodeName = "intc";
inline constexpr uint32_t kGicPhandle = 1;

// Interrupt specifier cells of the GIC binding: type, number, flags.
inline constexpr uint32_t kFdtSpi = 0;
inline constexpr uint32_t kFdtPpi = 1;
inline constexpr uint32_t kIrqEdgeRising = 1;
inline constexpr uint32_t kIrqLevelHigh = 4;

// The tree, ready to copy into guest memory; an error when it would not fit in
// layout::arm64::kDeviceTreeMaxSize or the description is impossible.
[[nodiscard]] Result<std::vector<uint8_t>> build_device_tree(const ArmMachineDescription& machine);

// "virtio_mmio@a000000": the node name of a window at `base`.
[[nodiscard]] std::string virtio_node_name(uint64_t base);

}  // namespace hyper::boot
