// seccomp-bpf confinement of the VMM's threads. Each kind of thread (vCPU, event loop,
// disk I/O) gets its own allow-list, applied to that thread alone once it is set up and
// before it serves the guest, so a guest that subverts device code on one thread can make
// only the system calls that thread needs. docs/security.md gives each list's reasons.
#pragma once

#include <linux/filter.h>
#include <signal.h>

#include <cstddef>
#include <vector>

#include "vmm/result.hpp"

namespace hyper::seccomp {

enum class ThreadKind { vcpu, event_loop, io };
const char* kind_name(ThreadKind kind);

// A forbidden system call ends the whole process with this status (128 + SIGSYS), after
// "hyper-vmm: seccomp: thread NAME made a forbidden system call NR (SYSCALL)" on stderr.
inline constexpr int kViolationStatus = 128 + SIGSYS;

// What a machine's devices add to the lists, fd by fd.
struct Grants {
  // vhost-user back-ends' sockets (virtio-fs): a driver's status write, handled on the
  // vCPU that made it, sets up or stops the back-end's rings over one, so vCPU threads
  // may sendmsg, recvmsg and shutdown on exactly these fds.
  std::vector<int> vhost_user_sockets;
  // NBD disks' connections (virtio-blk on nbd://): I/O threads may send, receive and
  // shut down on exactly these fds, and poll.
  std::vector<int> disk_sockets;
  // Snapshots (MachineConfig::snapshots): the event-loop thread, which takes them, may
  // read the vCPUs' and the VM's state from KVM and create, write and rename the file.
  bool snapshots = false;
};

// A compiled allow-list: built once, applied by every thread of its kind.
class Filter {
 public:
  // Also installs the process's SIGSYS reporter (idempotent). `report_fd`, when not -1,
  // gets the violation message too (not owned; it must stay open).
  static Result<Filter> compile(ThreadKind kind, int report_fd = -1, const Grants& grants = {});

  // Confines the calling thread, and threads it creates later, for good. No TSYNC: the
  // process's other threads keep their own filters. `name` (at most 23 bytes are kept)
  // names the thread in a violation message.
  [[nodiscard]] Status apply(const char* name) const;

  ThreadKind kind() const { return kind_; }
  size_t instructions() const { return program_.size(); }

 private:
  Filter(ThreadKind kind, std::vector<sock_filter> program) : kind_(kind), program_(std::move(program)) {}
  ThreadKind kind_;
  std::vector<sock_filter> program_;
};

// The system calls (numbers) `kind` may make, some only with restricted arguments.
std::vector<int> allowed_syscalls(ThreadKind kind, const Grants& grants = {});

}  // namespace hyper::seccomp
