#include "runtime/monitor.hpp"

#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>

#include "runtime/jail/cgroup.hpp"
#include "runtime/crash_point.hpp"
#include "runtime/dir_socket.hpp"
#include "runtime/disk_images.hpp"
#include "runtime/image_blobs.hpp"
#include "runtime/image_store.hpp"
#include "runtime/jail/jail.hpp"
#include "runtime/log_file.hpp"
#include "runtime/network/container_network.hpp"
#include "runtime/stdio_relay.hpp"
#include "runtime/template/vm_template.hpp"
#include "runtime/usage/meter.hpp"
#include "runtime/vm_session.hpp"
#include "runtime/volume/container_mounts.hpp"
#include "runtime/volume/volume_users.hpp"
#include "vmm/clock.hpp"
#include "vmm/file_io.hpp"

namespace hyper::runtime {
namespace {

using agent::Kind;

constexpr uint64_t kScratchDiskMib = 4096;
constexpr int kBootTimeoutMs = 120'000;

uint64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

Json rlimits_json(const ContainerConfig& config) {
  // Docker's default for its containers; an OCI bundle's process gets exactly its own list.
  if (config.rlimits.empty() && !config.host_rootfs)
    return Json::array({{{"type", "nofile"}, {"soft", 1048576}, {"hard", 1048576}}});
  return runtime::rlimits_json(config.rlimits);
}

Json rootfs_json(const ContainerConfig& config, bool scratch_disk, const std::string& root_tag) {
  if (config.host_rootfs) return {{"virtiofs", root_tag}, {"read_only", config.host_rootfs->read_only}};
  return {{"image", "/dev/vda"}, {"writable", scratch_disk ? "/dev/vdb" : ""}};
}

// Fresh randomness and the time for the guest (docs/agent-protocol.md, "identity"): what
// keeps VMs restored from one template from sharing a random pool or a stale clock.
Json identity_json() {
  Json identity = {{"realtime_ns", realtime_ns()}};
  if (auto entropy = blobs::random_hex(64); entropy.ok()) identity["entropy"] = *entropy;
  return identity;
}

Json start_request(const Container& container, bool scratch_disk, const net::ContainerNetwork* network,
                   const volume::AttachedMounts& mounts) {
  const auto& config = container.config;
  std::vector<std::string> args = config.entrypoint;
  args.insert(args.end(), config.cmd.begin(), config.cmd.end());
  std::vector<std::string> env = config.env;
  if (network) env.insert(env.end(), network->link_env().begin(), network->link_env().end());
  Json process = {{"args", args},
                  {"env", env},
                  {"cwd", config.working_dir.empty() ? "/" : config.working_dir},
                  {"user", config.user},
                  {"tty", config.tty},
                  {"stdin", config.open_stdin},
                  {"rlimits", rlimits_json(config)}};
  if (config.groups) process["groups"] = *config.groups;
  if (config.tty) {
    if (auto size = terminal_size()) process["rows"] = size->first, process["cols"] = size->second;
  }
  Json request = {{"op", "start"},
                  {"hostname", config.hostname.empty() ? container.id.substr(0, 12) : config.hostname},
                  {"rootfs", rootfs_json(config, scratch_disk, mounts.root_tag)},
                  {"process", process}};
  if (!mounts.guest.empty()) request["mounts"] = mounts.guest;
  request["identity"] = identity_json();
  if (config.network) {
    Json interface = {{"name", "eth0"}, {"address", config.network->address}};
    if (!config.network->gateway.empty()) interface["gateway"] = config.network->gateway;
    if (!config.network->mac.empty()) interface["mac"] = config.network->mac;
    request["network"] = {{"interfaces", Json::array({interface})}, {"dns", config.network->dns}};
  } else if (network) {
    request["network"] = network->guest_network();
  } else {
    request["network"] = net::guest_network_without_interface(config.net);
  }
  return request;
}

struct Prepared {
  std::vector<virtio::BlkOptions> disks;
  bool scratch = false;
};

Result<Prepared> prepare_disks(const Paths& paths, const Container& container) {
  if (container.config.host_rootfs) return Prepared{};  // its root comes over virtio-fs
  ImageStore images = HYPER_TRY(ImageStore::open(paths.images()));
  const Image image = HYPER_TRY(images.find(container.config.image_id));
  const auto rootfs = HYPER_TRY(ensure_rootfs(images, image, [](const std::string& line) {
    std::fprintf(stderr, "%s\n", line.c_str());
  }));
  Prepared prepared;
  prepared.disks.push_back(virtio::BlkOptions{.path = rootfs.string(), .read_only = true, .serial = {}, .io_thread = true});
  // --rm containers never come back, so their writable layer lives in guest memory.
  if (!container.config.auto_remove) {
    const auto scratch = container.dir / kScratchDiskName;
    if (::access(scratch.c_str(), F_OK) != 0) HYPER_CHECK(create_scratch_disk(paths.root, scratch, kScratchDiskMib));
    prepared.disks.push_back(virtio::BlkOptions{.path = scratch.string(), .read_only = false, .serial = {}, .io_thread = true});
    prepared.scratch = true;
  }
  return prepared;
}

double ms(uint64_t from, uint64_t to) { return to > from ? static_cast<double>(to - from) / 1e6 : 0.0; }

// All host times are CLOCK_MONOTONIC; guest times are the guest's own clock, which started
// near the boot-timer write, so guest intervals are used as intervals only. A VM restored
// from a template never wrote the boot timer (kernel_to_init is 0): its exec is placed at
// the host's receipt of the start reply instead.
void print_timings(const MonitorOptions& options, const RunResult& run, const Json& started, uint64_t reply_ns,
                   uint64_t exited_ns, uint64_t done_ns) {
  const Json timings = started.value("timings", Json::object());
  const uint64_t init_ns = timings.value("init_ns", 0ull), exec_ns = timings.value("exec_ns", 0ull);
  const uint64_t received_ns = timings.value("start_received_ns", exec_ns);
  const uint64_t exec_host_ns = run.timings.boot_timer_ns ? run.timings.boot_timer_ns + (exec_ns - init_ns) : reply_ns;
  std::fprintf(stderr,
               "hyper: timings: vmm_setup_ms=%.3f kernel_to_init_ms=%.3f init_to_exec_ms=%.3f "
               "start_to_exec_ms=%.3f exec_to_exit_ms=%.3f teardown_ms=%.3f total_ms=%.3f\n",
               ms(options.start_ns, run.timings.first_kvm_run_ns),
               ms(run.timings.first_kvm_run_ns, run.timings.boot_timer_ns), ms(init_ns, exec_ns),
               ms(received_ns, exec_ns), ms(exec_host_ns, exited_ns),
               ms(exited_ns, done_ns), ms(options.start_ns, done_ns));
}

struct Ended {
  int status;
  std::string error;
  bool started = false;  // the container's process ran
};

// Opening a tap that does not exist would create a fresh one, unconnected to anything.
Status check_tap(const ContainerConfig& config) {
  if (!config.network || ::if_nametoindex(config.network->tap.c_str()) != 0) return {};
  return make_error(Errc::not_found, "no network interface \"" + config.network->tap +
                                         "\" for --tap (create it first: ip tuntap add " + config.network->tap +
                                         " mode tap)");
}

// What the VMM process tells its monitor (one JSON object a line): how it entered its
// jail, and the error it ended with.
void report_to_monitor(int fd, const Json& message) {
  const std::string line = message.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
  (void)write_all(fd, line.data(), line.size(), "the monitor");
}

// Why a VM that stopped too early did, for the container's recorded error: its exit and
// the end of its console.
std::string how_the_vm_ended(const Result<RunResult>& run) {
  if (!run.ok()) return " (" + run.error().message + ")";
  std::string how = std::string(" (") + exit_kind_name(run->exit.kind);
  if (!run->exit.detail.empty()) how += ": " + run->exit.detail;
  std::string_view tail = run->console_tail;
  if (tail.size() > 300) tail = tail.substr(tail.size() - 300);
  if (!tail.empty()) how += "; console ends: " + std::string(tail);
  return how + ")";
}

// With --template: the snapshot of the template of this VM's shape (made on first use),
// for the VM to resume instead of booting.
Result<std::filesystem::path> template_for(const Paths& paths, const VmSpec& spec) {
  if (!spec.shares.empty())
    return make_error(Errc::unsupported, "--template: a container with host directories or files mounted (virtio-fs) "
                                         "cannot start from a template; leave --template out");
  TemplateShape shape{spec.memory_mib, spec.cpus, {}, spec.nets.size()};
  for (const auto& disk : spec.disks) shape.read_only_disks.push_back(disk.read_only);
  return ensure_template(paths.root / "templates", shape,
                         [](const std::string& line) { std::fprintf(stderr, "hyper: %s\n", line.c_str()); });
}

struct VmmSetup {
  bool jailed = false;
  int report_fd = -1;
  int input_listen_fd = -1;  // listen_for_input()
  const net::ContainerNetwork* network = nullptr;  // the container's network, when on one
};

Ended run_vm(const Paths& paths, const Container& container, const MonitorOptions& options, int signal_fd,
             const VmmSetup& setup) {
  if (auto tap = check_tap(container.config); !tap.ok()) return {125, tap.error().message};
  auto disks = prepare_disks(paths, container);
  if (!disks.ok()) return {125, disks.error().message};
  // A jailed VMM reaches the container's directory as its working directory only.
  auto mounts = volume::attach_mounts(paths.volumes(), container, disks->disks.size(),
                                      setup.jailed ? std::filesystem::path(".") : container.dir);
  if (!mounts.ok()) return {125, mounts.error().message};
  auto log = LogWriter::open(container.dir / "container.log");
  if (!log.ok()) return {125, log.error().message};
  UniqueFd console(::open((container.dir / "console.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  UniqueFd violation(::open((container.dir / kSeccompViolationFile).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));

  VmSpec spec;
  spec.dir = container.dir;
  spec.sockets_in_cwd = setup.jailed;
  spec.cpus = container.config.cpus;
  spec.memory_mib = container.config.memory_mib;
  spec.disks = disks->disks;
  spec.disks.insert(spec.disks.end(), mounts->disks.begin(), mounts->disks.end());
  spec.shares = mounts->shares;
  if (const auto& net = container.config.network) {
    spec.nets.push_back(virtio::NetOptions{.tap = net->tap, .mac = net->mac.empty() ? std::nullopt : virtio::parse_mac(net->mac)});
  } else if (setup.network) {
    const net::EndpointState& endpoint = setup.network->state();
    spec.nets.push_back(virtio::NetOptions{.tap = endpoint.tap, .tap_fd = setup.network->tap_fd(), .mac = virtio::parse_mac(endpoint.mac)});
  }
  spec.console_fd = console.get();
  spec.start_ns = options.start_ns;
  spec.seccomp = container.config.seccomp;
  spec.seccomp_report_fd = violation.get();
  if (container.config.from_template) {
    auto snapshot = template_for(paths, spec);
    if (!snapshot.ok()) return {125, snapshot.error().message};
    spec.restore_from = *snapshot;
  }
  if (setup.jailed) {
    spec.before_run = [&]() -> Status {
      const std::string how = HYPER_TRY(enter_jail(container.dir));
      report_to_monitor(setup.report_fd, {{"root", how}});
      return {};
    };
  }
  auto session = VmSession::boot(spec, kBootTimeoutMs);
  if (!session.ok()) return {125, session.error().message};
  VmSession& vm = **session;

  std::optional<RawTerminal> raw;
  auto reply = vm.agent().call(start_request(container, disks->scratch, setup.network, *mounts), kBootTimeoutMs);
  if (!reply.ok() || !reply->value("ok", false)) {
    // The agent's refusal carries Docker's code for a missing or non-executable command.
    int code = 125;
    const std::string message = reply.ok() ? reply_error(*reply, &code).message : reply.error().message;
    vm.agent().close_write();
    (void)vm.wait(5000);
    return {code, message};
  }
  const Json& started = *reply;
  const uint64_t reply_ns = now_ns();
  options.on_started(0, "");
  const bool started_ok = true;
  if (options.attach && container.config.tty) raw.emplace();
  RelayOptions relay;
  relay.attach_stdout = options.attach;
  relay.forward_stdin = options.attach && container.config.open_stdin;
  relay.tty = container.config.tty;
  relay.log = &log.value();
  relay.stopped_fd = vm.stopped_fd();
  relay.signal_fd = signal_fd;
  relay.input_listen_fd = setup.input_listen_fd;
  const RelayOutcome outcome = relay_stdio(vm.agent(), relay);
  (void)log->flush();
  const uint64_t exited_ns = now_ns();
  vm.agent().close_write();
  auto run = vm.wait(5000);
  raw.reset();
  if (options.print_timings && run.ok()) print_timings(options, *run, started, reply_ns, exited_ns, now_ns());
  if (outcome.status) return {*outcome.status, "", started_ok};
  return {137, outcome.error + how_the_vm_ended(run), started_ok};
}

// The VMM process's end of the three pipes; the monitor holds the other ends.
struct VmmChannels {
  int go = -1;      // one byte once the monitor has recorded the VMM and moved it into its cgroup
  int report = -1;  // report_to_monitor()
  int input = -1;   // listen_for_input()
};

// A detached container with open stdin takes its input from hyperd through a socket in
// its directory (kInputSocket). The monitor binds it: the jailed VMM, whose relay serves
// it, sees that directory read-only.
Result<UniqueFd> listen_for_input(const std::filesystem::path& dir) { return listen_in_dir(dir, kInputSocket); }

[[noreturn]] void vmm_main(const Paths& paths, const Container& container, const MonitorOptions& options,
                           const VmmChannels& channels, bool jailed, const net::ContainerNetwork* network) {
  // Ends with its monitor, so that a killed monitor takes the VM along.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  sigset_t child;
  sigemptyset(&child);
  sigaddset(&child, SIGCHLD);
  ::pthread_sigmask(SIG_UNBLOCK, &child, nullptr);  // the monitor blocked it for itself
  const auto fail = [&](const std::string& error) {
    options.on_started(125, error);
    report_to_monitor(channels.report, {{"error", error}});
    _exit(125);
  };
  if (jailed) {
    if (auto unshared = unshare_namespaces(); !unshared.ok()) fail(unshared.error().message);
    if (::chdir(container.dir.c_str()) != 0) fail(Error::from_errno("chdir " + container.dir.string()).message);
  }
  char go = 0;
  while (::read(channels.go, &go, 1) < 0 && errno == EINTR) {
  }
  if (go != 1) _exit(125);  // the monitor is gone
  ::close(channels.go);
  auto signals = forwarded_signals_fd();
  UniqueFd signal_fd = signals.ok() ? std::move(signals).value() : UniqueFd();
  Ended ended = run_vm(paths, container, options, signal_fd.get(), VmmSetup{jailed, channels.report, channels.input, network});
  if (!ended.started) options.on_started(ended.status, ended.error);
  report_to_monitor(channels.report, {{"error", ended.error}});
  _exit(ended.status & 0xff);
}

// What the monitor sets up for its VMM before it runs: the cgroup with the limits (or
// why there is none).
JailState plan_jail(const Container& container, bool jailed) {
  JailState jail;
  if (jailed) {
    jail.namespaces = jail_namespaces();
  } else {
    jail.error = "hyper runs as uid " + std::to_string(::geteuid()) + "; the jail needs root";
  }
  const CgroupLimits limits = cgroup_limits(container.config.cpus, container.config.memory_mib);
  jail.memory_max = memory_max_text(limits);
  jail.cpu_max = cpu_max_text(limits);
  auto root = cgroup_root();
  if (!root.ok()) {
    jail.limits_error = root.error().message;
    return jail;
  }
  auto group = container_cgroup_path(*root, container.id);
  if (group.ok()) jail.cgroup = group->string();
  if (auto v2 = check_cgroup2(*root); !v2.ok()) {
    jail.limits_error = v2.error().message;
    return jail;
  }
  auto made = create_container_cgroup(*root, container.id, limits);
  if (!made.ok()) jail.limits_error = made.error().message;
  jail.limits_enforced = made.ok();
  return jail;
}

void move_vmm(JailState& jail, pid_t vmm) {
  if (!jail.limits_enforced) return;
  auto moved = move_to_cgroup(jail.cgroup, vmm);
  if (moved.ok()) return;
  jail.limits_enforced = false;
  jail.limits_error = moved.error().message;
  (void)remove_cgroup(jail.cgroup);
}

void warn_unenforced(const MonitorOptions& options, const JailState& jail) {
  if (!jail.error.empty()) options.on_warning("the container's VMM runs without its jail: " + jail.error);
  if (!jail.limits_enforced)
    options.on_warning("the container's memory and CPU limits are not enforced: " + jail.limits_error);
}

int exit_code(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return 125;
}

// Until the VMM exits: forwards the signals someone sent the monitor (a terminal's own
// signals reach the VMM, in the same process group, directly) and reads its reports.
Ended supervise(pid_t vmm, int signal_fd, int report_fd, const std::function<void(const std::string&)>& on_root) {
  Ended ended{125, ""};
  std::string pending;
  bool reaped = false, report_open = true;
  while (!reaped || report_open) {
    pollfd fds[2] = {{reaped ? -1 : signal_fd, POLLIN, 0}, {report_open ? report_fd : -1, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    signalfd_siginfo info{};
    if ((fds[0].revents & POLLIN) && ::read(signal_fd, &info, sizeof info) == sizeof info) {
      int status = 0;
      if (info.ssi_signo == SIGCHLD) {
        if (::waitpid(vmm, &status, WNOHANG) == vmm) reaped = true, ended.status = exit_code(status);
      } else if (info.ssi_code <= 0) {  // kill(2), sigqueue(3), tgkill(2): not from a terminal
        ::kill(vmm, static_cast<int>(info.ssi_signo));
      }
    }
    if (fds[1].revents & (POLLIN | POLLHUP)) {
      char buf[4096];
      const ssize_t n = ::read(report_fd, buf, sizeof buf);
      if (n <= 0) {
        report_open = n < 0 && errno == EINTR;
        continue;
      }
      pending.append(buf, static_cast<size_t>(n));
      for (size_t newline; (newline = pending.find('\n')) != std::string::npos; pending.erase(0, newline + 1)) {
        const Json message = Json::parse(pending.substr(0, newline), nullptr, false);
        if (!message.is_object()) continue;
        if (message.contains("root") && message["root"].is_string()) on_root(message["root"].get<std::string>());
        if (message.contains("error") && message["error"].is_string())
          ended.error = message["error"].get<std::string>();
      }
    }
  }
  return ended;
}

// Blocks what the monitor forwards and SIGCHLD, for its signalfd, until it is done.
class MonitorSignals {
 public:
  MonitorSignals() {
    sigemptyset(&set_);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD}) sigaddset(&set_, sig);
    ::pthread_sigmask(SIG_BLOCK, &set_, &previous_);
    fd_.reset(::signalfd(-1, &set_, SFD_CLOEXEC | SFD_NONBLOCK));
  }
  ~MonitorSignals() { ::pthread_sigmask(SIG_SETMASK, &previous_, nullptr); }
  MonitorSignals(const MonitorSignals&) = delete;
  MonitorSignals& operator=(const MonitorSignals&) = delete;
  [[nodiscard]] int fd() const { return fd_.get(); }

 private:
  sigset_t set_{}, previous_{};
  UniqueFd fd_;
};

Result<pid_t> fork_plain() {
  const pid_t pid = ::fork();
  if (pid < 0) return Error::from_errno("fork");
  return pid;
}

struct Pipe {
  UniqueFd read, write;
  static Result<Pipe> create() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return Error::from_errno("pipe");
    return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
  }
};

// Forks the VMM process (which never returns from here); its pid, in the monitor.
Result<pid_t> spawn_vmm(const Paths& paths, const Container& container, const MonitorOptions& options, Pipe& go,
                        Pipe& report, int input, int monitor_signal_fd, bool jailed, const net::ContainerNetwork* network) {
  // Nothing buffered twice: the VMM process leaves with _exit.
  std::fflush(stdout);
  std::fflush(stderr);
  auto forked = jailed ? fork_into_pid_namespace() : fork_plain();
  if (forked.ok() && *forked == 0) {
    go.write.reset();
    report.read.reset();
    ::close(monitor_signal_fd);
    vmm_main(paths, container, options, VmmChannels{go.read.get(), report.write.get(), input}, jailed, network);
  }
  go.read.reset();
  report.write.reset();
  return forked;
}

void record_running(const ContainerStore& store, const Container& container, pid_t vmm, const JailState& jail,
                    const net::ContainerNetwork* network) {
  const auto own_ticks = process_start_ticks(::getpid());
  (void)store.update_state(container, [&](ContainerState& state) {
    state = ContainerState{};
    state.status = ContainerStatus::running;
    state.pid = ::getpid();
    state.pid_start_ticks = own_ticks.ok() ? own_ticks.value() : 0;
    state.vmm_pid = vmm;
    state.started_at = now_rfc3339();
    state.jail = jail;
    if (network) state.endpoint = network->state();
  });
}

}  // namespace

int run_monitor(const Paths& paths, ContainerStore& store, const Container& container, const MonitorOptions& options) {
  // Before the state says "running": whoever holds the claim has the scratch disk.
  auto claim = store.claim_vm(container);
  if (!claim.ok() || !*claim) {
    const std::string error = claim.ok() ? "container " + container.id.substr(0, 12) +
                                               " is busy: another hyper command is starting or committing it"
                                         : claim.error().message;
    options.on_started(125, error);
    return 125;
  }
  const bool jailed = ::geteuid() == 0;
  JailState jail = plan_jail(container, jailed);
  MonitorSignals signals;
  auto go = Pipe::create();
  auto report = Pipe::create();
  if (!go.ok() || !report.ok() || signals.fd() < 0) {
    if (jail.limits_enforced) (void)remove_cgroup(jail.cgroup);
    options.on_started(125, !go.ok() ? go.error().message : !report.ok() ? report.error().message : "signalfd failed");
    return 125;
  }
  std::unique_ptr<net::ContainerNetwork> network;
  if (!container.config.network && !container.config.net.none()) {
    auto attached = net::ContainerNetwork::attach(paths, store, container);
    if (!attached.ok()) {
      if (jail.limits_enforced) (void)remove_cgroup(jail.cgroup);
      options.on_started(125, attached.error().message);
      return 125;
    }
    network = std::move(attached).value();
  }
  UniqueFd input;
  if (container.config.open_stdin && !options.attach) {
    auto listening = listen_for_input(container.dir);
    if (listening.ok()) input = std::move(listening).value();
    else options.on_warning("the container's input cannot be attached: " + listening.error().message);
  }
  auto forked = spawn_vmm(paths, container, options, *go, *report, input.get(), signals.fd(), jailed, network.get());
  input.reset();  // the VMM's relay serves it
  if (!forked.ok()) {
    if (jail.limits_enforced) (void)remove_cgroup(jail.cgroup);
    options.on_started(125, forked.error().message);
    return 125;
  }
  const pid_t vmm = *forked;
  move_vmm(jail, vmm);
  if (network)
    if (auto resolver = network->start_resolver(); !resolver.ok())
      options.on_warning("container names on network " + container.config.net.network + " do not resolve: " + resolver.error().message);
  auto meter = usage::Meter::open(paths, container);
  if (!meter.ok()) options.on_warning("the container's usage is not metered: " + meter.error().message);
  warn_unenforced(options, jail);
  options.release_started();
  record_running(store, container, vmm, jail, network.get());
  if (meter.ok()) meter->start();
  crash_point("monitor-running");
  const char start = 1;
  (void)write_all(go->write.get(), &start, 1, "the VMM");
  go->write.reset();
  Ended ended = supervise(vmm, signals.fd(), report->read.get(), [&](const std::string& how) {
    (void)store.update_state(container, [&](ContainerState& state) {
      if (state.jail) state.jail->root = how;
    });
  });
  if (meter.ok()) meter->stop();
  // The jailed VMM cannot unlink what it bound: its view of the directory is read-only.
  // Before the claim goes, after which the next VMM may bind them.
  remove_session_sockets(container.dir);
  ::unlink((container.dir / kInputSocket).c_str());
  // The VM is gone: released first, so that whoever sees "exited" (a commit right after
  // a stop) can claim the disks at once.
  network.reset();
  claim->reset();
  if (jail.limits_enforced) (void)remove_cgroup(jail.cgroup);
  (void)store.update_state(container, [&](ContainerState& state) {
    state.status = ContainerStatus::exited;
    state.pid = 0;
    state.vmm_pid = 0;
    state.exit_code = ended.status;
    state.error = ended.error;
    state.finished_at = now_rfc3339();
    state.endpoint.reset();
  });
  if (container.config.auto_remove) {
    const auto watchers_done = store.wait_for_watchers(container);
    (void)store.remove(container);
    if (auto volumes = volume::VolumeStore::open(paths.volumes()); volumes.ok())
      volume::remove_anonymous_volumes(*volumes, store, container);
  }
  return ended.status;
}

}  // namespace hyper::runtime
