// The machine builder and its run loop: one explicit place that allocates guest memory,
// creates every device, puts it on a bus, loads the kernel and starts the vCPUs.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "virtio/blk.hpp"
#include "virtio/fs.hpp"
#include "virtio/net.hpp"
#include "virtio/vsock.hpp"
#include "vmm/result.hpp"
#include "vmm/vm_exit.hpp"

namespace hyper {

// Kernel arguments every guest of this machine needs: the console on COM1, reboot through
// the i8042 (the only reset line we emulate), and a panic that resets at once so the VMM
// can report it instead of hanging.
inline constexpr const char* kBaseCmdline = "console=ttyS0 8250.nr_uarts=1 reboot=k panic=-1";

struct MachineConfig {
  std::string kernel;
  std::optional<std::string> initrd;
  std::string extra_cmdline;  // appended to kBaseCmdline
  uint32_t vcpus = 1;
  uint64_t memory_mib = 128;
  bool hugepages = false;
  bool rng = false;  // a virtio-rng device
  std::vector<virtio::BlkOptions> disks;  // virtio-blk devices: /dev/vda, /dev/vdb, ... in order
  std::vector<virtio::NetOptions> nets;   // virtio-net devices: eth0, eth1, ... in order
  std::optional<virtio::VsockOptions> vsock;  // a virtio-vsock device
  // virtio-fs devices, each served by a running vhost-user back-end (virtiofsd) that is
  // connected to in create(); with any, guest RAM is shared memory the back-ends map.
  std::vector<virtio::FsOptions> filesystems;
  int console_fd = STDOUT_FILENO;  // not owned; -1 discards the console
  bool handle_signals = true;      // SIGINT/SIGTERM/SIGHUP stop the VM (a CLI wants this)
  uint64_t start_ns = 0;           // the "exec" timestamp timings are relative to
  // Each VMM thread confines itself with its own seccomp allow-list (vmm/seccomp.hpp,
  // docs/security.md); a forbidden system call ends the process with status 159.
  bool seccomp = true;
  int seccomp_report_fd = -1;  // not owned; gets a violation's message too (e.g. a file)
  std::function<void(const std::string&)> log = [](const std::string&) {};

  // Snapshots (docs/snapshots.md). With `snapshots`, Machine::snapshot() can save the
  // running machine (its event-loop thread's seccomp filter then also allows creating
  // and writing the file and reading KVM's state). With `snapshot_path` too, SIGUSR2
  // saves it there (handle_signals), and with `stop_after_snapshot` the VM then stops.
  bool snapshots = false;
  std::string snapshot_path;
  bool stop_after_snapshot = false;
  // A snapshot to resume instead of booting `kernel`: memory size and vCPU count come
  // from it, and the devices given must be the ones it was taken with, in order (their
  // backing files, taps and sockets may differ).
  std::string restore_from;
};

struct BootTimings {
  uint64_t start_ns = 0;
  uint64_t first_kvm_run_ns = 0;
  uint64_t boot_timer_ns = 0;  // 0 when the guest never wrote the boot-timer port
  uint64_t exit_ns = 0;
};

struct RunResult {
  VmExit exit;
  BootTimings timings;
  std::string console_tail;
};

class Machine {
 public:
  static Result<std::unique_ptr<Machine>> create(MachineConfig config);
  ~Machine();
  Machine(const Machine&) = delete;
  Machine& operator=(const Machine&) = delete;

  // Runs the guest to its end. Call once.
  [[nodiscard]] Result<RunResult> run();
  // Thread-safe: ends the VM as if by `exit`.
  void stop(VmExit exit);
  // Thread-safe, while run() runs (MachineConfig::snapshots): pauses the VM, saves it to
  // `path` (replaced atomically), resumes it.
  [[nodiscard]] Status snapshot(const std::string& path);
  [[nodiscard]] const std::string& cmdline() const;
  // Thread-safe, never blocks on a busy device: each virtio device's transport registers
  // and queue indices (ours and the driver's), one device per line. With handle_signals,
  // SIGUSR1 logs it.
  [[nodiscard]] std::string describe_devices() const;

  struct Impl;

 private:
  explicit Machine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace hyper
