#include "vmm/vm_exit.hpp"

namespace hyper {

const char* exit_kind_name(ExitKind kind) {
  switch (kind) {
    case ExitKind::guest_exit: return "guest exit";
    case ExitKind::reset: return "guest reset";
    case ExitKind::power_off: return "guest power-off";
    case ExitKind::triple_fault: return "triple fault";
    case ExitKind::panic: return "guest kernel panic";
    case ExitKind::crash: return "guest crash";
    case ExitKind::error: return "VMM error";
    case ExitKind::signal: return "signal";
    case ExitKind::snapshot: return "snapshot";
  }
  return "unknown";
}

void ExitLatch::report(VmExit exit) {
  {
    std::lock_guard lock(mutex_);
    if (!exit_) exit_ = std::move(exit);
  }
  stopping_.store(true, std::memory_order_release);
  wakeup_.signal();
}

std::optional<VmExit> ExitLatch::result() const {
  std::lock_guard lock(mutex_);
  return exit_;
}

}  // namespace hyper
