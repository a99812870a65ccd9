// What the machine builder asks of its CPU architecture before it has a machine: the
// answers are in vmm/platform_x86.cpp or vmm/platform_arm64.cpp, whichever this build
// targets, beside Machine::Impl's own per-architecture parts (build, add_platform_devices).
#pragma once

#include <cstdint>
#include <vector>

#include "vmm/guest_memory.hpp"
#include "vmm/kvm.hpp"
#include "vmm/result.hpp"

namespace hyper::platform {

[[nodiscard]] uint32_t max_vcpus();
// Whether this architecture's machines can be saved and restored (docs/snapshots.md).
[[nodiscard]] bool has_snapshots();
[[nodiscard]] std::vector<RegionSpec> memory_layout(uint64_t ram_bytes);
// KVM_CREATE_VM's machine type for `ram_bytes` of RAM on this host, or why it cannot have
// that much (arm64: the guest's physical address space is sized per VM).
[[nodiscard]] Result<unsigned long> vm_type(const Kvm& kvm, uint64_t ram_bytes);
// Before the memory slots exist.
[[nodiscard]] Status prepare_vm(const Vm& vm);
// After the memory slots, before any device: an interrupt controller that does not
// need the vCPUs to exist (x86's); arm64's GIC comes in build().
[[nodiscard]] Status create_early_irqchip(const Vm& vm);

// Where the index-th virtio device's MMIO window is and which interrupt it raises.
struct VirtioSlot {
  uint64_t base;
  uint32_t irq;
};
[[nodiscard]] VirtioSlot virtio_slot(uint32_t index);
// How many virtio devices have an interrupt line of their own.
[[nodiscard]] uint32_t max_virtio_devices();
// x86 guests learn of virtio-mmio devices from the command line, arm64 ones from the
// device tree.
[[nodiscard]] bool virtio_on_cmdline();

}  // namespace hyper::platform
