#include "vmm/cpu_config.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

namespace hyper {
namespace {

constexpr uint32_t kLeafFeatures = 0x1, kLeafCacheParams = 0x4, kLeafTopology = 0xb, kLeafTopologyV2 = 0x1f;
constexpr uint32_t kLeafExtFeatures = 0x80000001, kLeafAddressSizes = 0x80000008, kLeafAmdTopology = 0x8000001e;
constexpr uint32_t kHypervisorBit = 1u << 31;  // leaf 1 ECX
constexpr uint32_t kHttBit = 1u << 28;         // leaf 1 EDX
constexpr uint32_t kTscDeadlineBit = 1u << 24; // leaf 1 ECX
constexpr uint32_t kCmpLegacyBit = 1u << 1;    // leaf 0x80000001 ECX
constexpr uint32_t kTopologySmt = 1, kTopologyCore = 2;

constexpr uint32_t kMsrTsc = 0x10, kMsrSysenterCs = 0x174, kMsrSysenterEsp = 0x175, kMsrSysenterEip = 0x176;
constexpr uint32_t kMsrMiscEnable = 0x1a0, kMsrMtrrDefType = 0x2ff;
constexpr uint32_t kMsrStar = 0xc0000081, kMsrLstar = 0xc0000082, kMsrCstar = 0xc0000083;
constexpr uint32_t kMsrSyscallMask = 0xc0000084, kMsrKernelGsBase = 0xc0000102;
constexpr uint64_t kMiscEnableFastStrings = 1;
constexpr uint64_t kMtrrEnableWriteBack = (1u << 11) | 6;

constexpr size_t kLapicLint0 = 0x350, kLapicLint1 = 0x360;
constexpr uint32_t kDeliveryExtInt = 7, kDeliveryNmi = 4;

// Bits of APIC ID needed to number `count` cores.
uint32_t core_id_bits(uint32_t count) { return count <= 1 ? 0 : static_cast<uint32_t>(std::bit_width(count - 1)); }

kvm_cpuid_entry2 topology_entry(uint32_t function, uint32_t subleaf, uint32_t apic_id, uint32_t count) {
  kvm_cpuid_entry2 e{};
  e.function = function;
  e.index = subleaf;
  e.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
  e.edx = apic_id;
  if (subleaf == 0) {  // SMT level: one thread per core
    e.eax = 0;
    e.ebx = 1;
    e.ecx = (kTopologySmt << 8) | subleaf;
  } else if (subleaf == 1) {  // core level: every vCPU of the package
    e.eax = core_id_bits(count);
    e.ebx = count;
    e.ecx = (kTopologyCore << 8) | subleaf;
  } else {  // terminating, invalid level
    e.ecx = subleaf;
  }
  return e;
}

uint32_t max_leaf(std::span<const kvm_cpuid_entry2> cpuid, uint32_t base) {
  for (const auto& e : cpuid)
    if (e.function == base) return e.eax;
  return 0;
}

}  // namespace

CpuVendor cpu_vendor(std::span<const kvm_cpuid_entry2> cpuid) {
  for (const auto& e : cpuid) {
    if (e.function != 0) continue;
    char vendor[13] = {};
    std::memcpy(vendor, &e.ebx, 4);
    std::memcpy(vendor + 4, &e.edx, 4);
    std::memcpy(vendor + 8, &e.ecx, 4);
    if (std::strcmp(vendor, "GenuineIntel") == 0) return CpuVendor::intel;
    if (std::strcmp(vendor, "AuthenticAMD") == 0 || std::strcmp(vendor, "HygonGenuine") == 0) return CpuVendor::amd;
  }
  return CpuVendor::other;
}

std::vector<kvm_cpuid_entry2> vcpu_cpuid(std::span<const kvm_cpuid_entry2> supported, uint32_t index,
                                         uint32_t count, CpuidOptions options) {
  const uint32_t apic_id = index;
  const uint32_t basic_max = max_leaf(supported, 0);
  std::vector<kvm_cpuid_entry2> out;
  for (auto e : supported) {
    switch (e.function) {
      case kLeafFeatures:
        e.ebx = (e.ebx & 0x0000ffff) | (apic_id << 24) | (std::min(count, 255u) << 16);
        e.ecx |= kHypervisorBit;
        if (options.tsc_deadline_timer) e.ecx |= kTscDeadlineBit;
        e.edx = count > 1 ? (e.edx | kHttBit) : (e.edx & ~kHttBit);
        break;
      case kLeafCacheParams: {
        const uint32_t level = (e.eax >> 5) & 0x7;
        const uint32_t sharing = level >= 3 ? count - 1 : 0;
        e.eax = (e.eax & 0x3fff) | ((std::min(count, 64u) - 1) << 26) | ((sharing & 0xfff) << 14);
        break;
      }
      case kLeafTopology:
      case kLeafTopologyV2:
        continue;  // rebuilt below
      case kLeafExtFeatures:
        e.ecx = count > 1 ? (e.ecx | kCmpLegacyBit) : (e.ecx & ~kCmpLegacyBit);
        break;
      case kLeafAddressSizes:
        e.ecx = (e.ecx & ~0xf0ffu) | (core_id_bits(count) << 12) | ((count - 1) & 0xff);
        break;
      case kLeafAmdTopology:
        e.eax = apic_id;
        e.ebx = (e.ebx & ~0xffffu) | (apic_id & 0xff);  // core id; one thread per core
        e.ecx &= ~0x7ffu;                               // node 0, one node per package
        break;
      default:
        break;
    }
    out.push_back(e);
  }
  for (const uint32_t leaf : {kLeafTopology, kLeafTopologyV2}) {
    if (basic_max < leaf) continue;
    for (uint32_t sub = 0; sub < 3; ++sub) out.push_back(topology_entry(leaf, sub, apic_id, count));
  }
  return out;
}

std::vector<kvm_msr_entry> boot_msrs(std::span<const uint32_t> settable) {
  const kvm_msr_entry wanted[] = {
      {kMsrSysenterCs, 0, 0},   {kMsrSysenterEsp, 0, 0}, {kMsrSysenterEip, 0, 0},
      {kMsrStar, 0, 0},         {kMsrLstar, 0, 0},       {kMsrCstar, 0, 0},
      {kMsrSyscallMask, 0, 0},  {kMsrKernelGsBase, 0, 0}, {kMsrTsc, 0, 0},
      {kMsrMiscEnable, 0, kMiscEnableFastStrings},       {kMsrMtrrDefType, 0, kMtrrEnableWriteBack},
  };
  std::vector<kvm_msr_entry> out;
  for (const auto& msr : wanted) {
    // KVM emulates the MTRRs without listing them; without this the guest sees them off.
    const bool always = msr.index == kMsrMtrrDefType;
    if (always || std::find(settable.begin(), settable.end(), msr.index) != settable.end()) out.push_back(msr);
  }
  return out;
}

Status configure_vcpu(const Vcpu& vcpu, std::span<const kvm_cpuid_entry2> supported_cpuid,
                      std::span<const uint32_t> settable_msrs, uint32_t count, CpuidOptions options) {
  HYPER_CHECK(vcpu.set_cpuid(vcpu_cpuid(supported_cpuid, vcpu.id(), count, options)));
  HYPER_CHECK(vcpu.set_msrs(boot_msrs(settable_msrs)));
  kvm_fpu fpu{};
  fpu.fcw = 0x37f;     // x87 default control word
  fpu.mxcsr = 0x1f80;  // SSE default: all exceptions masked
  HYPER_CHECK(vcpu.set_fpu(fpu));

  auto lapic = HYPER_TRY(vcpu.get_lapic());
  auto set_delivery = [&](size_t offset, uint32_t mode) {
    uint32_t reg;
    std::memcpy(&reg, lapic.regs + offset, sizeof reg);
    reg = (reg & ~0x700u) | (mode << 8);
    std::memcpy(lapic.regs + offset, &reg, sizeof reg);
  };
  set_delivery(kLapicLint0, kDeliveryExtInt);
  set_delivery(kLapicLint1, kDeliveryNmi);
  return vcpu.set_lapic(lapic);
}

}  // namespace hyper
