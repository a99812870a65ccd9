// The guest init's thin layer over the kernel: mounts, files written inside the
// container's root, the paravirtual ports and power-off. PID 1 cannot afford a failure
// that kills it, so everything returns a Status.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "guest-init/vmm_registers.hpp"
#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::guest {

// CLOCK_MONOTONIC in nanoseconds; the guest's own time base for the timings it reports.
uint64_t monotonic_ns();

// Waits (up to 2 s) until block device `path` has a size: a VM restored from a template
// learns its disks' sizes from a configuration-change interrupt, handled by a kernel
// worker that may not have run yet when the start request arrives.
Status wait_for_disk(const std::string& path);

// The boot connection: to the host (CID 2) on agent::kBootPort, retried for a second.
Result<UniqueFd> connect_to_host();

Status mount_fs(const char* source, const char* target, const char* type, unsigned long flags,
                const std::string& data = {});
// Creates the directory and its missing parents (0755).
Status make_dirs(const std::string& path, mode_t mode = 0755);

// Opens (O_PATH) a directory inside `root_fd`, resolving like a chroot would, so that an
// image's symlinks cannot lead the init outside the container's root.
Result<UniqueFd> open_in_root(int root_fd, const std::string& path, int flags, mode_t mode = 0);
// Creates or replaces `path` (relative to the root) with `content`, resolved in the root.
Status write_in_root(int root_fd, const std::string& path, std::string_view content, mode_t mode = 0644);
// mkdir -p inside the root; returns an O_PATH fd to the directory.
Result<UniqueFd> make_dirs_in_root(int root_fd, const std::string& path, mode_t mode = 0755);
// A file to mount on: its parents are made; a missing file is created empty, one that is
// there is left unchanged (so a read-only root that has it needs no write). O_PATH fd.
Result<UniqueFd> make_file_in_root(int root_fd, const std::string& path);

Result<std::string> read_small_file(const char* path, size_t limit = 1 << 20);

// The exit and boot-timer ports of our VMM (vmm/layout.hpp); without them (another VMM)
// power-off falls back to reboot(2).
// The VMM's registers for the whole init; copies share them.
class Ports {
 public:
  Ports();
  void mark_boot_done() const;
  [[noreturn]] void power_off(int status) const;

 private:
  std::shared_ptr<const VmmRegisters> registers_;
};

}  // namespace hyper::guest
