// The arm64-only parts of vmm/kvm.hpp: vCPU targets, one-register access and in-kernel
// devices (the GIC).
#include "vmm/kvm.hpp"

#include "vmm/kvm_ioctl.hpp"

namespace hyper {

using kvm_ioctl::checked_ioctl;
using kvm_ioctl::get_state;
using kvm_ioctl::ioctl_status;

Status Kvm::open_arch() { return {}; }

Result<kvm_vcpu_init> Vm::preferred_target() const {
  return get_state<kvm_vcpu_init>(fd_.get(), KVM_ARM_PREFERRED_TARGET, "KVM_ARM_PREFERRED_TARGET");
}

Result<UniqueFd> Vm::create_device(uint32_t type) const {
  kvm_create_device device{};
  device.type = type;
  HYPER_CHECK(ioctl_status(fd_.get(), KVM_CREATE_DEVICE, &device, "KVM_CREATE_DEVICE"));
  return UniqueFd(static_cast<int>(device.fd));
}

Status Vcpu::init(const kvm_vcpu_init& init) const {
  return ioctl_status(fd_.get(), KVM_ARM_VCPU_INIT, &init, "KVM_ARM_VCPU_INIT");
}

Result<uint64_t> Vcpu::get_one_reg(uint64_t id) const {
  uint64_t value = 0;
  kvm_one_reg reg{id, reinterpret_cast<uint64_t>(&value)};
  HYPER_CHECK(ioctl_status(fd_.get(), KVM_GET_ONE_REG, &reg, "KVM_GET_ONE_REG"));
  return value;
}

Status Vcpu::set_one_reg(uint64_t id, uint64_t value) const {
  kvm_one_reg reg{id, reinterpret_cast<uint64_t>(&value)};
  return ioctl_status(fd_.get(), KVM_SET_ONE_REG, &reg, "KVM_SET_ONE_REG");
}

}  // namespace hyper
