// Thin RAII wrappers over the /dev/kvm, VM and vCPU file descriptors. Each ioctl
// failure becomes a typed Error that names the operation.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "vmm/mapping.hpp"
#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper {

class Vcpu;
class Vm;
class Kvm;

#if defined(__x86_64__)
// The PVM hypervisor exposes this MSR; its presence tells us /dev/kvm is PVM, which
// can only run guest kernels built with CONFIG_PVM_GUEST.
inline constexpr uint32_t kMsrPvmVcpuStruct = 0x4b564df1;

[[nodiscard]] bool host_kvm_is_pvm(const Kvm& kvm);
#endif

class Kvm {
 public:
  // Opens /dev/kvm (or `path`) and checks the API version and every capability we need.
  static Result<Kvm> open(const std::string& path = "/dev/kvm");

  [[nodiscard]] int fd() const { return fd_.get(); }
  [[nodiscard]] int check_extension(long cap) const;
  [[nodiscard]] size_t vcpu_mmap_size() const { return vcpu_mmap_size_; }
  [[nodiscard]] uint32_t max_vcpus() const;
  // Only x86 hosts can be PVM (no VT-x/SVM under KVM's API).
  [[nodiscard]] bool is_pvm() const { return is_pvm_; }

  // `type`: KVM_CREATE_VM's machine type (arm64: the guest's physical address bits).
  [[nodiscard]] Result<Vm> create_vm(unsigned long type = 0) const;

#if defined(__x86_64__)
  [[nodiscard]] Result<std::vector<kvm_cpuid_entry2>> supported_cpuid() const;
  // Fetched once at open(): both PVM detection and every vCPU's set-up need it.
  [[nodiscard]] const std::vector<uint32_t>& msr_index_list() const { return msr_indices_; }
#endif

 private:
  explicit Kvm(UniqueFd fd) : fd_(std::move(fd)) {}
  // What open() learns that only one architecture needs.
  [[nodiscard]] Status open_arch();
  UniqueFd fd_;
  size_t vcpu_mmap_size_ = 0;
  bool is_pvm_ = false;
#if defined(__x86_64__)
  [[nodiscard]] Result<std::vector<uint32_t>> fetch_msr_index_list() const;
  std::vector<uint32_t> msr_indices_;
#endif
};

class Vm {
 public:
  [[nodiscard]] int fd() const { return fd_.get(); }
  // Some answers are per VM (KVM_CAP_XSAVE2's size is documented for the VM fd).
  [[nodiscard]] int check_extension(long cap) const;
  [[nodiscard]] Status set_user_memory_region(uint32_t slot, uint64_t gpa, uint64_t size, void* host) const;
  // Writing to `eventfd` injects an edge on `gsi` (arm64: shared peripheral interrupt
  // `gsi`, the GIC's interrupt ID gsi + 32).
  [[nodiscard]] Status register_irqfd(int eventfd, uint32_t gsi) const;
  // A guest write of `len` bytes equal to `datamatch` at MMIO `addr` signals `eventfd`
  // in the kernel, without an exit to the VMM.
  [[nodiscard]] Status register_ioeventfd(int eventfd, uint64_t addr, uint32_t len, uint64_t datamatch) const;
  [[nodiscard]] Result<Vcpu> create_vcpu(uint32_t id, size_t mmap_size) const;

#if defined(__x86_64__)
  [[nodiscard]] Status create_irqchip() const;
  [[nodiscard]] Status create_pit2() const;
  [[nodiscard]] Status set_tss_addr(uint64_t addr) const;
  [[nodiscard]] Status set_identity_map_addr(uint64_t addr) const;
  // The in-kernel devices' state, for snapshots: `chip` is KVM_IRQCHIP_PIC_MASTER,
  // _PIC_SLAVE or _IOAPIC.
  [[nodiscard]] Result<kvm_irqchip> get_irqchip(uint32_t chip) const;
  [[nodiscard]] Status set_irqchip(const kvm_irqchip& state) const;
  [[nodiscard]] Result<kvm_pit_state2> get_pit2() const;
  [[nodiscard]] Status set_pit2(const kvm_pit_state2& state) const;
  [[nodiscard]] Result<kvm_clock_data> get_clock() const;
  [[nodiscard]] Status set_clock(const kvm_clock_data& clock) const;
#elif defined(__aarch64__)
  // The vCPU target this host's KVM prefers (KVM_ARM_PREFERRED_TARGET).
  [[nodiscard]] Result<kvm_vcpu_init> preferred_target() const;
  // An in-kernel device (KVM_CREATE_DEVICE): the GIC.
  [[nodiscard]] Result<UniqueFd> create_device(uint32_t type) const;
#endif

