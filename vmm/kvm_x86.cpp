// The x86-only parts of vmm/kvm.hpp: CPUID, MSRs, the legacy irqchip and PIT, and the
// vCPU state snapshots save.
#include "vmm/kvm.hpp"

#include <unistd.h>

#include <algorithm>

#include "vmm/kvm_abi.hpp"
#include "vmm/kvm_ioctl.hpp"

namespace hyper {

using kvm_ioctl::checked_ioctl;
using kvm_ioctl::get_state;
using kvm_ioctl::ioctl_status;
using CpuidBuffer = kvm_ioctl::FlexBuffer<kvm_abi::CpuidHeader, kvm_cpuid_entry2>;
using MsrsBuffer = kvm_ioctl::FlexBuffer<kvm_abi::MsrsHeader, kvm_msr_entry>;
using MsrListBuffer = kvm_ioctl::FlexBuffer<kvm_abi::MsrListHeader, uint32_t>;

// PVM announces itself by a paravirtual MSR on some builds and by its module name on
// all of them; either is enough.
bool host_kvm_is_pvm(const Kvm& kvm) {
  const auto& msrs = kvm.msr_index_list();
  if (std::find(msrs.begin(), msrs.end(), kMsrPvmVcpuStruct) != msrs.end()) return true;
  return ::access("/sys/module/kvm_pvm", F_OK) == 0;
}

Status Kvm::open_arch() {
  msr_indices_ = HYPER_TRY(fetch_msr_index_list());
  is_pvm_ = host_kvm_is_pvm(*this);
  return {};
}

Result<std::vector<kvm_cpuid_entry2>> Kvm::supported_cpuid() const {
  // Grow the buffer until KVM stops answering E2BIG.
  for (size_t n = 128; n <= 4096; n *= 2) {
    CpuidBuffer buf(n);
    buf.header()->nent = static_cast<uint32_t>(n);
    if (::ioctl(fd_.get(), kvm_abi::kGetSupportedCpuid, buf.header()) == 0)
      return std::vector<kvm_cpuid_entry2>(buf.entries(), buf.entries() + buf.header()->nent);
    if (errno != E2BIG) return Error::from_errno("KVM_GET_SUPPORTED_CPUID");
  }
  return make_error(Errc::kvm, "KVM_GET_SUPPORTED_CPUID: too many entries");
}

Result<std::vector<uint32_t>> Kvm::fetch_msr_index_list() const {
  kvm_abi::MsrListHeader probe{};
  if (::ioctl(fd_.get(), kvm_abi::kGetMsrIndexList, &probe) < 0 && errno != E2BIG)
    return Error::from_errno("KVM_GET_MSR_INDEX_LIST");
  MsrListBuffer buf(probe.nmsrs);
  buf.header()->nmsrs = probe.nmsrs;
  HYPER_CHECK(ioctl_status(fd_.get(), kvm_abi::kGetMsrIndexList, buf.header(), "KVM_GET_MSR_INDEX_LIST"));
  return std::vector<uint32_t>(buf.entries(), buf.entries() + buf.header()->nmsrs);
}

Status Vm::create_irqchip() const {
  return ioctl_status(fd_.get(), KVM_CREATE_IRQCHIP, 0UL, "KVM_CREATE_IRQCHIP");
}

Status Vm::create_pit2() const {
  kvm_pit_config config{};
  config.flags = KVM_PIT_SPEAKER_DUMMY;
  return ioctl_status(fd_.get(), KVM_CREATE_PIT2, &config, "KVM_CREATE_PIT2");
}

Status Vm::set_tss_addr(uint64_t addr) const {
  return ioctl_status(fd_.get(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(addr), "KVM_SET_TSS_ADDR");
}

Status Vm::set_identity_map_addr(uint64_t addr) const {
  return ioctl_status(fd_.get(), KVM_SET_IDENTITY_MAP_ADDR, &addr, "KVM_SET_IDENTITY_MAP_ADDR");
}

Status Vcpu::set_cpuid(std::span<const kvm_cpuid_entry2> entries) const {
  CpuidBuffer buf(entries.size());
  buf.header()->nent = static_cast<uint32_t>(entries.size());
  std::copy(entries.begin(), entries.end(), buf.entries());
  return ioctl_status(fd_.get(), kvm_abi::kSetCpuid2, buf.header(), "KVM_SET_CPUID2");
}

Status Vcpu::set_msrs(std::span<const kvm_msr_entry> entries) const {
  MsrsBuffer buf(entries.size());
  buf.header()->nmsrs = static_cast<uint32_t>(entries.size());
  std::copy(entries.begin(), entries.end(), buf.entries());
  const int written = HYPER_TRY(checked_ioctl(fd_.get(), kvm_abi::kSetMsrs, buf.header(), "KVM_SET_MSRS"));
  if (static_cast<size_t>(written) != entries.size()) {
    return make_error(Errc::kvm, "KVM_SET_MSRS: KVM refused MSR " + to_hex(entries[static_cast<size_t>(written)].index));
  }
  return {};
}

Result<kvm_regs> Vcpu::get_regs() const {
  kvm_regs regs{};
  HYPER_CHECK(ioctl_status(fd_.get(), KVM_GET_REGS, &regs, "KVM_GET_REGS"));
  return regs;
}

Status Vcpu::set_regs(const kvm_regs& regs) const {
  return ioctl_status(fd_.get(), KVM_SET_REGS, &regs, "KVM_SET_REGS");
}

Result<kvm_sregs> Vcpu::get_sregs() const {
  kvm_sregs sregs{};
  HYPER_CHECK(ioctl_status(fd_.get(), KVM_GET_SREGS, &sregs, "KVM_GET_SREGS"));
  return sregs;
}

Status Vcpu::set_sregs(const kvm_sregs& sregs) const {
  return ioctl_status(fd_.get(), KVM_SET_SREGS, &sregs, "KVM_SET_SREGS");
}

Status Vcpu::set_fpu(const kvm_fpu& fpu) const { return ioctl_status(fd_.get(), KVM_SET_FPU, &fpu, "KVM_SET_FPU"); }

Result<kvm_lapic_state> Vcpu::get_lapic() const {
  kvm_lapic_state lapic{};
  HYPER_CHECK(ioctl_status(fd_.get(), KVM_GET_LAPIC, &lapic, "KVM_GET_LAPIC"));
  return lapic;
}

Status Vcpu::set_lapic(const kvm_lapic_state& lapic) const {
  return ioctl_status(fd_.get(), KVM_SET_LAPIC, &lapic, "KVM_SET_LAPIC");
}

Result<std::vector<kvm_msr_entry>> Vcpu::get_msrs(std::span<const uint32_t> indices) const {
  std::vector<kvm_msr_entry> read;
  // KVM_GET_MSRS stops at the first MSR it cannot read and says how many it read: skip
  // that one and go on from the next.
  for (size_t from = 0; from < indices.size();) {
    const size_t count = indices.size() - from;
    MsrsBuffer buf(count);
    buf.header()->nmsrs = static_cast<uint32_t>(count);
    for (size_t i = 0; i < count; ++i) buf.entries()[i] = kvm_msr_entry{indices[from + i], 0, 0};
    const int got = HYPER_TRY(checked_ioctl(fd_.get(), kvm_abi::kGetMsrs, buf.header(), "KVM_GET_MSRS"));
    read.insert(read.end(), buf.entries(), buf.entries() + got);
    from += static_cast<size_t>(got) + 1;
  }
  return read;
}

Result<std::vector<uint8_t>> Vcpu::get_xsave(size_t size) const {
  std::vector<uint8_t> area(std::max(size, kvm_abi::kXsaveBytes));
  if (area.size() == kvm_abi::kXsaveBytes) {
    // EINVAL here means the vCPU's area is larger than KVM_CAP_XSAVE2 said.
    HYPER_CHECK(ioctl_status(fd_.get(), kvm_abi::kGetXsave, area.data(), "KVM_GET_XSAVE (4096 bytes)"));
  } else {
    HYPER_CHECK(ioctl_status(fd_.get(), kvm_abi::kGetXsave2, area.data(), "KVM_GET_XSAVE2"));
  }
  return area;
}

Status Vcpu::set_xsave(std::span<const uint8_t> area) const {
  if (area.size() < kvm_abi::kXsaveBytes) return make_error(Errc::invalid_argument, "XSAVE area too small");
  // KVM_SET_XSAVE reads as much as the vCPU's XSAVE2 size, which the caller checked.
  return ioctl_status(fd_.get(), kvm_abi::kSetXsave, area.data(), "KVM_SET_XSAVE");
}

Result<kvm_xcrs> Vcpu::get_xcrs() const { return get_state<kvm_xcrs>(fd_.get(), KVM_GET_XCRS, "KVM_GET_XCRS"); }
Status Vcpu::set_xcrs(const kvm_xcrs& xcrs) const { return ioctl_status(fd_.get(), KVM_SET_XCRS, &xcrs, "KVM_SET_XCRS"); }
Result<kvm_vcpu_events> Vcpu::get_events() const {
  return get_state<kvm_vcpu_events>(fd_.get(), KVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS");
}
Status Vcpu::set_events(const kvm_vcpu_events& events) const {
  return ioctl_status(fd_.get(), KVM_SET_VCPU_EVENTS, &events, "KVM_SET_VCPU_EVENTS");
}
Result<kvm_mp_state> Vcpu::get_mp_state() const {
  return get_state<kvm_mp_state>(fd_.get(), KVM_GET_MP_STATE, "KVM_GET_MP_STATE");
}
Status Vcpu::set_mp_state(const kvm_mp_state& state) const {
  return ioctl_status(fd_.get(), KVM_SET_MP_STATE, &state, "KVM_SET_MP_STATE");
}
Result<kvm_debugregs> Vcpu::get_debugregs() const {
  return get_state<kvm_debugregs>(fd_.get(), KVM_GET_DEBUGREGS, "KVM_GET_DEBUGREGS");
}
Status Vcpu::set_debugregs(const kvm_debugregs& regs) const {
  return ioctl_status(fd_.get(), KVM_SET_DEBUGREGS, &regs, "KVM_SET_DEBUGREGS");
}

Result<kvm_irqchip> Vm::get_irqchip(uint32_t chip) const {
  kvm_irqchip state{};
  state.chip_id = chip;
  HYPER_CHECK(ioctl_status(fd_.get(), KVM_GET_IRQCHIP, &state, "KVM_GET_IRQCHIP"));
  return state;
}
Status Vm::set_irqchip(const kvm_irqchip& state) const {
  return ioctl_status(fd_.get(), KVM_SET_IRQCHIP, &state, "KVM_SET_IRQCHIP");
}
Result<kvm_pit_state2> Vm::get_pit2() const { return get_state<kvm_pit_state2>(fd_.get(), KVM_GET_PIT2, "KVM_GET_PIT2"); }
Status Vm::set_pit2(const kvm_pit_state2& state) const {
  return ioctl_status(fd_.get(), KVM_SET_PIT2, &state, "KVM_SET_PIT2");
}
Result<kvm_clock_data> Vm::get_clock() const { return get_state<kvm_clock_data>(fd_.get(), KVM_GET_CLOCK, "KVM_GET_CLOCK"); }
Status Vm::set_clock(const kvm_clock_data& clock) const {
  // Only the clock value is ours to set; the other fields KVM fills in on reads.
  kvm_clock_data value{};
  value.clock = clock.clock;
  return ioctl_status(fd_.get(), KVM_SET_CLOCK, &value, "KVM_SET_CLOCK");
}

}  // namespace hyper
