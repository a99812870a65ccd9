// The jail of a container's VMM process, entered in two steps:
//
//  1. fork_into_pid_namespace() + unshare_namespaces(): the VMM is PID 1 of a PID
//     namespace of its own, with its own mount, IPC and UTS namespaces (mounts private,
//     so nothing it mounts reaches the host).
//  2. enter_jail(dir), once the VMM has opened all it needs with the host's view and
//     privileges (/dev/kvm, the tap in the host's network namespace, the kernel, initrd
//     and disks), and before it starts any thread: its root becomes a read-only tmpfs
//     that holds only the container's directory, bind-mounted at its own path (the vsock
//     sockets `exec` and the guest connect to, the state and logs), a network namespace
//     of its own (the tap fd stays attached to the host's), RLIMIT_CORE 0, a bounded
//     RLIMIT_NOFILE, not dumpable, no capabilities in any set (bounding and ambient
//     included, securebits locked so uid 0 gains none back) and no_new_privs.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

#include "vmm/result.hpp"

namespace hyper::runtime {

// The tmpfs that becomes the VMM's root is mounted here (inside the VMM's own mount
// namespace only; on the host it stays an empty directory).
inline constexpr const char* kJailMountPoint = "vmm-root";
// Enough for the VMM's disks, tap, eventfds and a few hundred vsock connections.
inline constexpr rlim_t kVmmMaxFiles = 4096;

// The namespaces the VMM does not share with the host, as /proc/PID/ns names them.
std::vector<std::string> jail_namespaces();

struct RlimitSetting {
  int resource;
  const char* name;
  rlim_t value;  // soft and hard
};
// CORE 0 (a core dump would hold the guest's memory); NOFILE min(kVmmMaxFiles, hard).
std::vector<RlimitSetting> vmm_rlimits(rlim_t nofile_hard);

// The directories to create in `new_root` so that `dir` can be bind-mounted at its own
// path there, outermost first: for /r and /a/b, {/r/a, /r/a/b}.
std::vector<std::filesystem::path> mount_point_chain(const std::filesystem::path& new_root,
                                                     const std::filesystem::path& dir);

// Closes every directory fd the process holds (an inherited one included): openat(fd,
// "..") from one would lead out of the jail. The VMM needs none once its machine exists.
Status close_directory_fds();

// fork(2) with the child as PID 1 of a new PID namespace: 0 in the child, its pid (as
// the host sees it) in the parent, whose own namespaces stay as they were.
Result<pid_t> fork_into_pid_namespace();
// In that child: new mount, IPC and UTS namespaces, all mounts private.
Status unshare_namespaces();
// Step 2 above; `dir` is absolute. Returns how the root was entered ("pivot_root", or
// "chroot" when the current root is not a mount point and cannot be pivoted).
Result<std::string> enter_jail(const std::filesystem::path& dir);

}  // namespace hyper::runtime
