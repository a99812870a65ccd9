// Containers on disk, one directory each, so the CLI needs no daemon and nothing is lost
// when a process dies:
//
//   containers/<id>/config.json   what to run (written once, at create)
//   containers/<id>/state.json    status, monitor pid, exit code, times (replaced atomically)
//   containers/<id>/container.log the process's output (runtime/log_file.hpp)
//   containers/<id>/console.log   the guest's serial console
//   containers/<id>/rw.ext4       the writable layer (absent for --rm containers)
//   containers/<id>/vsock.sock    the VMM's vsock socket while it runs
//   containers/<id>/vmm-root/     empty; the VMM's own mount namespace mounts its root here
//   containers/<id>/vm.lock       flock'ed by the one process with a VM on the container's
//                                 disks: its monitor, or a commit of the stopped container
//   containers/names/<name>       a symlink to the id, created with O_EXCL semantics so two
//                                 `run --name` cannot take the same name
//
// A running container is one monitor process (with its VMM as its child); its pid and
// start time (from /proc/PID/stat) are in the state, so a monitor that died (even by
// SIGKILL) is noticed by the next reader, which marks the container exited (137),
// nothing more.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "runtime/file_lock.hpp"
#include "runtime/network/network_config.hpp"
#include "runtime/volume/mount_spec.hpp"
#include "vmm/result.hpp"

namespace hyper::runtime {

// The container's writable layer, an ext4 scratch disk in its directory.
inline constexpr const char* kScratchDiskName = "rw.ext4";
// Where the VMM's seccomp reporter writes a violation before the monitor dies with it.
inline constexpr const char* kSeccompViolationFile = "seccomp-violation.log";

// An interface on a tap the caller made, until networks and published ports arrive.
struct TapNetwork {
  std::string tap;      // the host's tap device
  std::string address;  // "10.0.2.15/24", the container's eth0
  std::string gateway;  // optional default route
  std::string mac;      // optional; random otherwise
  std::vector<std::string> dns;
};

// A host directory as the container's root instead of an image (an OCI bundle's root,
// hyper-runtime): the VM mounts it through virtio-fs, and no image or scratch disk is made.
struct HostRootfs {
  std::string path;  // absolute
  bool read_only = false;
};

struct ContainerConfig {
  std::string image;     // as the user named it; empty with host_rootfs
  std::string image_id;  // sha256:...
  std::vector<std::string> entrypoint, cmd, env;
  std::string working_dir, user, hostname, stop_signal;
  bool tty = false, open_stdin = false, auto_remove = false;
  uint32_t cpus = 1;
  uint64_t memory_mib = 256;
  std::optional<TapNetwork> network;  // --tap: an existing tap, instead of `net`
  net::NetworkConfig net;
  std::vector<volume::Mount> mounts;  // -v, --mount, --tmpfs, in the order given
  bool seccomp = true;  // false: --security-opt seccomp=unconfined
  bool from_template = false;  // --template: restore a VM template instead of booting (runtime/template/)
  std::optional<HostRootfs> host_rootfs;
  // The main process's supplementary groups exactly (an OCI process's additionalGids);
  // absent: the user's memberships in the image's /etc/group, as Docker does.
  std::optional<std::vector<uint32_t>> groups;
  // Resource limits for the main process, by the agent's names ("nofile"); empty: Docker's.
  struct Rlimit {
    std::string type;
    uint64_t soft = 0, hard = 0;
  };
  std::vector<Rlimit> rlimits;
};

// The agent protocol's (and the store's) rlimits list: [{"type", "soft", "hard"}...].
nlohmann::json rlimits_json(const std::vector<ContainerConfig::Rlimit>& rlimits);

// How long a --rm container's monitor waits for its exit's watchers before removing it.
inline constexpr int kWatchGraceMs = 5000;

enum class ContainerStatus { created, running, exited };
const char* status_name(ContainerStatus status);

// How the monitor confined the VMM of the container's current (or last) run
// (runtime/jail/jail.hpp, runtime/jail/cgroup.hpp); `hyper inspect` shows it as "Jail".
struct JailState {
  std::vector<std::string> namespaces;  // empty: the VMM shares the host's
  std::string root;                     // how its root was entered: "pivot_root", "chroot"
  std::string error;                    // why the VMM is not jailed
  std::string cgroup;                   // its cgroup v2 group
  std::string memory_max, cpu_max;      // the values written there (or that would have been)
  bool limits_enforced = false;
  std::string limits_error;             // why they are not
};

struct ContainerState {
  ContainerStatus status = ContainerStatus::created;
  pid_t pid = 0;                 // the monitor process while running
  uint64_t pid_start_ticks = 0;  // its start time, so a reused pid is not mistaken for it
  pid_t vmm_pid = 0;             // its VMM process (the monitor's child, in the jail)
  int exit_code = 0;
  std::string error;
  std::string started_at, finished_at;  // RFC 3339, empty when never
  std::optional<JailState> jail;        // absent before the first start
  std::optional<net::EndpointState> endpoint;  // its address and host ports, while on a network
};

struct Container {
  std::string id;  // 64 hex digits
  std::string name;
  std::string created;  // RFC 3339
  std::filesystem::path dir;
  ContainerConfig config;
  ContainerState state;
};

class ContainerStore {
 public:
  static Result<ContainerStore> open(const std::filesystem::path& dir);

