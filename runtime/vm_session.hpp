// One running VM with the guest init: the machine on its own thread, the vsock socket in
// a directory of the caller's choice, and the boot connection the agent opens. The image
// builder and the container monitor both start their VMs this way.
#pragma once

#include <fcntl.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "runtime/agent_client.hpp"
#include "runtime/volume/container_mounts.hpp"
#include "virtio/blk.hpp"
#include "virtio/net.hpp"
#include "vmm/event_fd.hpp"
#include "vmm/machine.hpp"

namespace hyper::runtime {

struct VmSpec {
  std::filesystem::path dir;  // holds the vsock sockets
  // The sockets are named relative to the working directory, which is `dir` now and
  // stays it: a jailed VMM has no /proc to name `dir` through a directory fd.
  bool sockets_in_cwd = false;
  uint32_t cpus = 1;
  uint64_t memory_mib = 256;
  std::vector<virtio::BlkOptions> disks;
  std::vector<virtio::NetOptions> nets;
  std::vector<volume::SharedDirectory> shares;  // virtio-fs devices, each to a running virtiofsd
  int console_fd = -1;  // not owned
  uint64_t start_ns = 0;
  bool seccomp = true;         // MachineConfig::seccomp
  int seccomp_report_fd = -1;  // MachineConfig::seccomp_report_fd
  // Called once the machine has opened everything it needs (KVM, tap, disks, kernel,
  // sockets) and before it starts a thread: where the monitor enters its jail.
  std::function<Status()> before_run = [] { return Status{}; };
  // A template's snapshot to resume instead of booting (runtime/template/): its memory
  // and vCPUs are the template's; the agent reconnects and says "ready" again.
  std::filesystem::path restore_from;
  bool snapshots = false;  // save() may be called (a template being made)
};

// Unlinks the sockets a session in `dir` bound, for a VMM that could not (jailed, it sees
// the directory read-only).
void remove_session_sockets(const std::filesystem::path& dir);

class VmSession {
 public:
  // Boots the VM and waits for the agent's "ready" event.
  static Result<std::unique_ptr<VmSession>> boot(const VmSpec& spec, int ready_timeout_ms);
  ~VmSession();
  VmSession(const VmSession&) = delete;
  VmSession& operator=(const VmSession&) = delete;

  AgentConnection& agent() { return *agent_; }
  // Readable once the VM has stopped.
  [[nodiscard]] int stopped_fd() const { return stopped_.fd(); }
  // Pauses the VM and saves it to `path` (VmSpec::snapshots), then resumes it.
  [[nodiscard]] Status save(const std::filesystem::path& path) { return machine_->snapshot(path.string()); }
  // Waits for the VM to power off; after `timeout_ms` it is stopped.
  Result<RunResult> wait(int timeout_ms);
  void stop();

 private:
  VmSession(EventFd stopped, UniqueFd dir_fd);
  Status start(MachineConfig config, UniqueFd listener, const std::function<Status()>& before_run,
               int ready_timeout_ms);
  [[nodiscard]] int dir_at() const { return dir_fd_.valid() ? dir_fd_.get() : AT_FDCWD; }

  EventFd stopped_;
  UniqueFd dir_fd_;
  std::unique_ptr<Machine> machine_;
  std::thread thread_;
  std::optional<Result<RunResult>> result_;
  std::optional<AgentConnection> agent_;
  Json ready_;
};

}  // namespace hyper::runtime
