// Per-vCPU architectural set-up: CPUID that tells a consistent topology for the vCPU
// count, the MSRs Linux expects at boot, FPU defaults and the LAPIC's LINT pins.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <vector>

#include "vmm/kvm.hpp"

namespace hyper {

enum class CpuVendor { intel, amd, other };

[[nodiscard]] CpuVendor cpu_vendor(std::span<const kvm_cpuid_entry2> cpuid);

struct CpuidOptions {
  // KVM emulates the TSC-deadline timer with an in-kernel LAPIC but leaves it out of
  // KVM_GET_SUPPORTED_CPUID; advertising it spares Linux its ~100 ms LAPIC timer
  // calibration at every boot.
  bool tsc_deadline_timer = false;
};

// The CPUID table for vCPU `index` of `count`: one socket, one thread per core, APIC ID
// = index. Pure function of KVM's supported table.
[[nodiscard]] std::vector<kvm_cpuid_entry2> vcpu_cpuid(std::span<const kvm_cpuid_entry2> supported, uint32_t index,
                                                       uint32_t count, CpuidOptions options = {});

// The boot MSR values: those KVM lists as settable, plus MTRRdefType (emulated, unlisted).
[[nodiscard]] std::vector<kvm_msr_entry> boot_msrs(std::span<const uint32_t> settable);

// Sets CPUID, MSRs, FPU and LAPIC LINT0/LINT1 (ExtINT/NMI) on a fresh vCPU.
[[nodiscard]] Status configure_vcpu(const Vcpu& vcpu, std::span<const kvm_cpuid_entry2> supported_cpuid,
                                    std::span<const uint32_t> settable_msrs, uint32_t count, CpuidOptions options);

}  // namespace hyper
