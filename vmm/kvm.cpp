#include "vmm/kvm.hpp"

#include "vmm/kvm_abi.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>

namespace hyper {
namespace {

// ioctl with a request-number argument of any pointer or integer type; retries EINTR
// except for KVM_RUN, whose EINTR is meaningful.
template <class Arg>
Result<int> checked_ioctl(int fd, unsigned long request, Arg arg, const char* what) {
  int rc;
  do {
    rc = ::ioctl(fd, request, arg);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) return Error::from_errno(what);
  return rc;
}

template <class Arg>
Status ioctl_status(int fd, unsigned long request, Arg arg, const char* what) {
  auto rc = checked_ioctl(fd, request, arg, what);
  if (!rc) return std::move(rc).error();
  return {};
}

struct RequiredCap {
  long cap;
  const char* name;
};

constexpr RequiredCap kRequiredCaps[] = {
    {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},       {KVM_CAP_PIT2, "KVM_CAP_PIT2"},
    {KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},           {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"}, {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
};

// A buffer for ioctls that take a header followed by a flexible array.
// A zeroed buffer for ioctls that take a header followed by a flexible array.
template <class Header, class Entry>
struct FlexBuffer {
  explicit FlexBuffer(size_t n)
      : storage(std::make_unique<uint64_t[]>((sizeof(Header) + n * sizeof(Entry) + 7) / 8)) {}
  Header* header() { return reinterpret_cast<Header*>(storage.get()); }
  Entry* entries() { return reinterpret_cast<Entry*>(reinterpret_cast<uint8_t*>(storage.get()) + sizeof(Header)); }
  std::unique_ptr<uint64_t[]> storage;
};
using CpuidBuffer = FlexBuffer<kvm_abi::CpuidHeader, kvm_cpuid_entry2>;
using MsrsBuffer = FlexBuffer<kvm_abi::MsrsHeader, kvm_msr_entry>;
using MsrListBuffer = FlexBuffer<kvm_abi::MsrListHeader, uint32_t>;

}  // namespace

// PVM announces itself by a paravirtual MSR on some builds and by its module name on
// all of them; either is enough.
bool host_kvm_is_pvm(const Kvm& kvm) {
  const auto& msrs = kvm.msr_index_list();
  if (std::find(msrs.begin(), msrs.end(), kMsrPvmVcpuStruct) != msrs.end()) return true;
  return ::access("/sys/module/kvm_pvm", F_OK) == 0;
}

Result<Kvm> Kvm::open(const std::string& path) {
  const int raw = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (raw < 0) {
    const int err = errno;
    if (err == ENOENT)
      return make_error(Errc::not_found, path + " does not exist: this host offers no KVM (is the kvm module loaded?)");
    if (err == EACCES || err == EPERM)
      return make_error(Errc::permission_denied,
                        "no permission to open " + path + ": run as root or join the group that owns it (usually 'kvm')");
    return Error::from_errno("open " + path, err);
  }
  Kvm kvm{UniqueFd(raw)};
  const int version = ::ioctl(raw, KVM_GET_API_VERSION, 0);
  if (version != KVM_API_VERSION)
    return make_error(Errc::unsupported, "KVM API version " + std::to_string(version) + ", expected " +
                                             std::to_string(KVM_API_VERSION));
  for (const auto& [cap, name] : kRequiredCaps) {
    if (kvm.check_extension(cap) <= 0)
      return make_error(Errc::unsupported, std::string("host KVM lacks ") + name + ", which this VMM needs");
  }
  const int mmap_size = ::ioctl(raw, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (mmap_size <= 0) return Error::from_errno("KVM_GET_VCPU_MMAP_SIZE");
  kvm.vcpu_mmap_size_ = static_cast<size_t>(mmap_size);
  kvm.msr_indices_ = HYPER_TRY(kvm.fetch_msr_index_list());
  kvm.is_pvm_ = host_kvm_is_pvm(kvm);
  return kvm;
}

int Kvm::check_extension(long cap) const { return ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap); }

uint32_t Kvm::max_vcpus() const {
  const int max = check_extension(KVM_CAP_MAX_VCPUS);
  if (max > 0) return static_cast<uint32_t>(max);
  const int recommended = check_extension(KVM_CAP_NR_VCPUS);
  return recommended > 0 ? static_cast<uint32_t>(recommended) : 4;
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

Result<Vm> Kvm::create_vm() const {
  const int rc = HYPER_TRY(checked_ioctl(fd_.get(), KVM_CREATE_VM, 0UL, "KVM_CREATE_VM"));
  return Vm(UniqueFd(rc));
}

Status Vm::set_user_memory_region(uint32_t slot, uint64_t gpa, uint64_t size, void* host) const {
  kvm_userspace_memory_region region{};
  region.slot = slot;
  region.guest_phys_addr = gpa;
  region.memory_size = size;
  region.userspace_addr = reinterpret_cast<uint64_t>(host);
  return ioctl_status(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region, "KVM_SET_USER_MEMORY_REGION");
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

Status Vm::register_irqfd(int eventfd, uint32_t gsi) const {
  kvm_irqfd irqfd{};
  irqfd.fd = static_cast<uint32_t>(eventfd);
  irqfd.gsi = gsi;
  return ioctl_status(fd_.get(), KVM_IRQFD, &irqfd, "KVM_IRQFD");
}

Status Vm::register_ioeventfd(int eventfd, uint64_t addr, uint32_t len, uint64_t datamatch) const {
  kvm_ioeventfd io{};
  io.addr = addr;
  io.len = len;
  io.fd = eventfd;
  io.flags = KVM_IOEVENTFD_FLAG_DATAMATCH;
  io.datamatch = datamatch;
  return ioctl_status(fd_.get(), KVM_IOEVENTFD, &io, "KVM_IOEVENTFD");
}

Result<Vcpu> Vm::create_vcpu(uint32_t id, size_t mmap_size) const {
  const int raw = HYPER_TRY(checked_ioctl(fd_.get(), KVM_CREATE_VCPU, static_cast<unsigned long>(id), "KVM_CREATE_VCPU"));
  UniqueFd fd(raw);
  auto run = HYPER_TRY(Mapping::shared_fd(raw, mmap_size));
  return Vcpu(id, std::move(fd), std::move(run));
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

int Vcpu::run() const { return ::ioctl(fd_.get(), KVM_RUN, 0) < 0 ? errno : 0; }

}  // namespace hyper
