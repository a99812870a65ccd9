// hyper-runtime create, start, state, kill, delete, ps, features.
//
// create makes the container record and forks its monitor, which waits on the start
// socket; the monitor is the pid the caller gets (the process podman's conmon and
// containerd's shim reap), its stdio is the container's, and it exits with the
// container's status. start boots the VM and returns once the process runs.
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli/runtime_cli.hpp"
#include "runtime/container_control.hpp"
#include "runtime/dir_socket.hpp"
#include "runtime/monitor.hpp"
#include "runtime/oci/bundle.hpp"
#include "runtime/oci/mount_points.hpp"
#include "runtime/oci/console.hpp"
#include "vmm/file_io.hpp"

namespace hyper::cli::oci {
namespace {

using Json = nlohmann::json;
namespace rt = hyper::runtime;

constexpr int kKillWaitMs = 10'000;

Result<std::string> one_id(const Flags& flags, const char* command) {
  if (flags.positional.size() != 1)
    return make_error(Errc::invalid_argument, std::string("hyper-runtime ") + command + " takes exactly one container id");
  return flags.positional.front();
}

// In the monitor, before anything of its own: stdio is the caller's (or the terminal),
// nothing else of create's stays open, and it waits for `start`.
[[noreturn]] void monitor_main(const rt::oci::StateDir& state, rt::ContainerStore& store, const rt::Container& container,
                               std::optional<rt::oci::Pty> pty, UniqueFd listener) {
  if (pty) {
    if (auto taken = rt::oci::take_terminal(*pty); !taken.ok()) {
      std::fprintf(stderr, "hyper-runtime: %s\n", taken.error().message.c_str());
      _exit(125);
    }
    pty.reset();
  } else {
    ::setsid();
  }
  // Only stdio (the terminal's, by now) and the start socket: an fd the caller let us
  // inherit must not stay open for the container's life.
  const unsigned keep = static_cast<unsigned>(listener.get());
  if (keep > 3) ::close_range(3, keep - 1, 0);
  ::close_range(keep + 1, ~0u, 0);
  int conn = -1;
  while ((conn = ::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC)) < 0 && errno == EINTR) {
  }
  if (conn < 0) _exit(125);
  listener.reset();
  char request = 0;
  if (::read(conn, &request, 1) != 1) _exit(125);
  // It stays close-on-exec: the VMM process that reports the start on it is forked, not
  // executed, and what the VMM executes (virtiofsd) must not keep `start` waiting for EOF.
  rt::MonitorOptions options = rt::start_reporting_options(conn);
  options.attach = true;
  _exit(rt::run_monitor(state.vm_paths(), store, container, options) & 0xff);
}

Result<std::optional<rt::oci::Pty>> console_for(const rt::ContainerConfig& config, const std::optional<std::string>& socket) {
  if (!config.tty) {
    if (socket) return make_error(Errc::invalid_argument, "--console-socket given, but process.terminal is false");
    return std::optional<rt::oci::Pty>();
  }
  if (!socket) return make_error(Errc::invalid_argument, "process.terminal is true: --console-socket is required");
  rt::oci::Pty pty = HYPER_TRY(rt::oci::open_pty(0, 0));
  HYPER_CHECK(rt::oci::send_console(*socket, pty));
  return std::optional(std::move(pty));
}

Status create(const Global& global, const std::string& id, const Flags& flags) {
  HYPER_CHECK(rt::oci::check_container_id(id));
  if (::geteuid() != 0)
    return make_error(Errc::permission_denied, "hyper-runtime runs as root: the bundle's root reaches the VM through "
                                               "virtiofsd, which must run as root");
  const std::filesystem::path bundle_dir = std::filesystem::absolute(flags.last("bundle").value_or("."));
  const rt::oci::Bundle bundle = HYPER_TRY(rt::oci::load_bundle(bundle_dir));
  if (const auto fds = flags.last("preserve-fds"); fds && *fds != "0")
    return make_error(Errc::invalid_argument, "--preserve-fds: a VM cannot take host file descriptors");
  const auto state = HYPER_TRY(rt::oci::StateDir::open(global.root));
  const rt::Paths paths = state.vm_paths();
  rt::ContainerStore store = HYPER_TRY(rt::ContainerStore::open(paths.containers()));
  rt::oci::Record record{id, bundle_dir.lexically_normal().string(), "", rt::now_rfc3339(), 0, 0, bundle.annotations};
  HYPER_CHECK(state.create(record));
  auto made = [&]() -> Status {
    HYPER_CHECK(rt::oci::make_mount_points(bundle.config));
    const rt::Container container = HYPER_TRY(rt::create_container(paths, store, bundle.config, std::nullopt));
    record.container_id = container.id;
    HYPER_CHECK(state.save(record));
    auto pty = HYPER_TRY(console_for(bundle.config, flags.last("console-socket")));
    UniqueFd listener = HYPER_TRY(rt::listen_in_dir(state.dir(id), rt::oci::kStartSocket, 1));
    std::fflush(stdout);
    std::fflush(stderr);
    const pid_t pid = ::fork();
    if (pid < 0) return Error::from_errno("fork the container's monitor");
    if (pid == 0) monitor_main(state, store, container, std::move(pty), std::move(listener));
    record.pid = pid;
    const auto ticks = rt::process_start_ticks(pid);
    record.pid_start_ticks = ticks.ok() ? *ticks : 0;
    HYPER_CHECK(state.save(record));
    if (const auto pid_file = flags.last("pid-file")) HYPER_CHECK(write_pid_file(*pid_file, pid));
    return {};
  }();
  if (!made.ok()) {
    if (record.pid) ::kill(record.pid, SIGKILL);
    if (!record.container_id.empty()) (void)rt::remove_container(paths, store, record.container_id, true, true);
    state.remove(id);
  }
  return made;
}

Status start(const Context& context) {
  const std::string status = status_of(context);
  if (status != "created") return make_error(Errc::invalid_argument, "cannot start a container that is " + status);
  UniqueFd conn = HYPER_TRY(rt::connect_in_dir(context.state.dir(context.record.id), rt::oci::kStartSocket,
                                               "the container's monitor"));
  const char request = 's';
  HYPER_CHECK(write_all(conn.get(), &request, 1, "the container's monitor"));
  const rt::Container container = HYPER_TRY(context.store.find(context.record.container_id));
  const rt::StartOutcome outcome = rt::read_start_outcome(conn.get(), container);
  ::unlink((context.state.dir(context.record.id) / rt::oci::kStartSocket).c_str());
  if (outcome.code != 0) return make_error(Errc::invalid_argument, outcome.error);
  return {};
}

bool wait_gone(pid_t pid, uint64_t ticks) {
  for (int waited = 0; waited < kKillWaitMs; waited += 20) {
    if (!rt::process_alive(pid, ticks)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

Status kill(const Context& context, int sig) {
  const std::string status = status_of(context);
  if (status == "stopped") return make_error(Errc::invalid_argument, "container " + context.record.id + " is not running");
  if (status == "creating") return make_error(Errc::invalid_argument, "container " + context.record.id + " is not created yet");
  if (status == "created") {
    // Its monitor waits for start: the signal ends it, and the container with it.
    if (context.record.pid <= 0 || ::kill(context.record.pid, sig) != 0) return Error::from_errno("kill");
    return {};
  }
  const rt::Container container = HYPER_TRY(context.store.find(context.record.container_id));
  const Status sent = rt::signal_container(container, sig);
  // A VM whose agent no longer answers still goes with its monitor.
  if (!sent.ok() && sig == SIGKILL) return rt::kill_container(context.store, container);
  return sent;
}

Status remove(const Context& context, bool force) {
  const std::string status = status_of(context);
  if (status == "running" && !force)
    return make_error(Errc::invalid_argument, "cannot delete container " + context.record.id +
                                                  " that is not stopped: running (use --force)");
  if (status != "stopped" && context.record.pid > 0) {
    ::kill(context.record.pid, SIGKILL);
    if (!wait_gone(context.record.pid, context.record.pid_start_ticks))
      return make_error(Errc::io, "the monitor of container " + context.record.id + " did not end");
  }
  if (!context.record.container_id.empty())
    HYPER_CHECK(rt::remove_container(context.state.vm_paths(), context.store, context.record.container_id, true, true));
  context.state.remove(context.record.id);
  return {};
}

// The flags of a command that names one container, and that container.
struct Named {
  Flags flags;
  Context context;
};

Result<Named> named_container(const Global& global, const std::vector<std::string>& args, std::span<const FlagSpec> spec,
                              const char* command) {
  Flags flags = HYPER_TRY(parse_flags(args, spec));
  const std::string id = HYPER_TRY(one_id(flags, command));
  Context context = HYPER_TRY(open_container(global, id));
  return Named{std::move(flags), std::move(context)};
}

std::vector<pid_t> host_pids(const Context& context) {
  std::vector<pid_t> pids;
  if (status_of(context) == "stopped") return pids;
  pids.push_back(context.record.pid);
  const auto container = context.store.find(context.record.container_id);
  if (container.ok() && container->state.vmm_pid > 0) pids.push_back(container->state.vmm_pid);
  return pids;
}

}  // namespace

int cmd_create(const Global& global, const std::vector<std::string>& args) {
  static constexpr FlagSpec kFlags[] = {{"bundle", 'b', true},       {"pid-file", 0, true},   {"console-socket", 0, true},
                                        {"no-pivot", 0, false},      {"no-new-keyring", 0, false},
                                        {"preserve-fds", 0, true}};
  auto flags = parse_flags(args, kFlags);
  if (!flags.ok()) return fail(global, flags.error().message);
  auto id = one_id(*flags, "create");
  if (!id.ok()) return fail(global, id.error().message);
  auto created = create(global, *id, *flags);
  return created.ok() ? 0 : fail(global, created.error().message);
}

int cmd_start(const Global& global, const std::vector<std::string>& args) {
  auto named = named_container(global, args, {}, "start");
  if (!named.ok()) return fail(global, named.error().message);
  auto started = start(named->context);
  return started.ok() ? 0 : fail(global, started.error().message);
}

int cmd_state(const Global& global, const std::vector<std::string>& args) {
  auto named = named_container(global, args, {}, "state");
  if (!named.ok()) return fail(global, named.error().message);
  const Json state = rt::oci::state_json(named->context.record, status_of(named->context));
  std::printf("%s\n", state.dump(2, ' ', false, Json::error_handler_t::replace).c_str());
  return 0;
}

int cmd_kill(const Global& global, const std::vector<std::string>& args) {
  static constexpr FlagSpec kFlags[] = {{"all", 'a', false}};
  auto flags = parse_flags(args, kFlags);
  if (!flags.ok()) return fail(global, flags.error().message);
  if (flags->positional.empty() || flags->positional.size() > 2)
    return fail(global, "hyper-runtime kill takes a container id and an optional signal");
  // --all is the main process's signal too: every process of the VM goes when it does.
  auto sig = rt::parse_signal(flags->positional.size() == 2 ? flags->positional[1] : "SIGTERM");
  if (!sig.ok()) return fail(global, sig.error().message);
  auto context = open_container(global, flags->positional[0]);
  if (!context.ok()) return fail(global, context.error().message);
  auto killed = kill(*context, *sig);
  return killed.ok() ? 0 : fail(global, killed.error().message);
}

int cmd_delete(const Global& global, const std::vector<std::string>& args) {
  static constexpr FlagSpec kFlags[] = {{"force", 'f', false}};
  auto flags = parse_flags(args, kFlags);
  if (!flags.ok()) return fail(global, flags.error().message);
  auto id = one_id(*flags, "delete");
  if (!id.ok()) return fail(global, id.error().message);
  auto context = open_container(global, *id);
  if (!context.ok()) {
    // runc: deleting what is not there is no error when forced; a directory a create
    // that died left without its record goes too.
    if (flags->has("force") && context.error().code == Errc::not_found) {
      if (auto state = rt::oci::StateDir::open(global.root); state.ok()) state->remove(*id);
      return 0;
    }
    return fail(global, context.error().message);
  }
  auto removed = remove(*context, flags->has("force"));
  return removed.ok() ? 0 : fail(global, removed.error().message);
}

int cmd_ps(const Global& global, const std::vector<std::string>& args) {
  static constexpr FlagSpec kFlags[] = {{"format", 'f', true}};
  auto named = named_container(global, args, kFlags, "ps");
  if (!named.ok()) return fail(global, named.error().message);
  const std::string format = named->flags.last("format").value_or("table");
  if (format != "table" && format != "json") return fail(global, "--format must be table or json");
  const std::vector<pid_t> pids = host_pids(named->context);
  if (format == "json") {
    std::printf("%s\n", Json(pids).dump().c_str());
    return 0;
  }
  std::printf("PID\n");
  for (pid_t pid : pids) std::printf("%d\n", pid);
  return 0;
}

int cmd_features(const Global&, const std::vector<std::string>&) {
  const Json features = {
      {"ociVersionMin", "1.0.0"},
      {"ociVersionMax", rt::oci::kSpecVersion},
      {"hooks", Json::array()},
      {"mountOptions", {"ro", "rw", "bind", "rbind", "size", "mode"}},
      {"linux",
       {{"namespaces", {"pid", "network", "ipc", "uts", "mount", "cgroup"}},
        {"capabilities", Json::array()},
        {"cgroup", {{"v1", false}, {"v2", false}, {"systemd", false}, {"systemdUser", false}}},
        {"seccomp", {{"enabled", false}}},
        {"apparmor", {{"enabled", false}}},
        {"selinux", {{"enabled", false}}}}},
      {"annotations", {{"io.hyper.runtime.vm", "true"}}}};
  std::printf("%s\n", features.dump(2).c_str());
  return 0;
}

}  // namespace hyper::cli::oci
