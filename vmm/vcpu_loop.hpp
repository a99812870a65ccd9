// The vCPU thread body: KVM_RUN until the VM stops, dispatching port and MMIO exits
// to the buses. Nothing here throws; every end is reported to the ExitLatch.
#pragma once

#include <atomic>
#include <cstdint>

#include "vmm/bus.hpp"
#include "vmm/kvm.hpp"
#include "vmm/pause_gate.hpp"
#include "vmm/vm_exit.hpp"

namespace hyper {

struct VcpuContext {
  const Bus& pio;
  const Bus& mmio;
  ExitLatch& exits;
  bool host_is_pvm;
  std::atomic<uint64_t>& first_run_ns;  // set by the first KVM_RUN of any vCPU
  PauseGate* gate = nullptr;             // where the vCPU parks while the machine is paused
};

void run_vcpu(const Vcpu& vcpu, VcpuContext& ctx) noexcept;

// Makes a vCPU leave KVM_RUN promptly and stay out: sets immediate_exit, then the caller
// signals the thread with kick_signal().
void request_immediate_exit(const Vcpu& vcpu) noexcept;
int kick_signal() noexcept;
// Installs the no-op handler for kick_signal() (idempotent).
[[nodiscard]] Status install_kick_handler();

// A readable account of a KVM internal error, with the RIP and, on PVM, the reason.
std::string describe_internal_error(const Vcpu& vcpu, const kvm_run& run, bool host_is_pvm);

}  // namespace hyper
