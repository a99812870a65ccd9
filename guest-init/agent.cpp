#include "guest-init/agent.hpp"

#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "guest-init/container.hpp"
#include "guest-init/layer_export.hpp"
#include "guest-init/rootfs_build.hpp"

namespace hyper::guest {
namespace {

using agent::Kind;

// Output is not read from a process while its connection holds this much unsent, so a
// slow host slows the process instead of growing the init's memory.
constexpr size_t kMaxQueuedOut = 1 << 20;
constexpr size_t kMaxQueuedIn = 1 << 20;
// After the main process exits, how long its output may still drain (a background child
// can hold the pipe open) and how long the host has to take the exit status.
constexpr uint64_t kDrainNs = 100'000'000;
constexpr uint64_t kShutdownGraceNs = 2'000'000'000;
// From <linux/fs.h>, which cannot be included beside glibc's <sys/mount.h>.
constexpr unsigned long kFreezeIoctl = _IOWR('X', 119, int), kThawIoctl = _IOWR('X', 120, int);

void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

Result<UniqueFd> listen_vsock(uint32_t port) {
  UniqueFd fd(::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return Error::from_errno("vsock socket");
  sockaddr_vm addr{};
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = VMADDR_CID_ANY;
  addr.svm_port = port;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd.get(), 16) != 0)
    return Error::from_errno("listen on vsock port " + std::to_string(port));
  return fd;
}

Result<UniqueFd> block_sigchld() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  if (::sigprocmask(SIG_BLOCK, &set, nullptr) != 0) return Error::from_errno("block SIGCHLD");
  UniqueFd fd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!fd.valid()) return Error::from_errno("signalfd");
  return fd;
}

int exit_status_of(int wait_status, std::optional<int>& term_signal) {
  if (WIFSIGNALED(wait_status)) {
    term_signal = WTERMSIG(wait_status);
    return 128 + WTERMSIG(wait_status);
  }
  return WEXITSTATUS(wait_status);
}

Result<uint64_t> meminfo_kib(const std::string& meminfo, const char* key) {
  const auto at = meminfo.find(key);
  if (at == std::string::npos) return make_error(Errc::not_found, std::string("no ") + key + " in /proc/meminfo");
  return std::strtoull(meminfo.c_str() + at + std::strlen(key), nullptr, 10);
}

void unmount_container() {
  // Innermost first; failures only cost a dirty scratch disk, which ext4 tolerates.
  for (const char* path : {"/rootfs/tmp", "/rootfs/dev/shm", "/rootfs/dev/pts", "/rootfs/dev", "/rootfs/sys/fs/cgroup",
                           "/rootfs/sys", "/rootfs/proc", "/rootfs", "/run/rw", "/run/image"})
    ::umount2(path, 0);
}

}  // namespace

Agent::Agent(const Ports& ports, uint64_t init_ns) : ports_(ports), init_ns_(init_ns) {}

void Agent::run(UniqueFd boot_connection) {
  auto signals = block_sigchld();
  if (!signals.ok()) power_off(125);
  signal_fd_ = std::move(signals).value();
  open_boot_connection(std::move(boot_connection), false);
  if (auto listener = listen_vsock(agent::kAgentPort); listener.ok()) listener_ = std::move(listener).value();
  for (;;) loop_once();
}

void Agent::open_boot_connection(UniqueFd fd, bool restored) {
  set_nonblocking(fd.get());
  const int id = next_id_++;
  boot_id_ = id;
  Connection& boot = connections_[id];
  boot.fd = std::move(fd);
  boot.role = Role::boot;
  boot.greeted = true;
  Json ready{{"event", "ready"}, {"version", agent::kProtocolVersion}, {"init_ns", init_ns_}, {"now_ns", monotonic_ns()}};
  if (restored) ready["restored"] = true;
  send(id, Kind::event, ready.dump());
}

