// The C ABI's entry points over hyper::Machine. Each one catches everything: a C caller
// cannot unwind a C++ exception, so every failure becomes a code and a message.
#include "capi/hyper_vmm.h"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "capi/config.hpp"
#include "vmm/clock.hpp"
#include "vmm/machine.hpp"

using hyper::capi::Failure;

struct hyper_vmm {
  std::unique_ptr<hyper::Machine> machine;
  std::atomic<bool> started{false};  // run is once per machine
  mutable std::mutex mutex;          // guards `result` against a concurrent hyper_vmm_timings
  std::optional<hyper::RunResult> result;
};

namespace {

thread_local std::string t_last_error;

int record(Failure failure) noexcept {
  t_last_error = std::move(failure.message);  // a move: cannot throw
  return failure.code;
}

// For the catch handlers: building the message may itself run out of memory.
int record(int code, const char* function, const char* what) noexcept {
  try {
    t_last_error = std::string(function) + ": " + what;
  } catch (...) {
    t_last_error.clear();
  }
  return code;
}

template <class Body>
int guarded(const char* function, Body&& body) noexcept {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return record(HYPER_VMM_ERR_NO_MEMORY, function, "out of memory");
  } catch (const std::exception& e) {
    return record(HYPER_VMM_ERR_INTERNAL, function, e.what());
  } catch (...) {
    return record(HYPER_VMM_ERR_INTERNAL, function, "an unknown C++ exception");
  }
}

int invalid(std::string message) { return record({HYPER_VMM_ERR_INVALID_ARGUMENT, std::move(message)}); }

int abi_mismatch(const char* type, uint32_t size, size_t oldest, size_t newest) {
  return record({HYPER_VMM_ERR_ABI, std::string("struct ") + type + ": struct_size " + std::to_string(size) +
                                        " is none this library (ABI " + std::to_string(HYPER_VMM_ABI_VERSION) +
                                        ") knows: " + std::to_string(oldest) + " to " + std::to_string(newest) +
                                        " (set it to sizeof the struct)"});
}

// The caller's struct, however old, as this library's: the fields it does not know are zero.
template <class T>
int read_struct(const T& in, size_t oldest, const char* type, T& full) {
  if (!hyper::capi::known_struct_size(in.struct_size, oldest, sizeof(T)))
    return abi_mismatch(type, in.struct_size, oldest, sizeof(T));
  full = T{};
  std::memcpy(&full, &in, in.struct_size);
  return HYPER_VMM_OK;
}

// Writes `full` into the caller's struct, only as far as its struct_size reaches.
template <class T>
int write_struct(const T& full, size_t oldest, const char* type, T& out) {
  const uint32_t size = out.struct_size;
  if (!hyper::capi::known_struct_size(size, oldest, sizeof(T))) return abi_mismatch(type, size, oldest, sizeof(T));
  std::memcpy(&out, &full, size);
  out.struct_size = size;
  return HYPER_VMM_OK;
}

// Blocks the process's asynchronous signals for the scope. Threads started inside inherit
// the mask: the program's signal handlers then never run on a VMM thread, where seccomp
// would end the process for the first system call a handler makes that the VMM does not,
// and a console reader that goes away costs an EPIPE instead of the program's SIGPIPE.
// The faults a thread raises itself stay deliverable; SIGSYS too, for seccomp's report.
class AsyncSignalsBlocked {
 public:
  AsyncSignalsBlocked() {
    sigset_t set;
    sigfillset(&set);
    for (const int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT}) sigdelset(&set, sig);
    pthread_sigmask(SIG_BLOCK, &set, &previous_);
  }
  ~AsyncSignalsBlocked() { pthread_sigmask(SIG_SETMASK, &previous_, nullptr); }
  AsyncSignalsBlocked(const AsyncSignalsBlocked&) = delete;
  AsyncSignalsBlocked& operator=(const AsyncSignalsBlocked&) = delete;

 private:
  sigset_t previous_;
};

// Machine::run() on a thread of the library's own, joined before returning: run() leaves
// the thread it runs on confined by the event loop's seccomp filter, and the caller's
// thread must stay the caller's. An exception on that thread is rethrown on this one,
// where the entry point's guard turns it into a code.
std::optional<Failure> run_machine(hyper_vmm& vm) {
  std::optional<hyper::Result<hyper::RunResult>> result;
  std::exception_ptr thrown;
  std::thread runner;
  {
    const AsyncSignalsBlocked blocked;
    runner = std::thread([&vm, &result, &thrown]() noexcept {
      try {
        result.emplace(vm.machine->run());
      } catch (...) {
        thrown = std::current_exception();
      }
    });
  }
  runner.join();
  if (thrown) std::rethrow_exception(thrown);
  if (!result->ok()) return hyper::capi::to_failure(result->error());
  const std::lock_guard lock(vm.mutex);
  vm.result = std::move(result->value());
  return std::nullopt;
}

hyper_vmm_exit describe_exit(const hyper::RunResult& result) {
  hyper_vmm_exit info{};
  info.struct_size = sizeof info;
  info.reason = hyper::capi::exit_reason(result.exit.kind);
  info.status = result.exit.status;
  info.detail = result.exit.detail.c_str();
  info.console_tail = result.console_tail.c_str();
  return info;
}

