// The virtio-fs backend of one host directory: Debian's virtiofsd (qemu-system-common),
// started by the container's VMM process before the VM boots, on a listening socket in the
// container's directory that the VMM's vhost-user frontend then connects to. The daemon
// serves one connection and exits when the VM closes it; it is the VMM's child, in its PID
// namespace, so a killed VMM takes it along.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <utility>

#include "vmm/result.hpp"

namespace hyper::runtime::volume {

inline constexpr const char* kVirtiofsd = "/usr/lib/qemu/virtiofsd";

struct ShareSpec {
  std::filesystem::path source;  // the host directory
  bool read_only = false;        // enforced on the host: the daemon sees a read-only bind mount
  std::filesystem::path socket;  // where it listens; created here
  std::filesystem::path log;     // its stderr
};

class VirtiofsDaemon {
 public:
  static Result<VirtiofsDaemon> start(const ShareSpec& spec);
  ~VirtiofsDaemon();
  VirtiofsDaemon(VirtiofsDaemon&& other) noexcept : pid_(std::exchange(other.pid_, -1)) {}
  VirtiofsDaemon& operator=(VirtiofsDaemon&&) = delete;
  VirtiofsDaemon(const VirtiofsDaemon&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }

 private:
  explicit VirtiofsDaemon(pid_t pid) : pid_(pid) {}
  pid_t pid_;
};

// Refuses what virtio-fs cannot share: a missing path, a file (virtio-fs shares
// directories), a daemon that is not installed.
Status check_share_source(const std::filesystem::path& source);

}  // namespace hyper::runtime::volume