// Before anything started, the boot connection ends only when this VM was restored from
// a template: the restore reset the vsock transport, and a new host waits for "ready".
void Agent::reconnect_if_restored() {
  if (started_ || shutdown_deadline_ns_) return;
  const auto boot = connections_.find(boot_id_);
  if (boot != connections_.end() && !boot->second.peer_closed) return;
  auto fresh = connect_to_host();
  if (!fresh.ok()) power_off(125);
  if (boot != connections_.end()) connections_.erase(boot);
  open_boot_connection(std::move(fresh).value(), true);
}

void Agent::loop_once() {
  std::vector<pollfd> fds;
  std::vector<std::pair<int, int>> owners;  // (kind, id): 0 signal, 1 listener, 2 conn, 3 out, 4 err, 5 in
  auto watch = [&](int fd, short events, int kind, int id) {
    if (fd < 0 || events == 0) return;
    fds.push_back(pollfd{fd, events, 0});
    owners.emplace_back(kind, id);
  };
  watch(signal_fd_.get(), POLLIN, 0, 0);
  if (started_) watch(listener_.get(), POLLIN, 1, 0);
  for (auto& [id, conn] : connections_) {
    const bool input_ok = !conn.peer_closed &&
                          !(conn.process >= 0 && processes_.count(conn.process) &&
                            processes_[conn.process].pending_in.size() > kMaxQueuedIn);
    watch(conn.fd.get(), static_cast<short>((input_ok ? POLLIN : 0) | (conn.out.empty() ? 0 : POLLOUT)), 2, id);
  }
  for (auto& [id, process] : processes_) {
    const bool room = !connection_backed_up(process.connection);
    watch(process.out.get(), room ? POLLIN : 0, 3, id);
    watch(process.err.get(), room ? POLLIN : 0, 4, id);
    if (!process.pending_in.empty()) watch(process.in.get(), POLLOUT, 5, id);
  }
  int timeout_ms = -1;
  const uint64_t now = monotonic_ns();
  auto until = [&](uint64_t deadline) {
    const int ms = deadline > now ? static_cast<int>((deadline - now) / 1'000'000) + 1 : 0;
    timeout_ms = timeout_ms < 0 ? ms : std::min(timeout_ms, ms);
  };
  for (const auto& [id, process] : processes_)
    if (process.status) until(process.reaped_ns + kDrainNs);
  if (shutdown_deadline_ns_) until(*shutdown_deadline_ns_);

  if (::poll(fds.data(), fds.size(), timeout_ms) < 0 && errno != EINTR) power_off(125);
  for (size_t i = 0; i < fds.size(); ++i) {
    if (fds[i].revents == 0) continue;
    const auto [kind, id] = owners[i];
    switch (kind) {
      case 0: reap_children(); break;
      case 1: accept_connection(); break;
      case 2:
        if (!connections_.count(id)) break;
        if (fds[i].revents & POLLOUT) write_connection(id);
        if (connections_.count(id) && (fds[i].revents & (POLLIN | POLLHUP | POLLERR))) read_connection(id);
        break;
      case 3: relay_output(id, false); break;
      case 4: relay_output(id, true); break;
      case 5:
        if (processes_.count(id)) flush_stdin(processes_[id]);
        break;
      default: break;
    }
  }
  finish_processes();
  drop_closed_connections();
  reconnect_if_restored();
  maybe_power_off();
}

void Agent::accept_connection() {
  for (;;) {
    UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!fd.valid()) return;
    if (connections_.size() >= 256) continue;  // closes it: a flood must not exhaust the init
    Connection& conn = connections_[next_id_++];
    conn.fd = std::move(fd);
  }
}

void Agent::read_connection(int id) {
  char buf[65536];
  for (;;) {
    Connection& conn = connections_[id];
    const ssize_t n = ::read(conn.fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
      conn.peer_closed = true;
      return;
    }
    conn.decoder.feed(buf, static_cast<size_t>(n));
    while (connections_.count(id)) {
      auto item = connections_[id].decoder.next();
      if (!item) break;
      if (item->problem) {
        send(id, Kind::response, error_reply(make_error(Errc::invalid_argument, item->problem->message)));
      } else {
        handle_frame(id, std::move(*item->frame));
      }
    }
    if (!connections_.count(id) || static_cast<size_t>(n) < sizeof buf) return;
  }
}

