#include "vmm/vcpu_loop.hpp"

#include <signal.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "vmm/clock.hpp"

namespace hyper {
namespace {

void handle_io(const kvm_run& run, const VcpuContext& ctx) {
  auto* data = const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(&run)) + run.io.data_offset;
  for (uint32_t i = 0; i < run.io.count; ++i, data += run.io.size) {
    std::span<uint8_t> bytes(data, run.io.size);
    if (run.io.direction == KVM_EXIT_IO_OUT) {
      ctx.pio.write(run.io.port, bytes);
    } else if (!ctx.pio.read(run.io.port, bytes)) {
      std::memset(data, 0xff, run.io.size);  // nothing there: the bus floats high
    }
  }
}

void handle_mmio(kvm_run& run, const VcpuContext& ctx) {
  const uint32_t len = std::min<uint32_t>(run.mmio.len, sizeof run.mmio.data);
  std::span<uint8_t> bytes(run.mmio.data, len);
  if (run.mmio.is_write) {
    ctx.mmio.write(run.mmio.phys_addr, bytes);
  } else if (!ctx.mmio.read(run.mmio.phys_addr, bytes)) {
    std::memset(run.mmio.data, 0, len);
  }
}

VmExit system_event_exit(const kvm_run& run) {
  switch (run.system_event.type) {
    case KVM_SYSTEM_EVENT_SHUTDOWN: return {ExitKind::power_off, 0, "the guest powered off"};
    case KVM_SYSTEM_EVENT_RESET: return {ExitKind::reset, 0, "the guest reset itself"};
    case KVM_SYSTEM_EVENT_CRASH: return {ExitKind::crash, 1, "KVM reported a guest crash"};
    default: return {ExitKind::error, 1, "unknown KVM system event " + std::to_string(run.system_event.type)};
  }
}

// Handles one exit; returns the VM's end when this exit ends it.
std::optional<VmExit> dispatch_exit(const Vcpu& vcpu, kvm_run& run, VcpuContext& ctx) {
  auto where = [&vcpu] { return "vCPU " + std::to_string(vcpu.id()); };
  switch (run.exit_reason) {
    case KVM_EXIT_IO: handle_io(run, ctx); return std::nullopt;
    case KVM_EXIT_MMIO: handle_mmio(run, ctx); return std::nullopt;
    case KVM_EXIT_INTR: return std::nullopt;
    case KVM_EXIT_HLT: return VmExit{ExitKind::power_off, 0, where() + " halted"};
    case KVM_EXIT_SHUTDOWN:  // guests reboot through the i8042 (reboot=k): this is a crash
      return VmExit{ExitKind::triple_fault, 1, where() + " triple-faulted"};
    case KVM_EXIT_SYSTEM_EVENT: return system_event_exit(run);
    case KVM_EXIT_INTERNAL_ERROR:
      return VmExit{ExitKind::error, 1, where() + ": " + describe_internal_error(vcpu, run, ctx.host_is_pvm)};
    case KVM_EXIT_FAIL_ENTRY:
      return VmExit{ExitKind::error, 1,
                    where() + ": KVM could not enter the guest (hardware entry failure reason " +
                        to_hex(run.fail_entry.hardware_entry_failure_reason) + ")"};
    default:
      return VmExit{ExitKind::error, 1, where() + ": unhandled KVM exit reason " + std::to_string(run.exit_reason)};
  }
}

void ignore_signal(int) {}

// KVM finishes a port or MMIO exit (an IN's value into RAX, the RIP past the instruction)
// only on the next KVM_RUN; with immediate_exit set, that run completes it and returns
// EINTR at once, or, when completing it needs us again (an access split in two, a string
// I/O going on), returns with that exit to serve first. Only after EINTR is the vCPU's
// state whole enough to save. False when an exit served here ended the VM.
bool park(const Vcpu& vcpu, VcpuContext& ctx) {
  request_immediate_exit(vcpu);
  for (;;) {
    const int err = vcpu.run();
    if (err == EINTR || err == EAGAIN) break;
    if (err) {
      ctx.exits.report({ExitKind::error, 1, "KVM_RUN failed on vCPU " + std::to_string(vcpu.id()) + ": " + std::strerror(err)});
      return false;
    }
    if (auto end = dispatch_exit(vcpu, *vcpu.run_state(), ctx)) {
      ctx.exits.report(std::move(*end));
      return false;
    }
  }
  ctx.gate->park();
  std::atomic_ref<uint8_t>(vcpu.run_state()->immediate_exit).store(0, std::memory_order_release);
  return true;
}

}  // namespace

int kick_signal() noexcept { return SIGRTMIN + 1; }

Status install_kick_handler() {
  struct sigaction sa {};
  sa.sa_handler = ignore_signal;  // no SA_RESTART: KVM_RUN must return EINTR
  sigemptyset(&sa.sa_mask);
  if (::sigaction(kick_signal(), &sa, nullptr) < 0) return Error::from_errno("sigaction");
  return {};
}

void request_immediate_exit(const Vcpu& vcpu) noexcept {
  std::atomic_ref<uint8_t>(vcpu.run_state()->immediate_exit).store(1, std::memory_order_release);
}

std::string describe_internal_error(const Vcpu& vcpu, const kvm_run& run, bool host_is_pvm) {
  std::string text = "KVM internal error, suberror " + std::to_string(run.internal.suberror);
  if (run.internal.suberror == KVM_INTERNAL_ERROR_EMULATION) text += " (instruction emulation failed)";
#if defined(__x86_64__)
  if (auto regs = vcpu.get_regs(); regs.ok()) text += " at RIP " + to_hex(regs->rip);
#elif defined(__aarch64__)
  constexpr uint64_t kPc = KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | KVM_REG_ARM_CORE_REG(regs.pc);
  if (auto pc = vcpu.get_one_reg(kPc); pc.ok()) text += " at PC " + to_hex(*pc);
#endif
  if (host_is_pvm) {
    text += ". This host's /dev/kvm is PVM (no VT-x/SVM): it runs only guest kernels built with "
            "PVM guest support (CONFIG_PVM_GUEST); a stock kernel dies in KVM's emulator. Run the "
            "guest in the nested VM (tests/rig/run) or on a host with hardware virtualization";
  }
  return text;
}

void run_vcpu(const Vcpu& vcpu, VcpuContext& ctx) noexcept {
  sigset_t kick;
  sigemptyset(&kick);
  sigaddset(&kick, kick_signal());
  pthread_sigmask(SIG_UNBLOCK, &kick, nullptr);

  kvm_run& run = *vcpu.run_state();
  uint64_t unset = 0;
  ctx.first_run_ns.compare_exchange_strong(unset, monotonic_ns(), std::memory_order_relaxed);
  while (!ctx.exits.stopping()) {
    if (ctx.gate && ctx.gate->closed()) {
      if (!park(vcpu, ctx)) return;
      continue;
    }
    const int err = vcpu.run();
    if (err == EINTR || err == EAGAIN) continue;
    if (err) {
      ctx.exits.report({ExitKind::error, 1,
                        "KVM_RUN failed on vCPU " + std::to_string(vcpu.id()) + ": " + std::strerror(err)});
      return;
    }
    if (auto end = dispatch_exit(vcpu, run, ctx)) {
      ctx.exits.report(std::move(*end));
      return;
    }
  }
}

}  // namespace hyper
