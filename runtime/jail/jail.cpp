#include "runtime/jail/jail.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <vector>

#include "vmm/unique_fd.hpp"

namespace hyper::runtime {
namespace fs = std::filesystem;
namespace {

constexpr const char* kOldRoot = ".old-root";
constexpr unsigned long kNoExec = MS_NOSUID | MS_NODEV | MS_NOEXEC;

Status sys(int rc, const std::string& what) {
  const int err = errno;
  if (rc != 0) return Error::from_errno("jail: " + what, err);
  return {};
}

Status make_dir(const fs::path& dir, mode_t mode) {
  if (::mkdir(dir.c_str(), mode) == 0 || errno == EEXIST) return {};
  return sys(-1, "create " + dir.string());
}

// Capabilities and securebits are per thread: the jail is entered before the VMM starts
// its vCPU and device threads, which then inherit it.
Status check_single_threaded() {
  DIR* tasks = ::opendir("/proc/self/task");
  if (!tasks) return Error::from_errno("jail: list /proc/self/task");
  int count = 0;
  while (const dirent* entry = ::readdir(tasks)) count += entry->d_name[0] != '.';
  ::closedir(tasks);
  if (count != 1)
    return make_error(Errc::io,
                      "jail: the VMM has " + std::to_string(count) + " threads; it must enter its jail alone");
  return {};
}

}  // namespace

Status close_directory_fds() {
  DIR* fds = ::opendir("/proc/self/fd");
  if (!fds) return Error::from_errno("jail: list /proc/self/fd");
  std::vector<int> open;
  while (const dirent* entry = ::readdir(fds))
    if (entry->d_name[0] != '.') open.push_back(std::atoi(entry->d_name));
  const int own = ::dirfd(fds);
  for (const int fd : open) {
    struct stat st {};
    if (fd != own && ::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) ::close(fd);
  }
  ::closedir(fds);
  return {};
}

namespace {

Result<int> last_capability() {
  UniqueFd fd(::open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Error::from_errno("jail: open /proc/sys/kernel/cap_last_cap");
  char buf[16] = {};
  if (::read(fd.get(), buf, sizeof buf - 1) <= 0) return Error::from_errno("jail: read cap_last_cap");
  return std::atoi(buf);
}

// The new root's mount replaces the old root; the old one is detached, so nothing of the
// host's file system stays reachable (close_directory_fds() went first).
Result<std::string> switch_root(const fs::path& new_root) {
  HYPER_CHECK(make_dir(new_root / kOldRoot, 0700));
  if (::syscall(SYS_pivot_root, new_root.c_str(), (new_root / kOldRoot).c_str()) == 0) {
    HYPER_CHECK(sys(::chdir("/"), "chdir /"));
    HYPER_CHECK(sys(::umount2(kOldRoot, MNT_DETACH), "detach the old root"));
    HYPER_CHECK(sys(::rmdir(kOldRoot), "remove the old root's mount point"));
    return std::string("pivot_root");
  }
  // EINVAL: the current root is not a mount point (an initramfs, a chroot). The new root
  // is moved over it instead; without CAP_SYS_CHROOT (dropped below) it cannot be left.
  if (errno != EINVAL) return Error::from_errno("jail: pivot_root");
  HYPER_CHECK(sys(::rmdir((new_root / kOldRoot).c_str()), "remove the old root's mount point"));
  HYPER_CHECK(sys(::chdir(new_root.c_str()), "chdir to the new root"));
  HYPER_CHECK(sys(::mount(".", "/", nullptr, MS_MOVE, nullptr), "move the new root over /"));
  HYPER_CHECK(sys(::chroot("."), "chroot"));
  HYPER_CHECK(sys(::chdir("/"), "chdir /"));
  return std::string("chroot");
}

Status build_root(const fs::path& dir) {
  const fs::path root = dir / kJailMountPoint;
  HYPER_CHECK(make_dir(root, 0700));
  HYPER_CHECK(sys(::mount("hyper-vmm", root.c_str(), "tmpfs", kNoExec, "mode=0755,size=64k,nr_inodes=256"),
                  "mount a tmpfs on " + root.string()));
  for (const auto& component : mount_point_chain(root, dir)) HYPER_CHECK(make_dir(component, 0755));
  const fs::path target = root / dir.relative_path();
  // Not MS_REC: the tmpfs on dir/vmm-root stays out of the new root.
  HYPER_CHECK(sys(::mount(dir.c_str(), target.c_str(), nullptr, MS_BIND, nullptr), "bind " + dir.string()));
  // Read-only: the VMM connects to sockets there (which a read-only mount allows) and
  // writes only through the fds it opened before; the state stays the monitor's to write.
  return sys(::mount(nullptr, target.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | kNoExec, nullptr),
             "remount " + dir.string() + " read-only");
}

Status set_rlimits() {
  rlimit nofile{};
  HYPER_CHECK(sys(::getrlimit(RLIMIT_NOFILE, &nofile), "getrlimit"));
  for (const auto& setting : vmm_rlimits(nofile.rlim_max)) {
    const rlimit value{setting.value, setting.value};
    HYPER_CHECK(sys(::setrlimit(setting.resource, &value), std::string("setrlimit ") + setting.name));
  }
  return {};
}

// Every set empty: effective, permitted, inheritable, ambient and bounding. uid 0 would
// regain the full set at an execve; the locked securebits keep it from that.
Status drop_capabilities(int last_cap) {
  constexpr unsigned long kSecureBits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                                        SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
                                        SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
  HYPER_CHECK(sys(::prctl(PR_SET_SECUREBITS, kSecureBits, 0, 0, 0), "lock the securebits"));
  HYPER_CHECK(sys(::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear the ambient capabilities"));
  for (int cap = 0; cap <= last_cap; ++cap)
    HYPER_CHECK(sys(::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "drop capability " + std::to_string(cap)));
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  HYPER_CHECK(sys(static_cast<int>(::syscall(SYS_capset, &header, data)), "capset"));
  HYPER_CHECK(sys(static_cast<int>(::syscall(SYS_capget, &header, data)), "capget"));
  for (const auto& set : data) {
    if (set.effective || set.permitted || set.inheritable)
      return make_error(Errc::io, "jail: capabilities remain after capset");
  }
  return {};
}

}  // namespace

std::vector<std::string> jail_namespaces() { return {"mnt", "pid", "ipc", "uts", "net"}; }

std::vector<RlimitSetting> vmm_rlimits(rlim_t nofile_hard) {
  return {{RLIMIT_CORE, "core", 0}, {RLIMIT_NOFILE, "nofile", std::min(kVmmMaxFiles, nofile_hard)}};
}

std::vector<fs::path> mount_point_chain(const fs::path& new_root, const fs::path& dir) {
  std::vector<fs::path> chain;
  fs::path at = new_root;
  for (const auto& part : dir.relative_path()) {
    if (part.empty()) continue;
    at /= part;
    chain.push_back(at);
  }
  return chain;
}

Result<pid_t> fork_into_pid_namespace() {
  UniqueFd own(::open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC));
  if (!own.valid()) return Error::from_errno("jail: open /proc/self/ns/pid");
  HYPER_CHECK(sys(::unshare(CLONE_NEWPID), "unshare a PID namespace"));
  const pid_t pid = ::fork();
  if (pid == 0) return pid;
  const int fork_errno = errno;
  // Our later children (none are planned) would land in the new namespace otherwise.
  if (::setns(own.get(), CLONE_NEWPID) != 0) return Error::from_errno("jail: return to our PID namespace");
  if (pid < 0) return Error::from_errno("fork", fork_errno);
  return pid;
}

Status unshare_namespaces() {
  HYPER_CHECK(sys(::unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS), "unshare mount, IPC and UTS namespaces"));
  return sys(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), "make the mounts private");
}

Result<std::string> enter_jail(const fs::path& dir) {
  if (!dir.is_absolute()) return make_error(Errc::invalid_argument, "jail: " + dir.string() + " is not absolute");
  HYPER_CHECK(check_single_threaded());
  HYPER_CHECK(close_directory_fds());
  const int last_cap = HYPER_TRY(last_capability());
  HYPER_CHECK(build_root(dir));
  const std::string method = HYPER_TRY(switch_root(dir / kJailMountPoint));
  HYPER_CHECK(sys(::mount(nullptr, "/", nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | kNoExec, nullptr),
                  "remount the root read-only"));
  HYPER_CHECK(sys(::chdir(dir.c_str()), "chdir " + dir.string()));
  HYPER_CHECK(sys(::unshare(CLONE_NEWNET), "unshare a network namespace"));
  HYPER_CHECK(set_rlimits());
  HYPER_CHECK(sys(::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "PR_SET_DUMPABLE"));
  HYPER_CHECK(drop_capabilities(last_cap));
  HYPER_CHECK(sys(::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS"));
  return method;
}

}  // namespace hyper::runtime
