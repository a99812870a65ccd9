// The parts of vmm/kvm.hpp every architecture shares; kvm_x86.cpp and kvm_arm64.cpp
// hold the rest.
#include "vmm/kvm.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vmm/kvm_ioctl.hpp"

namespace hyper {

using kvm_ioctl::checked_ioctl;
using kvm_ioctl::ioctl_status;

namespace {

struct RequiredCap {
  long cap;
  const char* name;
};

constexpr RequiredCap kRequiredCaps[] = {
    {KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
    {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
#if defined(__x86_64__)
    {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
    {KVM_CAP_PIT2, "KVM_CAP_PIT2"},
    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
#elif defined(__aarch64__)
    {KVM_CAP_ONE_REG, "KVM_CAP_ONE_REG"},
    {KVM_CAP_ARM_PSCI_0_2, "KVM_CAP_ARM_PSCI_0_2"},
    {KVM_CAP_DEVICE_CTRL, "KVM_CAP_DEVICE_CTRL"},
#endif
};

}  // namespace

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
  HYPER_CHECK(kvm.open_arch());
  return kvm;
}

int Kvm::check_extension(long cap) const { return ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap); }
int Vm::check_extension(long cap) const { return ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap); }

uint32_t Kvm::max_vcpus() const {
  const int max = check_extension(KVM_CAP_MAX_VCPUS);
  if (max > 0) return static_cast<uint32_t>(max);
  const int recommended = check_extension(KVM_CAP_NR_VCPUS);
  return recommended > 0 ? static_cast<uint32_t>(recommended) : 4;
}

Result<Vm> Kvm::create_vm(unsigned long type) const {
  const int rc = HYPER_TRY(checked_ioctl(fd_.get(), KVM_CREATE_VM, type, "KVM_CREATE_VM"));
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

int Vcpu::run() const { return ::ioctl(fd_.get(), KVM_RUN, 0) < 0 ? errno : 0; }

}  // namespace hyper
