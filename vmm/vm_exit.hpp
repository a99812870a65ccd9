// Why a VM stopped, decided once: the first vCPU or device to report an end wins and
// every later report is ignored.
#pragma once

#include <atomic>
#include <mutex>
#include <optional>
#include <string>

#include "vmm/event_fd.hpp"

namespace hyper {

enum class ExitKind {
  guest_exit,    // the guest wrote its status to the exit port
  reset,         // the guest rebooted (i8042 reset, KVM reset event)
  power_off,     // the guest powered off (KVM shutdown event)
  triple_fault,  // KVM_EXIT_SHUTDOWN
  panic,         // the guest kernel panicked (seen on the console before its reset)
  crash,         // KVM reported a guest crash event
  error,         // KVM or the VMM failed; `detail` says how
  signal,        // the VMM was asked to stop by a signal
  snapshot,      // the VMM saved a snapshot and stopped, as asked
};

const char* exit_kind_name(ExitKind kind);

struct VmExit {
  ExitKind kind;
  int status;  // what the VMM process should exit with
  std::string detail;
};

class ExitLatch {
 public:
  explicit ExitLatch(EventFd wakeup) : wakeup_(std::move(wakeup)) {}

  // Records `exit` unless an earlier one was recorded; wakes the waiter either way.
  void report(VmExit exit);
  [[nodiscard]] bool stopping() const { return stopping_.load(std::memory_order_acquire); }
  [[nodiscard]] std::optional<VmExit> result() const;
  [[nodiscard]] int wakeup_fd() const { return wakeup_.fd(); }
  void acknowledge_wakeup() const { (void)wakeup_.drain(); }

 private:
  EventFd wakeup_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mutex_;
  std::optional<VmExit> exit_;
};

}  // namespace hyper
