// Everything KVM holds for one x86 vCPU, taken while the vCPU is out of KVM_RUN and put
// back into a fresh vCPU (after its CPUID is set) on restore, in the order KVM needs:
// MP state and registers first, the LAPIC before the MSRs (the TSC deadline MSR is
// checked against the LAPIC's timer mode), pending events last.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <vector>

#include "vmm/kvm.hpp"
#include "vmm/result.hpp"

namespace hyper {

struct VcpuState {
  kvm_mp_state mp_state{};
  kvm_regs regs{};
  kvm_sregs sregs{};
  std::vector<uint8_t> xsave;
  kvm_xcrs xcrs{};
  kvm_debugregs debugregs{};
  kvm_lapic_state lapic{};
  std::vector<kvm_msr_entry> msrs;
  kvm_vcpu_events events{};

  // `msr_indices`: the host's KVM_GET_MSR_INDEX_LIST; `xsave_size`: KVM_CAP_XSAVE2's answer.
  static Result<VcpuState> capture(const Vcpu& vcpu, std::span<const uint32_t> msr_indices, size_t xsave_size);
  [[nodiscard]] Status apply(const Vcpu& vcpu) const;

  [[nodiscard]] std::vector<uint8_t> encode() const;
  static Result<VcpuState> decode(std::span<const uint8_t> bytes, uint32_t id);
};

}  // namespace hyper