 private:
  friend class Kvm;
  explicit Vm(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

class Vcpu {
 public:
  [[nodiscard]] uint32_t id() const { return id_; }
  [[nodiscard]] int fd() const { return fd_.get(); }
  [[nodiscard]] kvm_run* run_state() const { return reinterpret_cast<kvm_run*>(run_.data()); }
  // One KVM_RUN; returns 0 or the errno (EINTR when kicked).
  [[nodiscard]] int run() const;

#if defined(__x86_64__)
  [[nodiscard]] Status set_cpuid(std::span<const kvm_cpuid_entry2> entries) const;
  [[nodiscard]] Status set_msrs(std::span<const kvm_msr_entry> entries) const;
  [[nodiscard]] Result<kvm_regs> get_regs() const;
  [[nodiscard]] Status set_regs(const kvm_regs& regs) const;
  [[nodiscard]] Result<kvm_sregs> get_sregs() const;
  [[nodiscard]] Status set_sregs(const kvm_sregs& sregs) const;
  [[nodiscard]] Status set_fpu(const kvm_fpu& fpu) const;
  [[nodiscard]] Result<kvm_lapic_state> get_lapic() const;
  [[nodiscard]] Status set_lapic(const kvm_lapic_state& lapic) const;
  // The rest of a vCPU's state, for snapshots. get_msrs leaves out the MSRs of `indices`
  // that this vCPU cannot read (KVM lists some that depend on CPUID).
  [[nodiscard]] Result<std::vector<kvm_msr_entry>> get_msrs(std::span<const uint32_t> indices) const;
  // XSAVE area of `size` bytes (KVM_CAP_XSAVE2's answer, at least 4096).
  [[nodiscard]] Result<std::vector<uint8_t>> get_xsave(size_t size) const;
  [[nodiscard]] Status set_xsave(std::span<const uint8_t> area) const;
  [[nodiscard]] Result<kvm_xcrs> get_xcrs() const;
  [[nodiscard]] Status set_xcrs(const kvm_xcrs& xcrs) const;
  [[nodiscard]] Result<kvm_vcpu_events> get_events() const;
  [[nodiscard]] Status set_events(const kvm_vcpu_events& events) const;
  [[nodiscard]] Result<kvm_mp_state> get_mp_state() const;
  [[nodiscard]] Status set_mp_state(const kvm_mp_state& state) const;
  [[nodiscard]] Result<kvm_debugregs> get_debugregs() const;
  [[nodiscard]] Status set_debugregs(const kvm_debugregs& regs) const;
#elif defined(__aarch64__)
  [[nodiscard]] Status init(const kvm_vcpu_init& init) const;  // KVM_ARM_VCPU_INIT
  [[nodiscard]] Result<uint64_t> get_one_reg(uint64_t id) const;
  [[nodiscard]] Status set_one_reg(uint64_t id, uint64_t value) const;
#endif

 private:
  friend class Vm;
  Vcpu(uint32_t id, UniqueFd fd, Mapping run) : id_(id), fd_(std::move(fd)), run_(std::move(run)) {}
  uint32_t id_;
  UniqueFd fd_;
  Mapping run_;
};

}  // namespace hyper
