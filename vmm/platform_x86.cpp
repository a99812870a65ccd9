// The x86_64 machine: legacy devices on I/O ports, the in-kernel PIC/IOAPIC and PIT,
// a bzImage or PVH kernel with its boot structures, CPUID and MSRs on every vCPU.
#include <future>

#include "boot/cpu_state.hpp"
#include "boot/loader.hpp"
#include "devices/guest_ports.hpp"
#include "devices/i8042.hpp"
#include "virtio/mmio.hpp"
#include "vmm/cpu_config.hpp"
#include "vmm/layout.hpp"
#include "vmm/machine_impl.hpp"
#include "vmm/platform.hpp"

namespace hyper {

static_assert(layout::kVirtioMmioWindowSize == virtio::kMmioWindowSize);

namespace platform {

uint32_t max_vcpus() { return layout::kMaxVcpus; }
bool has_snapshots() { return true; }
std::vector<RegionSpec> memory_layout(uint64_t ram_bytes) { return GuestMemory::x86_layout(ram_bytes); }
Result<unsigned long> vm_type(const Kvm&, uint64_t) { return 0UL; }

// Intel needs these two pages reserved before vCPUs exist; AMD ignores them.
Status prepare_vm(const Vm& vm) {
  HYPER_CHECK(vm.set_identity_map_addr(layout::kKvmIdentityMapStart));
  return vm.set_tss_addr(layout::kKvmTssStart);
}

Status create_early_irqchip(const Vm& vm) { return vm.create_irqchip(); }

VirtioSlot virtio_slot(uint32_t index) {
  return {layout::kVirtioMmioStart + index * layout::kVirtioMmioWindowSize, layout::kVirtioFirstIrq + index};
}

bool virtio_on_cmdline() { return true; }

// KVM's IOAPIC has 24 pins; the virtio devices start at pin kVirtioFirstIrq.
uint32_t max_virtio_devices() { return 24 - layout::kVirtioFirstIrq; }

}  // namespace platform

namespace {

Status create_vcpus(Machine::Impl& m, const boot::KernelImage& kernel) {
  const auto cpuid = HYPER_TRY(m.kvm.supported_cpuid());
  const auto& msrs = m.kvm.msr_index_list();
  const CpuidOptions options{.tsc_deadline_timer = m.kvm.check_extension(KVM_CAP_TSC_DEADLINE_TIMER) > 0};
  for (uint32_t id = 0; id < m.config.vcpus; ++id) {
    auto vcpu = HYPER_TRY(m.vm.create_vcpu(id, m.kvm.vcpu_mmap_size()));
    HYPER_CHECK(configure_vcpu(vcpu, cpuid, msrs, m.config.vcpus, options));
    if (id == 0) {  // the others wait for the guest's INIT/SIPI
      const auto sregs = HYPER_TRY(vcpu.get_sregs());
      HYPER_CHECK(vcpu.set_sregs(boot::boot_sregs(sregs, kernel.format)));
      HYPER_CHECK(vcpu.set_regs(boot::boot_regs(kernel)));
    }
    m.vcpus.push_back(std::move(vcpu));
  }
  return {};
}

}  // namespace

Status Machine::Impl::add_platform_devices() {
  HYPER_CHECK(add_serial(pio, layout::kCom1Port, layout::kCom1Irq));
  auto i8042 = std::make_shared<devices::I8042>([this] { exits.report({ExitKind::reset, 0, "the guest reset itself"}); });
  HYPER_CHECK(pio.insert(i8042, layout::kI8042DataPort, 1));
  HYPER_CHECK(pio.insert(i8042, layout::kI8042CommandPort, 1));
  auto exit_port = std::make_shared<devices::GuestExitPort>([this](int status) { guest_exited(status); });
  HYPER_CHECK(pio.insert(exit_port, layout::kGuestExitPort, 1));
  auto boot_timer = std::make_shared<devices::BootTimerPort>([this] { guest_reached_user_space(); });
  return pio.insert(boot_timer, layout::kBootTimerPort, 1);
}

Status Machine::Impl::build(bool restoring) {
  xsave_bytes = xsave_size(vm);
  // Creating the PIT spawns a kernel thread (1-2 ms): overlap it with loading the kernel.
  auto pit = std::async(std::launch::async, [this] { return vm.create_pit2(); });
  const auto load = [&]() -> Result<boot::KernelImage> {
    HYPER_CHECK(add_devices());
    if (restoring) return boot::KernelImage{};
    return boot::load_boot_image(memory, {config.kernel, config.initrd, cmdline, config.vcpus});
  };
  auto kernel = load();
  const Status pit_created = pit.get();
  if (!kernel) return std::move(kernel).error();
  if (!pit_created) return pit_created.error();
  return create_vcpus(*this, kernel.value());
}

}  // namespace hyper
