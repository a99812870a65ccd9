#include "vmm/vcpu_state.hpp"

#include <cpuid.h>

#include <string>

#include "vmm/kvm_abi.hpp"
#include "vmm/snapshot_codec.hpp"

namespace hyper {

Result<VcpuState> VcpuState::capture(const Vcpu& vcpu, std::span<const uint32_t> msr_indices, size_t xsave_size) {
  VcpuState s;
  s.mp_state = HYPER_TRY(vcpu.get_mp_state());
  s.regs = HYPER_TRY(vcpu.get_regs());
  s.sregs = HYPER_TRY(vcpu.get_sregs());
  s.xsave = HYPER_TRY(vcpu.get_xsave(xsave_size));
  s.xcrs = HYPER_TRY(vcpu.get_xcrs());
  s.debugregs = HYPER_TRY(vcpu.get_debugregs());
  s.lapic = HYPER_TRY(vcpu.get_lapic());
  s.msrs = HYPER_TRY(vcpu.get_msrs(msr_indices));
  s.events = HYPER_TRY(vcpu.get_events());
  return s;
}

namespace {

bool host_is_amd() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return false;
  return ebx == 0x68747541 && edx == 0x69746e65 && ecx == 0x444d4163;  // "AuthenticAMD"
}

// KVM on AMD reports the task register as busy whatever the VMCB holds, and sets back
// what it is given. Hardware ignores the cached type in long mode, but QEMU's emulated
// CPU (our nested test VM) checks it on every user-space port access and raises #GP for
// a busy one: a restored guest could no longer write its exit port. So on AMD the TR
// goes back as it was loaded, available; Intel's VM entry requires busy and gets it.
kvm_sregs sregs_for_host(kvm_sregs sregs) {
  constexpr uint8_t kTssBusy = 11, kTssAvailable = 9;
  static const bool amd = host_is_amd();
  if (amd && sregs.tr.type == kTssBusy) sregs.tr.type = kTssAvailable;
  return sregs;
}

}  // namespace

Status VcpuState::apply(const Vcpu& vcpu) const {
  HYPER_CHECK(vcpu.set_mp_state(mp_state));
  HYPER_CHECK(vcpu.set_regs(regs));
  HYPER_CHECK(vcpu.set_sregs(sregs_for_host(sregs)));
  HYPER_CHECK(vcpu.set_xsave(xsave));
  // A host CPU without XSAVE has no XCRs to give (nr_xcrs 0) and refuses to set any.
  if (xcrs.nr_xcrs) HYPER_CHECK(vcpu.set_xcrs(xcrs));
  HYPER_CHECK(vcpu.set_debugregs(debugregs));
  HYPER_CHECK(vcpu.set_lapic(lapic));
  HYPER_CHECK(vcpu.set_msrs(msrs));
  // Only what the snapshot says is pending: the NMI and SIPI fields are valid as saved.
  kvm_vcpu_events pending = events;
  pending.flags &= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR | KVM_VCPUEVENT_VALID_SHADOW |
                   KVM_VCPUEVENT_VALID_SMM | KVM_VCPUEVENT_VALID_PAYLOAD;
  return vcpu.set_events(pending);
}

std::vector<uint8_t> VcpuState::encode() const {
  snapshot::Encoder e;
  e.put(mp_state).put(regs).put(sregs).put_vector(xsave).put(xcrs).put(debugregs).put(lapic).put_vector(msrs).put(events);
  return e.bytes();
}

Result<VcpuState> VcpuState::decode(std::span<const uint8_t> bytes, uint32_t id) {
  snapshot::Decoder d(bytes, "vCPU " + std::to_string(id));
  VcpuState s;
  s.mp_state = HYPER_TRY(d.get<kvm_mp_state>());
  s.regs = HYPER_TRY(d.get<kvm_regs>());
  s.sregs = HYPER_TRY(d.get<kvm_sregs>());
  s.xsave = HYPER_TRY(d.get_vector<uint8_t>());
  s.xcrs = HYPER_TRY(d.get<kvm_xcrs>());
  s.debugregs = HYPER_TRY(d.get<kvm_debugregs>());
  s.lapic = HYPER_TRY(d.get<kvm_lapic_state>());
  s.msrs = HYPER_TRY(d.get_vector<kvm_msr_entry>());
  s.events = HYPER_TRY(d.get<kvm_vcpu_events>());
  HYPER_CHECK(d.finish());
  if (s.xsave.size() < kvm_abi::kXsaveBytes)
    return make_error(Errc::invalid_argument, "snapshot: vCPU " + std::to_string(id) + " has a short XSAVE area");
  return s;
}

}  // namespace hyper
