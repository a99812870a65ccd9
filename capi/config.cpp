#include "capi/config.hpp"

#include <unistd.h>

#include <array>
#include <cstddef>
#include <functional>
#include <string_view>
#include <utility>

#include "virtio/block_backend.hpp"

namespace hyper::capi {
namespace {

constexpr uint32_t kKnownFlags = HYPER_VMM_RNG | HYPER_VMM_NO_SECCOMP | HYPER_VMM_HUGEPAGES;
constexpr uint32_t kDefaultVcpus = 1;
constexpr uint64_t kDefaultMemoryMib = 128;

// The layout is the ABI: a field moved or resized here would silently break every caller
// built against the version-1 header.
static_assert(sizeof(hyper_vmm_config) == kConfigSizeV1);
static_assert(offsetof(hyper_vmm_config, start_ns) == 80);
static_assert(sizeof(hyper_vmm_exit) == kExitSizeV1);
static_assert(offsetof(hyper_vmm_exit, console_tail) == 24);
static_assert(sizeof(struct hyper_vmm_boot_timings) == kTimingsSizeV1);
static_assert(sizeof(hyper_vmm_disk) == 16);

Error invalid(std::string message) { return make_error(Errc::invalid_argument, std::move(message)); }

Result<virtio::BlkOptions> to_disk(const hyper_vmm_disk& disk, uint32_t index) {
  const std::string which = "disks[" + std::to_string(index) + "]";
  if (!disk.path || !*disk.path) return invalid(which + ".path is NULL or empty");
  if (disk.reserved != 0) return invalid(which + ".reserved must be 0");
  virtio::BlkOptions options;
  options.path = disk.path;
  options.read_only = disk.read_only != 0;
  // Anything else with a scheme would only fail later as a missing file, which misleads.
  if (options.path.find("://") != std::string::npos && !virtio::is_nbd_uri(options.path))
    return invalid(which + ".path " + options.path +
                   " is neither a raw image path nor nbd://HOST[:PORT][/EXPORT] or nbd+unix:///EXPORT?socket=PATH");
  return options;
}

Status add_disks(const hyper_vmm_config& config, MachineConfig& machine) {
  if (config.disk_count > 0 && !config.disks) return invalid("disks is NULL but disk_count is " + std::to_string(config.disk_count));
  for (uint32_t i = 0; i < config.disk_count; ++i) machine.disks.push_back(HYPER_TRY(to_disk(config.disks[i], i)));
  return {};
}

Status add_vsock(const hyper_vmm_config& config, MachineConfig& machine) {
  const bool has_socket = config.vsock_socket && *config.vsock_socket;
  if (config.vsock_cid == 0) {
    if (has_socket) return invalid("vsock_socket is set but vsock_cid is 0 (give the guest a CID of 3 or more)");
    return {};
  }
  if (!has_socket) return invalid("vsock_cid is set but vsock_socket is NULL or empty");
  machine.vsock = virtio::VsockOptions{.guest_cid = config.vsock_cid, .socket_path = config.vsock_socket};
  return {};
}

// Log lines go out whole, one write(2) each, so lines of several VMs sharing an fd never
// interleave mid-line. The VMM's threads call this, under seccomp: write(2) is all it may do.
std::function<void(const std::string&)> fd_logger(int fd) {
  if (fd <= 0) return [](const std::string&) {};
  return [fd](const std::string& line) {
    const std::string text = "hyper-vmm: " + line + "\n";
    (void)!::write(fd, text.data(), text.size());
  };
}

}  // namespace

bool known_struct_size(uint32_t size, size_t oldest, size_t newest) noexcept { return size >= oldest && size <= newest; }

Result<MachineConfig> to_machine_config(const hyper_vmm_config& config) {
  if (config.flags & ~kKnownFlags)
    return invalid("flags has unknown bits " + to_hex(config.flags & ~kKnownFlags) + " (a newer header's flags?)");
  if (!config.kernel || !*config.kernel) return invalid("kernel is NULL or empty: a kernel image is required");
  MachineConfig machine;
  machine.kernel = config.kernel;
  if (config.initrd && *config.initrd) machine.initrd = config.initrd;
  if (config.cmdline) machine.extra_cmdline = config.cmdline;
  machine.vcpus = config.vcpus ? config.vcpus : kDefaultVcpus;
  machine.memory_mib = config.memory_mib ? config.memory_mib : kDefaultMemoryMib;
  machine.hugepages = (config.flags & HYPER_VMM_HUGEPAGES) != 0;
  machine.rng = (config.flags & HYPER_VMM_RNG) != 0;
  machine.seccomp = (config.flags & HYPER_VMM_NO_SECCOMP) == 0;
  machine.console_fd = config.console_fd < 0 ? -1 : config.console_fd;
  machine.log = fd_logger(config.log_fd);
  // The embedding program owns its signals: a library must never take SIGINT or SIGTERM.
  machine.handle_signals = false;
  machine.start_ns = config.start_ns;
  HYPER_CHECK(add_disks(config, machine));
  HYPER_CHECK(add_vsock(config, machine));
  return machine;
}

int error_code(Errc code) noexcept {
  switch (code) {
    case Errc::invalid_argument: return HYPER_VMM_ERR_INVALID_ARGUMENT;
    case Errc::io: return HYPER_VMM_ERR_IO;
    case Errc::not_found: return HYPER_VMM_ERR_NOT_FOUND;
    case Errc::permission_denied: return HYPER_VMM_ERR_PERMISSION;
    case Errc::unsupported: return HYPER_VMM_ERR_UNSUPPORTED;
    case Errc::bad_image: return HYPER_VMM_ERR_BAD_IMAGE;
    case Errc::out_of_bounds: return HYPER_VMM_ERR_OUT_OF_BOUNDS;
    case Errc::kvm: return HYPER_VMM_ERR_KVM;
  }
  return HYPER_VMM_ERR_INTERNAL;
}

Failure to_failure(const Error& error) {
  // Machine::create words its range checks for the hyper-vmm command's flags.
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 2> kFlagToField{{
      {"--cpus ", "vcpus "},
      {"--memory ", "memory_mib "},
  }};
  std::string message = error.message;
  for (const auto& [flag, field] : kFlagToField) {
    if (message.starts_with(flag)) message.replace(0, flag.size(), field);
  }
  return {error_code(error.code), std::move(message)};
}

int exit_reason(ExitKind kind) noexcept {
  switch (kind) {
    case ExitKind::guest_exit: return HYPER_VMM_EXIT_GUEST_EXIT;
    case ExitKind::reset: return HYPER_VMM_EXIT_RESET;
    case ExitKind::power_off: return HYPER_VMM_EXIT_POWER_OFF;
    case ExitKind::triple_fault: return HYPER_VMM_EXIT_TRIPLE_FAULT;
    case ExitKind::panic: return HYPER_VMM_EXIT_PANIC;
    case ExitKind::crash: return HYPER_VMM_EXIT_CRASH;
    case ExitKind::error: return HYPER_VMM_EXIT_ERROR;
    // handle_signals is off: only hyper_vmm_stop() reports this kind.
    case ExitKind::signal:
    case ExitKind::snapshot: return HYPER_VMM_EXIT_STOPPED;
  }
  return HYPER_VMM_EXIT_ERROR;
}

}  // namespace hyper::capi
