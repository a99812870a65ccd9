// One cgroup v2 group per running container, holding its VMM process: memory.max bounds
// the guest's RAM plus what the VMM itself needs, cpu.max the CPU time to --cpus CPUs.
//
//   <root>/<container id>   root: $HYPER_CGROUP_ROOT, else /sys/fs/cgroup/hyper
//
// The root and the controllers it needs are set up on first use: "+cpu +memory" go into
// cgroup.subtree_control of every group from the hierarchy's top down to the root. A host
// where that cannot be done (cgroup v1, a read-only or delegated hierarchy, a controller
// bound elsewhere) still runs containers, without the limits; the error says why.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include "vmm/result.hpp"

namespace hyper::runtime {

// What the VMM needs besides guest RAM: its heap, thread stacks, device buffers, and the
// kernel's KVM and page-table memory charged to the group (about 1/512 of guest RAM for
// 4 KiB pages; 1/64 leaves room for shadow paging).
inline constexpr uint64_t kVmmOverheadMib = 64;
inline constexpr uint64_t kVmmOverheadDivisor = 64;
inline constexpr uint64_t kCpuPeriodUs = 100'000;
inline constexpr const char* kDefaultCgroupRoot = "/sys/fs/cgroup/hyper";

struct CgroupLimits {
  uint64_t memory_max = 0;  // bytes
  uint64_t cpu_quota_us = 0;
  uint64_t cpu_period_us = kCpuPeriodUs;
};

CgroupLimits cgroup_limits(uint32_t cpus, uint64_t memory_mib);
std::string memory_max_text(const CgroupLimits& limits);  // "335544320"
std::string cpu_max_text(const CgroupLimits& limits);     // "100000 100000"

// $HYPER_CGROUP_ROOT when set (it must be absolute), else the default.
Result<std::filesystem::path> cgroup_root();
// <root>/<id>; the id must be a container id (hex), so nothing lands outside the root.
Result<std::filesystem::path> container_cgroup_path(const std::filesystem::path& root, const std::string& id);

// Whether `root` (or, while it does not exist yet, its nearest existing parent) is on a
// cgroup v2 file system.
Status check_cgroup2(const std::filesystem::path& root);

// Creates <root>/<id> with the limits, enabling the controllers on the way. The group
// may already exist (a start after a monitor that was killed): its values are rewritten.
Result<std::filesystem::path> create_container_cgroup(const std::filesystem::path& root, const std::string& id,
                                                      const CgroupLimits& limits);
Status move_to_cgroup(const std::filesystem::path& group, pid_t pid);
// Removes the group once its processes are gone (a process that just exited leaves it a
// moment later); a group that does not exist is no error.
Status remove_cgroup(const std::filesystem::path& group);

}  // namespace hyper::runtime