void Agent::write_connection(int id) {
  Connection& conn = connections_[id];
  while (!conn.out.empty()) {
    const ssize_t n = ::send(conn.fd.get(), conn.out.data(), conn.out.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
      conn.out.clear();
      conn.peer_closed = true;
      conn.close_when_flushed = true;
      return;
    }
    conn.out.erase(0, static_cast<size_t>(n));
  }
}

void Agent::send(int connection, Kind kind, std::string_view payload) {
  const auto it = connections_.find(connection);
  if (it == connections_.end() || (it->second.close_when_flushed && it->second.peer_closed)) return;
  agent::encode_frame(it->second.out, kind, payload);
  write_connection(connection);
}

bool Agent::connection_backed_up(int connection) const {
  const auto it = connections_.find(connection);
  return it != connections_.end() && it->second.out.size() > kMaxQueuedOut;
}

void Agent::handle_frame(int id, agent::Frame frame) {
  Connection& conn = connections_[id];
  if (frame.kind == Kind::request) {
    handle_request(id, frame.payload);
  } else if (conn.role == Role::stream) {
    handle_stream_frame(conn, frame);
  } else {
    send(id, Kind::response,
         error_reply(make_error(Errc::invalid_argument,
                                std::string("unexpected ") + agent::kind_name(frame.kind) + " frame: no process is attached")));
  }
}

void Agent::handle_stream_frame(Connection& conn, const agent::Frame& frame) {
  auto it = processes_.find(conn.process);
  if (it == processes_.end()) return;  // the process is gone; late input is moot
  Process& process = it->second;
  switch (frame.kind) {
    case Kind::stdin_data:
      if (process.in.valid() && !process.close_in_when_flushed) {
        process.pending_in += frame.payload;
        flush_stdin(process);
      }
      break;
    case Kind::stdin_eof:
      process.close_in_when_flushed = true;
      flush_stdin(process);
      break;
    case Kind::signal:
    case Kind::resize: {
      const Json body = Json::parse(frame.payload, nullptr, false);
      if (!body.is_object()) break;
      Json request = body;
      request["pid"] = process.pid;
      auto result = frame.kind == Kind::signal ? signal_process(request) : resize_process(request);
      if (!result.ok()) send(process.connection, Kind::response, error_reply(result.error()));
      break;
    }
    default: break;
  }
}

void Agent::handle_request(int id, const std::string& payload) {
  auto reply = [&]() -> Result<std::string> {
    const Json request = HYPER_TRY(parse_request(payload));
    try {
      return dispatch(id, connections_[id], request);
    } catch (const std::exception& e) {  // nlohmann's type errors: the request was malformed
      return make_error(Errc::invalid_argument, std::string("malformed request: ") + e.what());
    }
  }();
  if (!reply.ok()) {
    send(id, Kind::response, error_reply(reply.error()));
  } else if (!reply->empty()) {
    send(id, Kind::response, *reply);
  }
}

