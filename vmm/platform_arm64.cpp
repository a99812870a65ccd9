// The arm64 machine (docs/arm64.md): vCPUs initialised for KVM's preferred target with
// PSCI 0.2 (KVM serves CPU_ON/OFF in the kernel; SYSTEM_OFF and RESET reach us as system
// events), an in-kernel GICv3 (GICv2 where the host has no v3), the architected timer
// (KVM's, nothing to create), a 16550 UART and our exit page on MMIO, and a kernel
// Image booted with a device tree that names all of it.
#include <sys/random.h>

#include <cstdio>
#include <functional>
#include <string>

#include "boot/arm64_loader.hpp"
#include "boot/device_tree.hpp"
#include "devices/guest_ports.hpp"
#include "virtio/mmio.hpp"
#include "vmm/kvm_ioctl.hpp"
#include "vmm/layout_arm64.hpp"
#include "vmm/machine_impl.hpp"
#include "vmm/platform.hpp"

namespace hyper {

namespace arm = layout::arm64;
static_assert(arm::kVirtioMmioWindowSize == virtio::kMmioWindowSize);

namespace platform {

uint32_t max_vcpus() { return arm::kMaxVcpus; }
bool has_snapshots() { return false; }
std::vector<RegionSpec> memory_layout(uint64_t ram_bytes) { return {{arm::kRamStart, ram_bytes}}; }

// The guest's physical address space just fits its RAM (at least KVM's minimum, 32 bits),
// within what this host's KVM offers; a KVM without KVM_CAP_ARM_VM_IPA_SIZE has 40 bits.
Result<unsigned long> vm_type(const Kvm& kvm, uint64_t ram_bytes) {
  constexpr uint32_t kMinBits = 32;
  constexpr uint32_t kFixedBits = 40;
  const uint64_t end = arm::kRamStart + ram_bytes;
  uint32_t bits = kMinBits;
  while (bits < 63 && (1ULL << bits) < end) ++bits;
  const int offered = kvm.check_extension(KVM_CAP_ARM_VM_IPA_SIZE);
  const uint32_t limit = offered > 0 ? static_cast<uint32_t>(offered) : kFixedBits;
  if (bits > limit)
    return make_error(Errc::unsupported, "this host's KVM gives guests " + std::to_string(limit) +
                                             "-bit physical addresses: room for " +
                                             std::to_string(((1ULL << limit) - arm::kRamStart) >> 30) +
                                             " GiB of RAM above 1 GiB; give the guest less --memory");
  return offered > 0 ? static_cast<unsigned long>(KVM_VM_TYPE_ARM_IPA_SIZE(bits)) : 0UL;
}
Status prepare_vm(const Vm&) { return {}; }
// The GIC needs its vCPUs first: Machine::Impl::build makes it.
Status create_early_irqchip(const Vm&) { return {}; }

VirtioSlot virtio_slot(uint32_t index) {
  return {arm::kVirtioMmioStart + index * arm::kVirtioMmioWindowSize, arm::kVirtioFirstSpi + index};
}

bool virtio_on_cmdline() { return false; }

// The GIC's lines less its 32 private ones are the SPIs; virtio's start at kVirtioFirstSpi.
uint32_t max_virtio_devices() { return arm::kGicInterruptCount - 32 - arm::kVirtioFirstSpi; }

}  // namespace platform

namespace {

constexpr uint64_t kCoreRegister = KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE;
constexpr uint64_t kPc = kCoreRegister | KVM_REG_ARM_CORE_REG(regs.pc);
constexpr uint64_t kPstate = kCoreRegister | KVM_REG_ARM_CORE_REG(regs.pstate);
constexpr uint64_t kX0 = kCoreRegister | KVM_REG_ARM_CORE_REG(regs.regs[0]);
constexpr uint64_t kMpidr = ARM64_SYS_REG(3, 0, 0, 0, 5);  // MPIDR_EL1
// Booting.rst: EL1 with its own stack pointer, every exception masked.
constexpr uint64_t kBootPstate = PSR_MODE_EL1h | PSR_D_BIT | PSR_A_BIT | PSR_I_BIT | PSR_F_BIT;
constexpr size_t kRngSeedBytes = 64;

Status set_gic_attr(int gic, uint32_t group, uint64_t attr, const void* value, const char* what) {
  kvm_device_attr request{};
  request.group = group;
  request.attr = attr;
  request.addr = reinterpret_cast<uint64_t>(value);
  return kvm_ioctl::ioctl_status(gic, KVM_SET_DEVICE_ATTR, &request, what);
}

struct Gic {
  UniqueFd fd;
  boot::GicVersion version;
  boot::MmioRange cpu;  // v3: the redistributors; v2: the CPU interface
};

// Where the GIC's distributor and its per-CPU part (`cpu_type`: v3's redistributors or
// v2's CPU interface) sit in guest-physical memory.
Result<Gic> place_gic(UniqueFd fd, boot::GicVersion version, uint64_t cpu_type, boot::MmioRange cpu) {
  const uint64_t distributor_type =
      version == boot::GicVersion::v3 ? KVM_VGIC_V3_ADDR_TYPE_DIST : KVM_VGIC_V2_ADDR_TYPE_DIST;
  const uint64_t distributor = arm::kGicDistributorStart;
  HYPER_CHECK(set_gic_attr(fd.get(), KVM_DEV_ARM_VGIC_GRP_ADDR, distributor_type, &distributor, "GIC distributor address"));
  HYPER_CHECK(set_gic_attr(fd.get(), KVM_DEV_ARM_VGIC_GRP_ADDR, cpu_type, &cpu.base, "GIC per-CPU address"));
  return Gic{std::move(fd), version, cpu};
}

Result<Gic> create_gic_v3(UniqueFd fd, uint32_t vcpus) {
  return place_gic(std::move(fd), boot::GicVersion::v3, KVM_VGIC_V3_ADDR_TYPE_REDIST,
                   {arm::kGicRedistributorStart, vcpus * arm::kGicRedistributorSizePerVcpu});
}

Result<Gic> create_gic_v2(const Vm& vm) {
  auto fd = HYPER_TRY(vm.create_device(KVM_DEV_TYPE_ARM_VGIC_V2));
  return place_gic(std::move(fd), boot::GicVersion::v2, KVM_VGIC_V2_ADDR_TYPE_CPU,
                   {arm::kGicV2CpuInterfaceStart, arm::kGicV2CpuInterfaceSize});
}

// A GICv3 where the host has one (GICv2 guests are limited to 8 vCPUs), else a GICv2;
// initialised, which KVM allows only once every vCPU exists. Only a host that cannot
// create a GICv3 at all gets the fallback: one that fails to set one up is an error.
Result<Gic> create_gic(const Vm& vm, uint32_t vcpus, const std::function<void(const std::string&)>& log) {
  auto v3 = vm.create_device(KVM_DEV_TYPE_ARM_VGIC_V3);
  Result<Gic> gic = v3 ? create_gic_v3(std::move(v3).value(), vcpus) : create_gic_v2(vm);
  if (!gic && !v3)
    return make_error(Errc::unsupported, "this host's KVM offers neither a GICv3 (" + v3.error().message +
                                             ") nor a GICv2 (" + gic.error().message + ")");
  if (!gic) return std::move(gic).error();
  if (!v3) {
    if (vcpus > 8) return make_error(Errc::unsupported, "this host offers only a GICv2, which serves at most 8 vCPUs");
    log("this host's KVM has no GICv3: the guest gets a GICv2");
  }
  const uint32_t lines = arm::kGicInterruptCount;
  HYPER_CHECK(set_gic_attr(gic->fd.get(), KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0, &lines, "GIC interrupt count"));
  HYPER_CHECK(set_gic_attr(gic->fd.get(), KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT, nullptr, "GIC init"));
  return gic;
}

// Every vCPU but the first starts powered off, until the guest's PSCI CPU_ON.
Result<std::vector<uint64_t>> create_vcpus(Machine::Impl& m) {
  const kvm_vcpu_init target = HYPER_TRY(m.vm.preferred_target());
  std::vector<uint64_t> mpidrs;
  for (uint32_t id = 0; id < m.config.vcpus; ++id) {
    auto vcpu = HYPER_TRY(m.vm.create_vcpu(id, m.kvm.vcpu_mmap_size()));
    kvm_vcpu_init init = target;
    init.features[0] |= 1U << KVM_ARM_VCPU_PSCI_0_2;
    if (id > 0) init.features[0] |= 1U << KVM_ARM_VCPU_POWER_OFF;
    HYPER_CHECK(vcpu.init(init));
    mpidrs.push_back(HYPER_TRY(vcpu.get_one_reg(kMpidr)));
    m.vcpus.push_back(std::move(vcpu));
  }
  return mpidrs;
}

Result<std::vector<uint8_t>> rng_seed() {
  std::vector<uint8_t> seed(kRngSeedBytes);
  if (::getrandom(seed.data(), seed.size(), 0) != static_cast<ssize_t>(seed.size()))
    return Error::from_errno("getrandom (the device tree's rng-seed)");
  return seed;
}

}  // namespace

Status Machine::Impl::add_platform_devices() {
  HYPER_CHECK(add_serial(mmio, arm::kUartStart, arm::kUartSpi));
  // The init learns of the exit page from its environment (the kernel hands it undotted
  // parameters it does not know): under another VMM the page is not there to write.
  char page[32];
  std::snprintf(page, sizeof page, " %s=0x%llx", arm::kGuestPortsParameter,
                static_cast<unsigned long long>(arm::kGuestPortsStart));
  cmdline += page;
  auto exit_port = std::make_shared<devices::GuestExitPort>([this](int status) { guest_exited(status); });
  HYPER_CHECK(mmio.insert(exit_port, arm::kGuestPortsStart + arm::kGuestExitOffset, 1));
  auto boot_timer = std::make_shared<devices::BootTimerPort>([this] { guest_reached_user_space(); });
  return mmio.insert(boot_timer, arm::kGuestPortsStart + arm::kBootTimerOffset, 1);
}

// KVM takes irqfds only once the GIC is initialised, and the GIC only once the vCPUs
// exist: so vCPUs, GIC, then the devices, the kernel and the device tree.
Status Machine::Impl::build(bool restoring) {
  if (restoring) return make_error(Errc::unsupported, "snapshots are not supported on arm64 yet");
  const auto mpidrs = HYPER_TRY(create_vcpus(*this));
  Gic gic = HYPER_TRY(create_gic(vm, config.vcpus, config.log));
  HYPER_CHECK(add_devices());

  const boot::MmioRange ram{arm::kRamStart, memory.total_size()};
  const auto loaded = HYPER_TRY(boot::load_arm64_kernel(memory, {config.kernel, config.initrd, ram}));
  boot::ArmMachineDescription machine;
  machine.memory = ram;
  machine.cpu_mpidrs = mpidrs;
  machine.gic = gic.version;
  machine.gic_distributor = {arm::kGicDistributorStart, arm::kGicDistributorSize};
  machine.gic_cpu = gic.cpu;
  machine.uart = {{arm::kUartStart, arm::kUartSize}, arm::kUartSpi};
  for (const auto& w : windows) machine.virtio.push_back({{w.base, virtio::kMmioWindowSize}, w.irq});
  machine.bootargs = cmdline;
  machine.initrd = loaded.initrd;
  machine.rng_seed = HYPER_TRY(rng_seed());
  const auto tree = HYPER_TRY(boot::build_device_tree(machine));
  HYPER_CHECK(boot::write_device_tree(memory, loaded, tree));

  const Vcpu& boot_cpu = vcpus.front();
  HYPER_CHECK(boot_cpu.set_one_reg(kPstate, kBootPstate));
  HYPER_CHECK(boot_cpu.set_one_reg(kPc, loaded.entry));
  HYPER_CHECK(boot_cpu.set_one_reg(kX0, loaded.device_tree));
  arch_device = std::move(gic.fd);
  return {};
}

// Saving an arm64 machine means the GIC's state and every vCPU's system registers
// (KVM_GET_REG_LIST): not done yet, and validate() refuses snapshots before these run.
Status Machine::Impl::save_snapshot(const std::string&) {
  return make_error(Errc::unsupported, "snapshots are not supported on arm64 yet");
}

Status Machine::Impl::restore(const snapshot::Reader&, const MachineShape&) {
  return make_error(Errc::unsupported, "snapshots are not supported on arm64 yet");
}

}  // namespace hyper
