// The C ABI's structs and codes as the VMM's C++ types and back. Kept apart from the entry
// points so the unit tests can check every rule without a /dev/kvm.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "capi/hyper_vmm.h"
#include "vmm/machine.hpp"
#include "vmm/result.hpp"
#include "vmm/vm_exit.hpp"

namespace hyper::capi {

// A failed call as the C caller sees it: a HYPER_VMM_ERR_* code and a message.
struct Failure {
  int code;
  std::string message;
};

// The version-1 sizes: what a caller built against ABI 1 passes in struct_size. A later
// ABI that appends fields keeps accepting these.
inline constexpr size_t kConfigSizeV1 = 88;
inline constexpr size_t kExitSizeV1 = 32;
inline constexpr size_t kTimingsSizeV1 = 40;

// True when `size` is a struct_size some ABI version up to this library's declared.
[[nodiscard]] bool known_struct_size(uint32_t size, size_t oldest, size_t newest) noexcept;

// The config as the VMM's, with the C defaults applied (0 vCPUs: 1, 0 MiB: 128, ...).
// Checks what the C form adds (NULL strings, flags, reserved fields); the machine's own
// checks (ranges, files) stay Machine::create's. `config` is complete: its struct_size
// has been checked and a shorter caller's struct extended with zeros.
[[nodiscard]] Result<MachineConfig> to_machine_config(const hyper_vmm_config& config);

// The C code for an error category.
[[nodiscard]] int error_code(Errc code) noexcept;
// A machine error as the C caller sees it; messages that name the CLI's flags name the
// C fields instead.
[[nodiscard]] Failure to_failure(const Error& error);

[[nodiscard]] int exit_reason(ExitKind kind) noexcept;

// What hyper_vmm_stop() reports: the status the hyper-vmm command exits with when it is
// stopped by SIGTERM, so a wrapper that mirrors it needs no special case.
inline constexpr int kStoppedStatus = 128 + 15;

}  // namespace hyper::capi