Result<std::string> Agent::dispatch(int id, Connection& conn, const Json& request) {
  const std::string& op = request["op"].get_ref<const std::string&>();
  if (op == "hello") {
    const auto version = request.value("version", 0u);
    if (version != agent::kProtocolVersion)
      return make_error(Errc::unsupported, "protocol version " + std::to_string(version) + " is not supported (agent speaks " +
                                               std::to_string(agent::kProtocolVersion) + ")");
    conn.greeted = true;
    return ok_reply({{"version", agent::kProtocolVersion}, {"agent", "hyper-init"}});
  }
  if (!conn.greeted) return make_error(Errc::invalid_argument, "say hello first: {\"op\":\"hello\",\"version\":1}");
  if (conn.role == Role::stream) return make_error(Errc::invalid_argument, "this connection carries a process's stdio");
  if (op == "start" || op == "build" || op == "export_disk") {
    if (conn.role != Role::boot || started_) return make_error(Errc::invalid_argument, op + " is only valid once, on the boot connection");
    if (op == "start") return start_container(id, request);
    return op == "build" ? build_rootfs(request) : export_stopped_layer(id, request);
  }
  if (!started_) return make_error(Errc::invalid_argument, "the container has not started");
  if (op == "exec") return exec_process(id, request);
  if (op == "signal") return signal_process(request);
  if (op == "resize") return resize_process(request);
  if (op == "stats") return stats();
  if (op == "freeze") return freeze_mount(id, request);
  if (op == "export") return export_writable_layer(id, false);
  if (op == "wait") {
    if (main_status_) return ok_reply({{"status", *main_status_}});
    waiters_.push_back(id);
    return std::string();
  }
  return make_error(Errc::invalid_argument, "unknown op \"" + op + "\"");
}

Result<std::string> Agent::start_container(int id, const Json& request) {
  started_ = true;
  const uint64_t received_ns = monotonic_ns();
  auto start = [&]() -> Result<SpawnedProcess> {
    const ContainerSpec container = HYPER_TRY(parse_container_spec(request));
    const auto process_it = request.find("process");
    if (process_it == request.end()) return make_error(Errc::invalid_argument, "missing \"process\"");
    const ProcessSpec process = HYPER_TRY(parse_process_spec(*process_it));
    PreparedContainer prepared = HYPER_TRY(prepare_container(container));
    root_ = std::move(prepared.root);
    mounts_ = std::move(prepared.mounts);
    return spawn_in_root(kContainerRoot, root_.get(), process);
  };
  auto spawned = start();
  if (!spawned.ok()) {
    const int code = exit_code_for_start_failure(spawned.error());
    schedule_power_off(code);
    return error_reply(spawned.error(), code);
  }
  const bool tty = request["process"].value("tty", false);
  register_process(std::move(spawned).value(), tty, true, id);
  const uint64_t exec_ns = monotonic_ns();
  return ok_reply({{"pid", processes_.rbegin()->second.pid},
                   {"timings", {{"init_ns", init_ns_}, {"start_received_ns", received_ns}, {"exec_ns", exec_ns}}}});
}

Result<std::string> Agent::exec_process(int id, const Json& request) {
  const auto process_it = request.find("process");
  if (process_it == request.end()) return make_error(Errc::invalid_argument, "missing \"process\"");
  if (main_status_) return make_error(Errc::invalid_argument, "the container has exited");
  if (!root_.valid()) return make_error(Errc::invalid_argument, "no container runs in this VM");
  const ProcessSpec spec = HYPER_TRY(parse_process_spec(*process_it));
  auto spawned = spawn_in_root(kContainerRoot, root_.get(), spec);
  if (!spawned.ok()) return error_reply(spawned.error(), exit_code_for_start_failure(spawned.error()));
  const pid_t pid = spawned->pid;
  register_process(std::move(spawned).value(), spec.tty, false, id);
  return ok_reply({{"pid", pid}});
}

