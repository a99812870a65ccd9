#include "runtime/monitor.hpp"

#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <optional>

#include "runtime/crash_point.hpp"
#include "runtime/disk_images.hpp"
#include "runtime/image_store.hpp"
#include "runtime/log_file.hpp"
#include "runtime/stdio_relay.hpp"
#include "runtime/vm_session.hpp"
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

Json start_request(const Container& container, bool scratch_disk) {
  const auto& config = container.config;
  std::vector<std::string> args = config.entrypoint;
  args.insert(args.end(), config.cmd.begin(), config.cmd.end());
  Json process = {{"args", args},
                  {"env", config.env},
                  {"cwd", config.working_dir.empty() ? "/" : config.working_dir},
                  {"user", config.user},
                  {"tty", config.tty},
                  {"stdin", config.open_stdin},
                  {"rlimits", Json::array({{{"type", "nofile"}, {"soft", 1048576}, {"hard", 1048576}}})}};
  if (config.tty) {
    if (auto size = terminal_size()) process["rows"] = size->first, process["cols"] = size->second;
  }
  Json request = {{"op", "start"},
                  {"hostname", config.hostname.empty() ? container.id.substr(0, 12) : config.hostname},
                  {"rootfs", {{"image", "/dev/vda"}, {"writable", scratch_disk ? "/dev/vdb" : ""}}},
                  {"process", process}};
  if (config.network) {
    Json interface = {{"name", "eth0"}, {"address", config.network->address}};
    if (!config.network->gateway.empty()) interface["gateway"] = config.network->gateway;
    request["network"] = {{"interfaces", Json::array({interface})}, {"dns", config.network->dns}};
  }
  return request;
}

struct Prepared {
  std::vector<virtio::BlkOptions> disks;
  bool scratch = false;
};

Result<Prepared> prepare_disks(const Paths& paths, const Container& container) {
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
// near the boot-timer write, so guest intervals are used as intervals only.
void print_timings(const MonitorOptions& options, const RunResult& run, const Json& started, uint64_t exited_ns,
                   uint64_t done_ns) {
  const Json timings = started.value("timings", Json::object());
  const uint64_t init_ns = timings.value("init_ns", 0ull), exec_ns = timings.value("exec_ns", 0ull);
  const uint64_t received_ns = timings.value("start_received_ns", exec_ns);
  std::fprintf(stderr,
               "hyper: timings: vmm_setup_ms=%.3f kernel_to_init_ms=%.3f init_to_exec_ms=%.3f "
               "start_to_exec_ms=%.3f exec_to_exit_ms=%.3f teardown_ms=%.3f total_ms=%.3f\n",
               ms(options.start_ns, run.timings.first_kvm_run_ns),
               ms(run.timings.first_kvm_run_ns, run.timings.boot_timer_ns), ms(init_ns, exec_ns),
               ms(received_ns, exec_ns), ms(run.timings.boot_timer_ns + (exec_ns - init_ns), exited_ns),
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

Ended run_vm(const Paths& paths, const Container& container, const MonitorOptions& options, int signal_fd) {
  if (auto tap = check_tap(container.config); !tap.ok()) return {125, tap.error().message};
  auto disks = prepare_disks(paths, container);
  if (!disks.ok()) return {125, disks.error().message};
  auto log = LogWriter::open(container.dir / "container.log");
  if (!log.ok()) return {125, log.error().message};
  UniqueFd console(::open((container.dir / "console.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  UniqueFd violation(::open((container.dir / kSeccompViolationFile).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));

  VmSpec spec;
  spec.dir = container.dir;
  spec.cpus = container.config.cpus;
  spec.memory_mib = container.config.memory_mib;
  spec.disks = disks->disks;
  if (const auto& net = container.config.network) {
    spec.nets.push_back(virtio::NetOptions{.tap = net->tap, .mac = net->mac.empty() ? std::nullopt : virtio::parse_mac(net->mac)});
  }
  spec.console_fd = console.get();
  spec.start_ns = options.start_ns;
  spec.seccomp = container.config.seccomp;
  spec.seccomp_report_fd = violation.get();
  auto session = VmSession::boot(spec, kBootTimeoutMs);
  if (!session.ok()) return {125, session.error().message};
  VmSession& vm = **session;

  std::optional<RawTerminal> raw;
  auto reply = vm.agent().call(start_request(container, disks->scratch), kBootTimeoutMs);
  if (!reply.ok() || !reply->value("ok", false)) {
    // The agent's refusal carries Docker's code for a missing or non-executable command.
    int code = 125;
    const std::string message = reply.ok() ? reply_error(*reply, &code).message : reply.error().message;
    vm.agent().close_write();
    (void)vm.wait(5000);
    return {code, message};
  }
  const Json& started = *reply;
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
  const RelayOutcome outcome = relay_stdio(vm.agent(), relay);
  (void)log->flush();
  const uint64_t exited_ns = now_ns();
  vm.agent().close_write();
  auto run = vm.wait(5000);
  raw.reset();
  if (options.print_timings && run.ok()) print_timings(options, *run, started, exited_ns, now_ns());
  if (outcome.status) return {*outcome.status, "", started_ok};
  return {137, outcome.error, started_ok};
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
  auto signals = forwarded_signals_fd();
  UniqueFd signal_fd = signals.ok() ? std::move(signals).value() : UniqueFd();
  const auto own_ticks = process_start_ticks(::getpid());
  const uint64_t ticks = own_ticks.ok() ? own_ticks.value() : 0;
  (void)store.update_state(container, [&](ContainerState& state) {
    state = ContainerState{};
    state.status = ContainerStatus::running;
    state.pid = ::getpid();
    state.pid_start_ticks = ticks;
    state.started_at = now_rfc3339();
  });
  crash_point("monitor-running");
  Ended ended = run_vm(paths, container, options, signal_fd.get());
  if (!ended.started) options.on_started(ended.status, ended.error);
  // The VM is gone: released first, so that whoever sees "exited" (a commit right after
  // a stop) can claim the disks at once.
  claim->reset();
  (void)store.update_state(container, [&](ContainerState& state) {
    state.status = ContainerStatus::exited;
    state.pid = 0;
    state.exit_code = ended.status;
    state.error = ended.error;
    state.finished_at = now_rfc3339();
  });
  if (container.config.auto_remove) (void)store.remove(container);
  return ended.status;
}

}  // namespace hyper::runtime
