#include "runtime/volume/virtiofs_daemon.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "vmm/unique_fd.hpp"

namespace hyper::runtime::volume {
namespace {

constexpr int kListenFd = 3;

Result<UniqueFd> listen_at(const std::filesystem::path& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.string().size() >= sizeof addr.sun_path)
    return make_error(Errc::invalid_argument, "socket path too long: " + path.string());
  std::memcpy(addr.sun_path, path.c_str(), path.string().size() + 1);
  ::unlink(path.c_str());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Error::from_errno("socket");
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd.get(), 1) != 0)
    return Error::from_errno("listen on " + path.string());
  return fd;
}

// In the child, between fork and exec: only async-signal-safe calls, no allocation that
// could deadlock (the VMM process is single-threaded here, which makes the strings safe).
[[noreturn]] void exec_daemon(const ShareSpec& spec, int listen_fd, int log_fd) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);  // the monitor's blocked signals are not its
  // A mount namespace of its own: the VMM's jail later pivots its root, which must not move
  // the daemon's, and a read-only share is a read-only bind mount that only it sees.
  if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) _exit(126);
  if (spec.read_only) {
    if (::mount(spec.source.c_str(), spec.source.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0 ||
        ::mount(nullptr, spec.source.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) != 0)
      _exit(126);
  }
  if (::dup2(listen_fd, kListenFd) < 0 || ::dup2(log_fd, STDERR_FILENO) < 0) _exit(126);
  const int null = ::open("/dev/null", O_RDWR);
  if (null >= 0) ::dup2(null, STDIN_FILENO), ::dup2(null, STDOUT_FILENO);
  const std::string source = "source=" + spec.source.string();
  const std::string fd = "--fd=" + std::to_string(kListenFd);
  // cache=auto: the guest caches attributes for a second, so changes on the host show
  // within that; the thread pool serves requests in parallel.
  const char* argv[] = {kVirtiofsd, fd.c_str(), "-o", source.c_str(), "-o", "cache=auto", "-o", "xattr",
                        "--thread-pool-size=4", "-o", "log_level=warn", nullptr};
  ::execv(kVirtiofsd, const_cast<char* const*>(argv));
  _exit(127);
}

}  // namespace

Status check_share_source(const std::filesystem::path& source) {
  struct stat st {};
  if (::stat(source.c_str(), &st) != 0) {
    if (errno == ENOENT) return make_error(Errc::not_found, "bind source path does not exist: " + source.string());
    return Error::from_errno("bind source " + source.string());
  }
  if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
    return make_error(Errc::invalid_argument, "bind source " + source.string() +
                                                  " is neither a directory nor a regular file");
  if (::access(kVirtiofsd, X_OK) != 0)
    return make_error(Errc::not_found, std::string(kVirtiofsd) +
                                           " is not installed (Debian package qemu-system-common): bind mounts need it");
  if (::geteuid() != 0)
    return make_error(Errc::permission_denied, "bind mounts need root: virtiofsd runs as root to serve the directory");
  return {};
}

Result<VirtiofsDaemon> VirtiofsDaemon::start(const ShareSpec& spec) {
  HYPER_CHECK(check_share_source(spec.source));
  UniqueFd listener = HYPER_TRY(listen_at(spec.socket));
  UniqueFd log(::open(spec.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!log.valid()) return Error::from_errno("open " + spec.log.string());
  const pid_t pid = ::fork();
  if (pid < 0) return Error::from_errno("fork virtiofsd");
  if (pid == 0) exec_daemon(spec, listener.get(), log.get());
  return VirtiofsDaemon(pid);
}

VirtiofsDaemon::~VirtiofsDaemon() {
  if (pid_ <= 0) return;
  // Normally gone already: it exits when the VM closes its connection. Its writes were
  // system calls, done; there is nothing for it to flush.
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace hyper::runtime::volume