  // A new container in state "created"; a name that is taken or not [a-zA-Z0-9][a-zA-Z0-9_.-]+ is refused.
  Result<Container> create(const ContainerConfig& config, const std::optional<std::string>& name);
  // By name, full id or unique id prefix. Reconciles: a running container whose monitor
  // is gone is recorded as exited with status 137.
  [[nodiscard]] Result<Container> find(const std::string& reference) const;
  [[nodiscard]] Result<std::vector<Container>> list() const;  // newest first, reconciled
  // Reads, changes and atomically replaces state.json under the container's lock.
  Status update_state(const Container& container, const std::function<void(ContainerState&)>& change) const;
  // The right to boot a VM on the container's disks, held while the FileLock lives; none
  // (without waiting) while another process holds it. The monitor holds it for the whole
  // run, until just before it records the exit; a commit of a stopped container while it
  // reads the scratch disk. So two VMs never share a scratch disk.
  [[nodiscard]] Result<std::optional<FileLock>> claim_vm(const Container& container) const;
  // Held (shared) by whoever watches a run to its end (hyperd's wait and attach), so that
  // the monitor of a --rm container, which takes it exclusively before it removes the
  // container (waiting at most `kWatchGraceMs`), removes nothing its watchers have not
  // seen exit. Fails once the container is gone.
  [[nodiscard]] Result<FileLock> watch_exit(const Container& container) const;
  // The monitor's side: true once no watcher holds the lock (or the grace time is over).
  [[nodiscard]] std::optional<FileLock> wait_for_watchers(const Container& container) const;
  // Deletes the directory and the name; the caller has made sure it is not running.
  Status remove(const Container& container) const;
  // Undoes on the host what a monitor killed with SIGKILL could not: its cgroup, and its
  // network's rules and lease (`removed`: the container is going away for good).
  void release_killed_monitor_leftovers(const Container& container, bool removed) const;

 private:
  explicit ContainerStore(std::filesystem::path dir) : dir_(std::move(dir)) {}
  [[nodiscard]] Result<Container> load(const std::string& id) const;
  std::filesystem::path dir_;
};

// The start time of a process in clock ticks since boot (/proc/PID/stat field 22).
Result<uint64_t> process_start_ticks(pid_t pid);
// Docker's rule for container, network and volume names, so names that work there work
// here: [a-zA-Z0-9][a-zA-Z0-9_.-]+
bool valid_name(const std::string& name);
// Whether process `pid` still runs and is the one that started at `start_ticks` (0: any).
bool process_alive(pid_t pid, uint64_t start_ticks);
// Whether the state's monitor process is still the one that was recorded.
bool monitor_alive(const ContainerState& state);
// Now, as "2026-11-25T13:46:32.123456789Z".
std::string now_rfc3339();

}  // namespace hyper::runtime
