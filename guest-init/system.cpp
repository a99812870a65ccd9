#include "guest-init/system.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <linux/vm_sockets.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <optional>

#include "guest-init/protocol.hpp"
#include "vmm/file_io.hpp"

namespace hyper::guest {
namespace {

int openat2_in_root(int root_fd, const std::string& path, int flags, mode_t mode) {
  open_how how{};
  how.flags = static_cast<uint64_t>(flags) | O_CLOEXEC;
  how.mode = (flags & O_CREAT) ? mode : 0;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(::syscall(SYS_openat2, root_fd, path.c_str(), &how, sizeof how));
}

std::pair<std::string, std::string> split_parent(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return {".", path};
  return {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
}

}  // namespace

uint64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

Status wait_for_disk(const std::string& path) {
  for (int attempt = 0; attempt < 400; ++attempt) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return Error::from_errno("open " + path);
    uint64_t bytes = 0;
    if (::ioctl(fd.get(), BLKGETSIZE64, &bytes) != 0) return Error::from_errno("size of " + path);
    if (bytes > 0) return {};
    ::usleep(5'000);
  }
  return make_error(Errc::io, path + " stayed empty: its disk never arrived");
}

Result<UniqueFd> connect_to_host() {
  sockaddr_vm addr{};
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = VMADDR_CID_HOST;
  addr.svm_port = agent::kBootPort;
  int last_error = 0;
  // The host listens before the VM starts; a retry only covers a transient reset.
  for (int attempt = 0; attempt < 50; ++attempt) {
    UniqueFd fd(::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return Error::from_errno("vsock socket");
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return fd;
    last_error = errno;
    ::usleep(20'000);
  }
  return Error::from_errno("connect to the host on vsock port " + std::to_string(agent::kBootPort), last_error);
}

Status mount_fs(const char* source, const char* target, const char* type, unsigned long flags,
                const std::string& data) {
  if (::mount(source, target, type, flags, data.empty() ? nullptr : data.c_str()) != 0)
    return Error::from_errno(std::string("mount ") + type + " " + source + " on " + target);
  return {};
}

Status make_dirs(const std::string& path, mode_t mode) {
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    const std::string prefix = path.substr(0, pos);
    if (::mkdir(prefix.c_str(), mode) != 0 && errno != EEXIST) return Error::from_errno("mkdir " + prefix);
  }
  return {};
}

Result<UniqueFd> open_in_root(int root_fd, const std::string& path, int flags, mode_t mode) {
  const int fd = openat2_in_root(root_fd, path, flags, mode);
  if (fd < 0) return Error::from_errno("open " + path + " in the container's root");
  return UniqueFd(fd);
}

Result<UniqueFd> make_dirs_in_root(int root_fd, const std::string& path, mode_t mode) {
  UniqueFd dir(::fcntl(root_fd, F_DUPFD_CLOEXEC, 0));
  if (!dir.valid()) return Error::from_errno("dup the container's root");
  size_t start = 0;
  while (start < path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    const std::string name = path.substr(start, end - start);
    start = end + 1;
    if (name.empty() || name == ".") continue;
    if (::mkdirat(dir.get(), name.c_str(), mode) != 0 && errno != EEXIST)
      return Error::from_errno("mkdir " + path + " in the container's root");
    // Each step resolves from the root again, so a symlinked component stays inside.
    const std::string so_far = path.substr(0, end);
    dir = HYPER_TRY(open_in_root(root_fd, so_far, O_PATH | O_DIRECTORY));
  }
  return dir;
}

namespace {

// Where the symlink at `path` points, as a path from the root (an absolute target is the
// root's); nothing when `path` is not a symlink.
std::optional<std::string> link_target_in_root(int root_fd, const std::string& path) {
  const auto [parent, name] = split_parent(path);
  auto dir = open_in_root(root_fd, parent, O_PATH | O_DIRECTORY);
  if (!dir) return std::nullopt;
  char target[4096];
  const ssize_t n = ::readlinkat(dir->get(), name.c_str(), target, sizeof target - 1);
  if (n <= 0) return std::nullopt;
  const std::string link(target, static_cast<size_t>(n));
  return link[0] == '/' ? link.substr(1) : parent + "/" + link;
}

constexpr int kMaxLinkHops = 8;

Result<UniqueFd> make_file_following_links(int root_fd, const std::string& path, int hops) {
  (void)HYPER_TRY(make_dirs_in_root(root_fd, split_parent(path).first));
  auto existing = open_in_root(root_fd, path, O_PATH);
  if (existing || existing.error().code != Errc::not_found) return existing;
  auto created = open_in_root(root_fd, path, O_WRONLY | O_CREAT, 0644);
  if (!created && created.error().code == Errc::not_found && hops < kMaxLinkHops) {
    // A symlink whose target's directory is missing (/etc/resolv.conf -> ../run/...):
    // the target is made, inside the root, as runc makes it.
    if (const auto target = link_target_in_root(root_fd, path)) {
      (void)HYPER_TRY(make_file_following_links(root_fd, *target, hops + 1));
      return open_in_root(root_fd, path, O_PATH);
    }
  }
  if (!created) return created.error();
  return open_in_root(root_fd, path, O_PATH);
}

}  // namespace

Result<UniqueFd> make_file_in_root(int root_fd, const std::string& path) {
  return make_file_following_links(root_fd, path, 0);
}

Status write_in_root(int root_fd, const std::string& path, std::string_view content, mode_t mode) {
  const auto [parent, name] = split_parent(path);
  UniqueFd dir = HYPER_TRY(make_dirs_in_root(root_fd, parent));
  // Replace rather than write through: the image may have put a symlink here.
  if (::unlinkat(dir.get(), name.c_str(), 0) != 0 && errno != ENOENT && errno != EISDIR)
    return Error::from_errno("replace " + path + " in the container's root");
  UniqueFd file(::openat(dir.get(), name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
  if (!file.valid()) return Error::from_errno("create " + path + " in the container's root");
  return write_all(file.get(), content.data(), content.size(), path);
}

Result<std::string> read_small_file(const char* path, size_t limit) {
  UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Error::from_errno(std::string("open ") + path);
  std::string data;
  char buf[4096];
  while (data.size() < limit) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno(std::string("read ") + path);
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  return data;
}

Ports::Ports() : registers_(std::make_shared<const VmmRegisters>()) {}

void Ports::mark_boot_done() const { registers_->mark_user_space(); }

void Ports::power_off(int status) const {
  ::sync();
  registers_->report_exit(status);
  ::reboot(RB_POWER_OFF);
  for (;;) ::pause();
}

}  // namespace hyper::guest
