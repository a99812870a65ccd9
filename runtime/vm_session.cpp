#include "runtime/vm_session.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "runtime/vm_defaults.hpp"

namespace hyper::runtime {
namespace {

// Socket paths go through the directory's fd (or the working directory): a state
// directory's path can be longer than a Unix socket address allows.
std::string socket_path(int dir_fd, const std::string& name) {
  if (dir_fd == AT_FDCWD) return name;
  return "/proc/self/fd/" + std::to_string(dir_fd) + "/" + name;
}

Result<UniqueFd> listen_unix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return make_error(Errc::invalid_argument, "socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  ::unlink(path.c_str());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return Error::from_errno("socket");
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd.get(), 4) != 0)
    return Error::from_errno("listen for the guest agent");
  return fd;
}

std::string describe_early_exit(const Result<RunResult>& result) {
  if (!result.ok()) return result.error().message;
  std::string text = "the VM stopped before its init connected (" + result->exit.detail + ")";
  if (!result->timings.boot_timer_ns) text += "; the guest never reached its init";
  if (!result->console_tail.empty()) text += "; console:\n" + result->console_tail;
  return text;
}

}  // namespace

void remove_session_sockets(const std::filesystem::path& dir) {
  const std::string vsock = kVsockSocket;
  for (const std::string& name : {vsock, vsock + "_" + std::to_string(agent::kBootPort)}) {
    struct stat st {};
    const auto path = dir / name;
    if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());
  }
}

VmSession::VmSession(EventFd stopped, UniqueFd dir_fd) : stopped_(std::move(stopped)), dir_fd_(std::move(dir_fd)) {}

VmSession::~VmSession() {
  stop();
  if (thread_.joinable()) thread_.join();
  ::unlinkat(dir_at(), (std::string(kVsockSocket) + "_" + std::to_string(agent::kBootPort)).c_str(), 0);
}

Result<std::unique_ptr<VmSession>> VmSession::boot(const VmSpec& spec, int ready_timeout_ms) {
  const GuestArtifacts artifacts = spec.restore_from.empty() ? HYPER_TRY(find_guest_artifacts()) : GuestArtifacts{};
  // A jailed VMM must hold no directory fd from outside its root: it would lead back out.
  UniqueFd dir_fd;
  if (!spec.sockets_in_cwd) {
    dir_fd.reset(::open(spec.dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!dir_fd.valid()) return Error::from_errno("open " + spec.dir.string());
  }
  const std::string vsock_path = socket_path(dir_fd.valid() ? dir_fd.get() : AT_FDCWD, kVsockSocket);
  UniqueFd listener = HYPER_TRY(listen_unix(vsock_path + "_" + std::to_string(agent::kBootPort)));

  MachineConfig config;
  if (spec.restore_from.empty()) {
    config.kernel = artifacts.kernel;
    config.initrd = artifacts.initrd;
    config.extra_cmdline = kGuestCmdline;
  }
  config.restore_from = spec.restore_from.string();
  config.snapshots = spec.snapshots;
  config.vcpus = spec.cpus;
  config.memory_mib = spec.memory_mib;
  config.rng = true;
  config.disks = spec.disks;
  config.nets = spec.nets;
  for (const auto& share : spec.shares)
    config.filesystems.push_back(virtio::FsOptions{.socket_path = share.socket, .tag = share.tag});
  config.vsock = virtio::VsockOptions{kGuestCid, vsock_path};
  config.console_fd = spec.console_fd;
  config.handle_signals = false;
  config.start_ns = spec.start_ns;
  config.seccomp = spec.seccomp;
  config.seccomp_report_fd = spec.seccomp_report_fd;

  // Not inside the new-expression: a HYPER_TRY returning there would leak the allocation.
  EventFd stopped = HYPER_TRY(EventFd::create());
  std::unique_ptr<VmSession> session(new VmSession(std::move(stopped), std::move(dir_fd)));
  HYPER_CHECK(session->start(std::move(config), std::move(listener), spec.before_run, ready_timeout_ms));
  return session;
}

Status VmSession::start(MachineConfig config, UniqueFd listener, const std::function<Status()>& before_run,
                        int ready_timeout_ms) {
  machine_ = HYPER_TRY(Machine::create(std::move(config)));
  HYPER_CHECK(before_run());
  thread_ = std::thread([this] {
    result_.emplace(machine_->run());
    stopped_.signal();
  });
  pollfd fds[2] = {{listener.get(), POLLIN, 0}, {stopped_.fd(), POLLIN, 0}};
  const int ready = ::poll(fds, 2, ready_timeout_ms);
  if (ready <= 0 || (fds[1].revents & POLLIN)) {
    if (ready > 0) {
      thread_.join();
      return make_error(Errc::io, describe_early_exit(*result_));
    }
    return make_error(Errc::io, "the guest init did not connect within " + std::to_string(ready_timeout_ms / 1000) +
                                    " s (see the console log)");
  }
  UniqueFd conn(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!conn.valid()) return Error::from_errno("accept the guest agent");
  agent_.emplace(std::move(conn));
  const agent::Frame event = HYPER_TRY(agent_->receive(ready_timeout_ms));
  ready_ = HYPER_TRY(parse_json_payload(event));
  if (event.kind != agent::Kind::event || ready_.value("event", "") != "ready")
    return make_error(Errc::io, "the guest init did not announce itself");
  if (ready_.value("version", 0u) != agent::kProtocolVersion)
    return make_error(Errc::unsupported, "the guest init speaks protocol version " +
                                             std::to_string(ready_.value("version", 0u)) + ", the runtime " +
                                             std::to_string(agent::kProtocolVersion));
  return {};
}

Result<RunResult> VmSession::wait(int timeout_ms) {
  if (thread_.joinable()) {
    pollfd p{stopped_.fd(), POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) stop();
    thread_.join();
  }
  if (!result_) return make_error(Errc::io, "the VM never ran");
  return *result_;
}

void VmSession::stop() {
  if (machine_ && thread_.joinable()) machine_->stop(VmExit{ExitKind::signal, 137, "stopped by the runtime"});
}

}  // namespace hyper::runtime