Result<std::string> Agent::freeze_mount(int id, const Json& request) {
  const std::string target = request.value("target", "");
  const bool frozen = request.value("frozen", true);
  const auto mount = std::find_if(mounts_.begin(), mounts_.end(), [&](const MountedVolume& m) {
    return m.spec.target == target && m.spec.type == MountSpec::Type::block;
  });
  if (mount == mounts_.end()) return make_error(Errc::invalid_argument, "no volume is mounted on \"" + target + "\"");
  const auto holder = frozen_.find(target);
  if (frozen && holder != frozen_.end()) return make_error(Errc::invalid_argument, target + " is frozen already");
  if (!frozen && (holder == frozen_.end() || holder->second != id))
    return make_error(Errc::invalid_argument, target + " was not frozen by this connection");
  UniqueFd fd(::open(mount->path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return Error::from_errno("open " + target);
  // FIFREEZE writes back everything dirty first, so the disk then holds a clean file system.
  if (::ioctl(fd.get(), frozen ? kFreezeIoctl : kThawIoctl, 0) != 0)
    return Error::from_errno(std::string(frozen ? "freeze " : "thaw ") + target);
  if (frozen) frozen_[target] = id;
  else frozen_.erase(target);
  return ok_reply({{"target", target}, {"frozen", frozen}});
}

// A host that froze a volume and went away must not leave the container blocked on it.
void Agent::thaw_frozen_by(int connection) {
  for (auto it = frozen_.begin(); it != frozen_.end();) {
    if (it->second != connection) {
      ++it;
      continue;
    }
    for (const auto& mount : mounts_) {
      if (mount.spec.target != it->first) continue;
      UniqueFd fd(::open(mount.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (fd.valid()) ::ioctl(fd.get(), kThawIoctl, 0);
    }
    it = frozen_.erase(it);
  }
}

void Agent::unmount_volumes() {
  for (const auto& [target, connection] : std::map<std::string, int>(frozen_)) thaw_frozen_by(connection);
  // Innermost (latest) first; a clean unmount leaves a volume's journal with nothing to replay.
  for (auto it = mounts_.rbegin(); it != mounts_.rend(); ++it) ::umount2(it->path.c_str(), 0);
}

Result<std::string> Agent::build_rootfs(const Json& request) {
  started_ = true;
  const BuildSpec spec = HYPER_TRY(parse_build_spec(request));
  auto stats = build_root_filesystem(spec);
  schedule_power_off(stats.ok() ? 0 : 1);
  if (!stats.ok()) return stats.error();
  return ok_reply(std::move(stats).value());
}

Result<std::string> Agent::signal_process(const Json& request) {
  const int signal = request.value("signal", 0);
  if (signal <= 0 || signal >= NSIG) return make_error(Errc::invalid_argument, "\"signal\" must be a signal number");
  pid_t pid = request.value("pid", 0);
  if (pid == 0) {
    for (const auto& [id, process] : processes_)
      if (process.main) pid = process.pid;
  }
  const bool known = std::any_of(processes_.begin(), processes_.end(),
                                 [&](const auto& entry) { return entry.second.pid == pid && !entry.second.status; });
  if (!known) return make_error(Errc::not_found, "no running process " + std::to_string(pid) + " to signal");
  if (::kill(pid, signal) != 0) return Error::from_errno("kill " + std::to_string(pid));
  return ok_reply();
}

Result<std::string> Agent::resize_process(const Json& request) {
  const int rows = request.value("rows", 0), cols = request.value("cols", 0);
  if (rows <= 0 || cols <= 0 || rows > 0xffff || cols > 0xffff)
    return make_error(Errc::invalid_argument, "\"rows\" and \"cols\" must be between 1 and 65535");
  pid_t pid = request.value("pid", 0);
  for (auto& [id, process] : processes_) {
    if (!(pid == 0 ? process.main : process.pid == pid)) continue;
    if (!process.tty) return make_error(Errc::invalid_argument, "the process has no terminal");
    winsize size{};
    size.ws_row = static_cast<unsigned short>(rows);
    size.ws_col = static_cast<unsigned short>(cols);
    if (::ioctl(process.out.get(), TIOCSWINSZ, &size) != 0) return Error::from_errno("resize the terminal");
    return ok_reply();
  }
  return make_error(Errc::not_found, "no such process to resize");
}

Result<std::string> Agent::stats() const {
  const std::string meminfo = HYPER_TRY(read_small_file("/proc/meminfo"));
  const std::string stat = HYPER_TRY(read_small_file("/proc/stat"));
  // "cpu  user nice system idle iowait irq softirq steal": busy time is all but idle/iowait.
  uint64_t fields[8] = {};
  std::sscanf(stat.c_str(), "cpu %lu %lu %lu %lu %lu %lu %lu %lu", &fields[0], &fields[1], &fields[2], &fields[3],
              &fields[4], &fields[5], &fields[6], &fields[7]);
  const uint64_t busy_ticks = fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7];
  const uint64_t tick_ns = 1'000'000'000ull / static_cast<uint64_t>(::sysconf(_SC_CLK_TCK));
  const uint64_t total = HYPER_TRY(meminfo_kib(meminfo, "MemTotal:")) * 1024;
  const uint64_t available = HYPER_TRY(meminfo_kib(meminfo, "MemAvailable:")) * 1024;
  return ok_reply({{"cpu_ns", busy_ticks * tick_ns},
                   {"memory_total_bytes", total},
                   {"memory_used_bytes", total - std::min(total, available)},
                   {"processes", processes_.size()}});
}

// `hyper commit` of a stopped container: its scratch disk, read-only, is exported exactly
// as a running container's upper directory would be. The exporter is this VM's main
// process, so the VM powers off with its status once the host has taken it.
Result<std::string> Agent::export_stopped_layer(int id, const Json& request) {
  started_ = true;
  auto exporting = [&]() -> Result<std::string> {
    const std::string device = HYPER_TRY(parse_export_disk_spec(request));
    HYPER_CHECK(mount_stopped_writable_layer(device));
    return export_writable_layer(id, true);
  }();
  if (!exporting.ok()) schedule_power_off(1);
  return exporting;
}

// The tar is written by a forked child into a pipe, so the agent's loop streams it like a
// process's stdout (backpressure included) and reports the child's status as the exit.
Result<std::string> Agent::export_writable_layer(int id, bool main) {
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return Error::from_errno("pipe");
  if (::pipe2(err, O_CLOEXEC) != 0) {
    ::close(out[0]);
    ::close(out[1]);
    return Error::from_errno("pipe");
  }
  SpawnedProcess exporter;
  exporter.stdout_fd = UniqueFd(out[0]);
  exporter.stderr_fd = UniqueFd(err[0]);
  UniqueFd out_w(out[1]), err_w(err[1]);
  exporter.pid = ::fork();
  if (exporter.pid < 0) return Error::from_errno("fork the exporter");
  if (exporter.pid == 0) {
    UniqueFd upper(::open(kUpperDir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    auto exported = upper.valid() ? layer::export_layer(upper.get(), out_w.get())
                                  : Result<layer::ExportStats>(Error::from_errno(std::string("open ") + kUpperDir));
    if (exported.ok()) _exit(0);
    const std::string message = "export: " + exported.error().message + "\n";
    (void)!::write(err_w.get(), message.data(), message.size());
    _exit(1);
  }
  set_nonblocking(exporter.stdout_fd.get());
  set_nonblocking(exporter.stderr_fd.get());
  const pid_t pid = exporter.pid;
  register_process(std::move(exporter), false, main, id);
  return ok_reply({{"pid", pid}});
}

int Agent::register_process(SpawnedProcess spawned, bool tty, bool main, int connection) {
  const int id = next_id_++;
  Process& process = processes_[id];
  process.pid = spawned.pid;
  process.in = std::move(spawned.stdin_fd);
  process.out = std::move(spawned.stdout_fd);
  process.err = std::move(spawned.stderr_fd);
  process.tty = tty;
  process.main = main;
  process.connection = connection;
  Connection& conn = connections_[connection];
  conn.role = Role::stream;
  conn.process = id;
  return id;
}

void Agent::relay_output(int id, bool from_stderr) {
  auto it = processes_.find(id);
  if (it == processes_.end()) return;
  Process& process = it->second;
  UniqueFd& fd = from_stderr ? process.err : process.out;
  char buf[agent::kMaxDataChunk];
  const ssize_t n = ::read(fd.get(), buf, sizeof buf);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) {  // EOF, or EIO from a pty whose last writer closed
    fd.reset();
    return;
  }
  send(process.connection, from_stderr ? Kind::stderr_data : Kind::stdout_data,
       std::string_view(buf, static_cast<size_t>(n)));
}

void Agent::flush_stdin(Process& process) {
  while (process.in.valid() && !process.pending_in.empty()) {
    const ssize_t n = ::write(process.in.get(), process.pending_in.data(), process.pending_in.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {  // the process closed its stdin
      process.pending_in.clear();
      process.in.reset();
      return;
    }
    process.pending_in.erase(0, static_cast<size_t>(n));
  }
  // A tty's input fd is the master itself: closing it would hang up the terminal.
  if (process.close_in_when_flushed && process.pending_in.empty() && !process.tty) process.in.reset();
}

void Agent::reap_children() {
  signalfd_siginfo info;
  while (::read(signal_fd_.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
  }
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    for (auto& [id, process] : processes_) {
      if (process.pid != pid) continue;
      process.status = exit_status_of(status, process.term_signal);
      process.reaped_ns = monotonic_ns();
    }
  }
}

void Agent::finish_processes() {
  const uint64_t now = monotonic_ns();
  for (auto it = processes_.begin(); it != processes_.end();) {
    Process& process = it->second;
    const bool drained = !process.out.valid() && !process.err.valid();
    if (process.status && (drained || now >= process.reaped_ns + kDrainNs)) {
      finish(it->first, process);
      it = processes_.erase(it);
    } else {
      ++it;
    }
  }
}

void Agent::finish(int id, Process& process) {
  // Whatever is still readable goes out before the exit status.
  while (process.out.valid()) relay_output(id, false);
  while (process.err.valid()) relay_output(id, true);
  Json exit{{"status", *process.status}};
  if (process.term_signal) exit["signal"] = *process.term_signal;
  send(process.connection, Kind::exit, exit.dump());
  if (auto conn = connections_.find(process.connection); conn != connections_.end()) {
    conn->second.process = -1;
    if (!process.main) conn->second.close_when_flushed = true;
  }
  if (!process.main) return;
  schedule_power_off(*process.status);
  for (int waiter : waiters_) send(waiter, Kind::response, ok_reply({{"status", *main_status_}}));
  waiters_.clear();
}

void Agent::drop_closed_connections() {
  for (auto it = connections_.begin(); it != connections_.end();) {
    Connection& conn = it->second;
    const bool done = (conn.close_when_flushed && conn.out.empty()) || (conn.peer_closed && conn.role != Role::boot);
    if (!done) {
      ++it;
      continue;
    }
    if (auto process = processes_.find(conn.process); process != processes_.end()) process->second.connection = -1;
    std::erase(waiters_, it->first);
    thaw_frozen_by(it->first);
    it = connections_.erase(it);
  }
}

void Agent::schedule_power_off(int status) {
  main_status_ = status;
  shutdown_status_ = status;
  shutdown_deadline_ns_ = monotonic_ns() + kShutdownGraceNs;
}

void Agent::maybe_power_off() {
  if (!shutdown_deadline_ns_) return;
  // The host closes the boot connection once it has the exit status; until then the
  // status may still be in flight.
  const auto boot = connections_.find(boot_id_);
  const bool host_done = boot == connections_.end() || (boot->second.peer_closed && boot->second.out.empty());
  if (host_done || monotonic_ns() >= *shutdown_deadline_ns_) power_off(shutdown_status_);
}

void Agent::power_off(int status) {
  ::kill(-1, SIGKILL);
  const uint64_t deadline = monotonic_ns() + 1'000'000'000;
  while (::waitpid(-1, nullptr, WNOHANG) >= 0 && monotonic_ns() < deadline) ::usleep(1000);
  unmount_volumes();
  unmount_container();
  ports_.power_off(status);
}

}  // namespace hyper::guest