int create(const hyper_vmm_config* config, hyper_vmm** out) {
  // Before anything else, so the timings count the whole of create.
  const uint64_t called_ns = hyper::monotonic_ns();
  if (!out) return invalid("hyper_vmm_create: out is NULL");
  *out = nullptr;
  if (!config) return invalid("hyper_vmm_create: config is NULL");
  hyper_vmm_config full;
  if (const int rc = read_struct(*config, hyper::capi::kConfigSizeV1, "hyper_vmm_config", full)) return rc;
  auto machine_config = hyper::capi::to_machine_config(full);
  if (!machine_config) return invalid(machine_config.error().message);
  if (machine_config->start_ns == 0) machine_config->start_ns = called_ns;
  auto machine = hyper::Machine::create(std::move(machine_config.value()));
  if (!machine) return record(hyper::capi::to_failure(machine.error()));
  auto vm = std::make_unique<hyper_vmm>();
  vm->machine = std::move(machine.value());
  *out = vm.release();
  return HYPER_VMM_OK;
}

int run(hyper_vmm* vm, hyper_vmm_exit* out) {
  if (!vm) return invalid("hyper_vmm_run: vm is NULL");
  // Checked first: a struct the library cannot fill must not cost the caller its one run.
  if (out && !hyper::capi::known_struct_size(out->struct_size, hyper::capi::kExitSizeV1, sizeof *out))
    return abi_mismatch("hyper_vmm_exit", out->struct_size, hyper::capi::kExitSizeV1, sizeof *out);
  if (vm->started.exchange(true)) return record({HYPER_VMM_ERR_STATE, "hyper_vmm_run: this VM has already run"});
  if (auto failure = run_machine(*vm)) return record(std::move(*failure));
  if (!out) return HYPER_VMM_OK;
  return write_struct(describe_exit(*vm->result), hyper::capi::kExitSizeV1, "hyper_vmm_exit", *out);
}

int timings(const hyper_vmm* vm, struct hyper_vmm_boot_timings* out) {
  if (!vm) return invalid("hyper_vmm_timings: vm is NULL");
  if (!out) return invalid("hyper_vmm_timings: out is NULL");
  struct hyper_vmm_boot_timings full{};
  {
    const std::lock_guard lock(vm->mutex);
    if (!vm->result) return record({HYPER_VMM_ERR_STATE, "hyper_vmm_timings: the VM has not finished running"});
    const hyper::BootTimings& t = vm->result->timings;
    full.struct_size = sizeof full;
    full.start_ns = t.start_ns;
    full.first_kvm_run_ns = t.first_kvm_run_ns;
    full.boot_timer_ns = t.boot_timer_ns;
    full.exit_ns = t.exit_ns;
  }
  return write_struct(full, hyper::capi::kTimingsSizeV1, "hyper_vmm_boot_timings", *out);
}

}  // namespace

extern "C" {

int hyper_vmm_create(const hyper_vmm_config* config, hyper_vmm** out) {
  return guarded("hyper_vmm_create", [&]() -> int { return create(config, out); });
}

int hyper_vmm_run(hyper_vmm* vm, hyper_vmm_exit* out) {
  return guarded("hyper_vmm_run", [&]() -> int { return run(vm, out); });
}

int hyper_vmm_stop(hyper_vmm* vm) {
  return guarded("hyper_vmm_stop", [&]() -> int {
    if (!vm) return invalid("hyper_vmm_stop: vm is NULL");
    vm->machine->stop({hyper::ExitKind::signal, hyper::capi::kStoppedStatus, "stopped by hyper_vmm_stop"});
    return HYPER_VMM_OK;
  });
}

int hyper_vmm_timings(const hyper_vmm* vm, struct hyper_vmm_boot_timings* out) {
  return guarded("hyper_vmm_timings", [&]() -> int { return timings(vm, out); });
}

void hyper_vmm_destroy(hyper_vmm* vm) {
  // The machine's destructor closes fds and unmaps memory; none of that throws.
  delete vm;
}

const char* hyper_vmm_strerror(int code) {
  switch (code) {
    case HYPER_VMM_OK: return "success";
    case HYPER_VMM_ERR_INVALID_ARGUMENT: return "invalid argument";
    case HYPER_VMM_ERR_ABI: return "struct size from an unknown ABI version";
    case HYPER_VMM_ERR_STATE: return "not possible in the VM's current state";
    case HYPER_VMM_ERR_NOT_FOUND: return "not found";
    case HYPER_VMM_ERR_PERMISSION: return "permission denied";
    case HYPER_VMM_ERR_IO: return "I/O error";
    case HYPER_VMM_ERR_UNSUPPORTED: return "not supported by this host's KVM";
    case HYPER_VMM_ERR_BAD_IMAGE: return "bad kernel or initrd image";
    case HYPER_VMM_ERR_OUT_OF_BOUNDS: return "does not fit in guest memory";
    case HYPER_VMM_ERR_KVM: return "KVM error";
    case HYPER_VMM_ERR_NO_MEMORY: return "out of memory";
    case HYPER_VMM_ERR_INTERNAL: return "internal error";
    default: return "unknown error code";
  }
}

const char* hyper_vmm_exit_reason_name(int reason) {
  switch (reason) {
    case HYPER_VMM_EXIT_GUEST_EXIT: return "guest exit";
    case HYPER_VMM_EXIT_RESET: return "guest reset";
    case HYPER_VMM_EXIT_POWER_OFF: return "guest power-off";
    case HYPER_VMM_EXIT_TRIPLE_FAULT: return "triple fault";
    case HYPER_VMM_EXIT_PANIC: return "guest kernel panic";
    case HYPER_VMM_EXIT_CRASH: return "guest crash";
    case HYPER_VMM_EXIT_ERROR: return "VMM error";
    case HYPER_VMM_EXIT_STOPPED: return "stopped";
    default: return "unknown exit reason";
  }
}

const char* hyper_vmm_last_error(void) { return t_last_error.c_str(); }

int hyper_vmm_version(void) { return HYPER_VMM_ABI_VERSION; }

}  // extern "C"
