// C layouts of the KVM ioctl arguments that end in a flexible array.
//
// The uapi headers declare those arrays with __DECLARE_FLEX_ARRAY, which wraps them in
// an empty struct. An empty struct has size 0 in C but 1 in C++, so in C++ sizeof()
// and the offset of the array are wrong, and so is every ioctl number derived from
// them (KVM then answers EINVAL). We declare the headers ourselves, checked against
// the sizes the kernel uses, and derive the ioctl numbers from those.
#pragma once

#include <linux/kvm.h>

#include <cstddef>
#include <cstdint>

namespace hyper::kvm_abi {

struct CpuidHeader {  // struct kvm_cpuid2, followed by kvm_cpuid_entry2[nent]
  uint32_t nent;
  uint32_t padding;
};
struct MsrsHeader {  // struct kvm_msrs, followed by kvm_msr_entry[nmsrs]
  uint32_t nmsrs;
  uint32_t pad;
};
struct MsrListHeader {  // struct kvm_msr_list, followed by uint32_t[nmsrs]
  uint32_t nmsrs;
};
static_assert(sizeof(CpuidHeader) == 8 && sizeof(MsrsHeader) == 8 && sizeof(MsrListHeader) == 4);
static_assert(alignof(kvm_cpuid_entry2) <= 8 && alignof(kvm_msr_entry) <= 8);

// struct kvm_xsave: 4096 bytes of region (its `extra` flexible array adds 4 in C++).
struct Xsave {
  uint32_t region[1024];
};
inline constexpr size_t kXsaveBytes = sizeof(Xsave);
static_assert(kXsaveBytes == 4096);
inline constexpr unsigned long kGetXsave = _IOR(KVMIO, 0xa4, Xsave);
inline constexpr unsigned long kSetXsave = _IOW(KVMIO, 0xa5, Xsave);
inline constexpr unsigned long kGetXsave2 = _IOR(KVMIO, 0xcf, Xsave);

inline constexpr unsigned long kGetMsrIndexList = _IOWR(KVMIO, 0x02, MsrListHeader);
inline constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, CpuidHeader);
inline constexpr unsigned long kGetMsrs = _IOWR(KVMIO, 0x88, MsrsHeader);
inline constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, MsrsHeader);
inline constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, CpuidHeader);

}  // namespace hyper::kvm_abi
