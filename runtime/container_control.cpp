#include "runtime/container_control.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <unistd.h>
#include <string.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "runtime/agent_client.hpp"
#include "runtime/crash_point.hpp"
#include "runtime/monitor.hpp"
#include "runtime/volume/virtiofs_daemon.hpp"
#include "vmm/file_io.hpp"
#include "runtime/volume/volume_users.hpp"

namespace hyper::runtime {
namespace {

constexpr auto kKillTimeout = std::chrono::seconds(10);
constexpr auto kPollInterval = std::chrono::milliseconds(20);

// What a detached monitor sends the starting command: warnings, then how the start went.
constexpr char kWarningTag = 'W';
constexpr char kStartedTag = 'S';

std::string one_line(std::string text) {
  for (auto& c : text) c = c == '\n' ? ' ' : c;
  return text;
}

}  // namespace

StartOutcome start_detached(const Paths& paths, ContainerStore& store, const Container& container) {
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) return {125, "pipe: " + std::string(std::strerror(errno)), {}};
  const pid_t pid = ::fork();
  if (pid < 0) return {125, "fork: " + std::string(std::strerror(errno)), {}};
  if (pid == 0) {
    ::close(ready[0]);
    ::setsid();
    const int null = ::open("/dev/null", O_RDWR);
    const int log = ::open((container.dir / "monitor.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    ::dup2(null, STDIN_FILENO);
    ::dup2(null, STDOUT_FILENO);
    ::dup2(log >= 0 ? log : null, STDERR_FILENO);
    // Nothing of the starter's stays open for the container's life (hyperd's answer
    // socket, a client's connection): only stdio and the channel to the starter.
    if (ready[1] > 3) ::close_range(3, static_cast<unsigned>(ready[1]) - 1, 0);
    ::close_range(static_cast<unsigned>(ready[1]) + 1, ~0u, 0);
    const int status = run_monitor(paths, store, container, start_reporting_options(ready[1]));
    _exit(status & 0xff);
  }
  ::close(ready[1]);
  StartOutcome outcome = read_start_outcome(ready[0], container);
  ::close(ready[0]);
  return outcome;
}

MonitorOptions start_reporting_options(int fd) {
  MonitorOptions options;
  options.on_warning = [fd](const std::string& warning) {
    const std::string message = kWarningTag + one_line(warning) + "\n";
    (void)write_all(fd, message.data(), message.size(), "the starting command");
  };
  options.on_started = [fd](int code, const std::string& error) {
    const std::string message = kStartedTag + std::string(1, static_cast<char>(code)) + error;
    (void)write_all(fd, message.data(), message.size(), "the starting command");
    ::close(fd);
  };
  options.release_started = [fd] { ::close(fd); };
  return options;
}

StartOutcome read_start_outcome(int fd, const Container& container) {
  std::string message;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
    if (n > 0) message.append(buf, static_cast<size_t>(n));
  // Warnings (a line each) come first, from the monitor; the outcome last, from its VMM.
  StartOutcome outcome;
  while (message.starts_with(kWarningTag) && message.find('\n') != std::string::npos) {
    const size_t newline = message.find('\n');
    outcome.warnings.push_back(message.substr(1, newline - 1));
    message.erase(0, newline + 1);
  }
  if (message.size() < 2 || !message.starts_with(kStartedTag)) {
    outcome.code = 125;
    outcome.error = "the container's monitor died before the container started (see " + (container.dir / "monitor.log").string() + ")";
    return outcome;
  }
  outcome.code = static_cast<unsigned char>(message[1]);
  if (outcome.code != 0) outcome.error = message.substr(2);
  return outcome;
}


Result<Container> create_container(const Paths& paths, ContainerStore& store, ContainerConfig config,
                                   const std::optional<std::string>& name) {
  for (const auto& mount : config.mounts)
    if (mount.type == volume::MountType::bind) HYPER_CHECK(volume::check_share_source(mount.source));
  const auto volumes = HYPER_TRY(volume::VolumeStore::open(paths.volumes()));
  auto held = HYPER_TRY(volumes.lock());
  HYPER_CHECK(volume::ensure_volumes(volumes, config.mounts));
  return store.create(config, name);
}

Result<int> parse_signal(std::string text) {
  if (text.empty()) return make_error(Errc::invalid_argument, "empty signal");
  if (std::isdigit(static_cast<unsigned char>(text[0]))) {
    char* end = nullptr;
    const long number = std::strtol(text.c_str(), &end, 10);
    if (*end != '\0' || number <= 0 || number >= NSIG) return make_error(Errc::invalid_argument, "invalid signal: " + text);
    return static_cast<int>(number);
  }
  for (auto& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (text.rfind("SIG", 0) == 0) text = text.substr(3);
  for (int sig = 1; sig < NSIG; ++sig) {
    const char* abbrev = ::sigabbrev_np(sig);
    if (abbrev && text == abbrev) return sig;
  }
  return make_error(Errc::invalid_argument, "invalid signal: " + text);
}

ExecStart start_exec(const Container& container, const Json& process) {
  auto conn = AgentConnection::dial(container.dir);
  if (!conn.ok()) return {std::nullopt, 1, conn.error().message};
  auto reply = conn->call({{"op", "exec"}, {"process", process}}, 30'000);
  if (!reply.ok()) return {std::nullopt, 1, reply.error().message};
  if (!reply->value("ok", false)) {
    int code = 126;
    const Error error = reply_error(*reply, &code);
    return {std::nullopt, code == 125 ? 126 : code, error.message};
  }
  return {std::move(conn).value(), 0, ""};
}

Status signal_container(const Container& container, int sig) {
  auto conn = HYPER_TRY(AgentConnection::dial(container.dir, 5000));
  (void)HYPER_TRY(conn.request({{"op", "signal"}, {"signal", sig}}, 5000));
  return {};
}

// Polls the state (find() reconciles a dead monitor) until the container is no longer
// running or the deadline passes.
Result<Container> wait_until_exited(const ContainerStore& store, const std::string& id,
                                    std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    Container container = HYPER_TRY(store.find(id));
    if (container.state.status != ContainerStatus::running) return container;
    if (std::chrono::steady_clock::now() >= deadline) return container;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

namespace {

// The VM's claim, waiting up to kKillTimeout for a monitor just killed to let go of it.
Result<std::optional<FileLock>> claim_vm_after_kill(const ContainerStore& store, const Container& container) {
  auto claim = HYPER_TRY(store.claim_vm(container));
  for (auto deadline = std::chrono::steady_clock::now() + kKillTimeout;
       !claim && std::chrono::steady_clock::now() < deadline;) {
    std::this_thread::sleep_for(kPollInterval);
    claim = HYPER_TRY(store.claim_vm(container));
  }
  return claim;
}

}  // namespace

Status stop_container(const ContainerStore& store, const Container& container, int timeout_s) {
  if (container.state.status != ContainerStatus::running) return {};
  const auto image_signal = parse_signal(container.config.stop_signal);  // "" fails too: SIGTERM then
  const int sig = image_signal.ok() ? image_signal.value() : SIGTERM;
  const auto now = std::chrono::steady_clock::now();
  if (signal_container(container, sig).ok()) {
    crash_point("stop-signalled");
    auto after = HYPER_TRY(wait_until_exited(store, container.id, now + std::chrono::seconds(timeout_s)));
    if (after.state.status != ContainerStatus::running) return {};
    if (signal_container(container, SIGKILL).ok()) {
      after = HYPER_TRY(wait_until_exited(store, container.id, std::chrono::steady_clock::now() + std::chrono::seconds(5)));
      if (after.state.status != ContainerStatus::running) return {};
    }
  }
  // The agent is unreachable or ignored us: end the VM by ending its monitor, and undo
  // what the monitor would have undone on its way out (a stopped container holds no
  // port, rule or lease).
  if (monitor_alive(container.state)) ::kill(container.state.pid, SIGKILL);
  auto after = HYPER_TRY(wait_until_exited(store, container.id, std::chrono::steady_clock::now() + std::chrono::seconds(5)));
  if (after.state.status == ContainerStatus::running) return make_error(Errc::io, "container " + container.id + " did not stop");
  // Under the VM's claim, which the dead monitor lets go of a moment after it is seen
  // dead: a start from elsewhere holds it for its whole run, and its rules are its own.
  const auto claim = HYPER_TRY(claim_vm_after_kill(store, after));
  if (claim) store.release_killed_monitor_leftovers(after, false);
  return {};
}

// Kills the monitor and waits until the store no longer shows the container running
// (find() notices the dead monitor and records the exit).
Status kill_container(const ContainerStore& store, const Container& container) {
  if (monitor_alive(container.state) && ::kill(container.state.pid, SIGKILL) != 0 && errno != ESRCH)
    return Error::from_errno("kill the monitor of container " + container.id);
  const auto deadline = std::chrono::steady_clock::now() + kKillTimeout;
  for (;;) {
    const Container current = HYPER_TRY(store.find(container.id));
    if (current.state.status != ContainerStatus::running) return {};
    if (std::chrono::steady_clock::now() >= deadline)
      return make_error(Errc::io, "could not kill container " + container.id + ": it is still running");
    std::this_thread::sleep_for(kPollInterval);
  }
}

namespace {

Status remove_found(const Paths& paths, const ContainerStore& store, const Container& container, bool force, bool volumes) {
  const bool was_running = container.state.status == ContainerStatus::running;
  if (was_running) {
    if (!force)
      return make_error(Errc::invalid_argument, "You cannot remove a running container " + container.id +
                                                    ". Stop the container before attempting removal or force remove");
    HYPER_CHECK(kill_container(store, container));
  }
  // A stopped container's VM may be up for a commit (or a start may be on its way): its
  // files stay until that is over. A monitor just killed lets go of them as its last
  // thread exits, a moment after it is seen dead.
  const auto vm = was_running ? HYPER_TRY(claim_vm_after_kill(store, container)) : HYPER_TRY(store.claim_vm(container));
  if (!vm)
    return make_error(Errc::invalid_argument, "container " + container.id +
                                                  " is busy: another hyper command is starting or committing it");
  // Whoever watched it run (hyperd's wait and attach) reads its exit status first.
  const auto watchers_done = store.wait_for_watchers(container);
  HYPER_CHECK(store.remove(container));
  if (volumes) {
    const auto volume_store = HYPER_TRY(volume::VolumeStore::open(paths.volumes()));
    volume::remove_anonymous_volumes(volume_store, store, container);
  }
  return {};
}

}  // namespace

Status remove_container(const Paths& paths, const ContainerStore& store, const std::string& ref, bool force,
                  bool volumes) {
  auto container = store.find(ref);
  // Docker: removing what is not there is no error when forced.
  if (!container.ok() && force && container.error().code == Errc::not_found) return {};
  if (!container.ok()) return std::move(container).error();
  Status removed = remove_found(paths, store, *container, force, volumes);
  // A --rm container killed here may be gone by the time we look again: its own
  // monitor (or the store, on the next load) removed it, which is what was asked.
  if (!removed && force && container->config.auto_remove && removed.error().code == Errc::not_found) return {};
  return removed;
}

Result<std::function<bool(const std::string&)>> image_use(const ContainerStore& store) {
  const auto containers = HYPER_TRY(store.list());
  std::vector<std::string> used;
  for (const auto& container : containers) used.push_back(container.config.image_id);
  return std::function<bool(const std::string&)>([used](const std::string& id) {
    return std::find(used.begin(), used.end(), id) != used.end();
  });
}

}  // namespace hyper::runtime
