// hyper-runtime exec: one more process in a running container, through the agent.
// With --detach a child of ours relays it and exits with its status: that child is the
// pid the caller gets (conmon and containerd's shim reap it), as runc's would be.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include "cli/runtime_cli.hpp"
#include "runtime/container_control.hpp"
#include "runtime/oci/bundle.hpp"
#include "runtime/oci/console.hpp"
#include "runtime/stdio_relay.hpp"
#include "vmm/file_io.hpp"

namespace hyper::cli::oci {
namespace {

using Json = nlohmann::json;
namespace rt = hyper::runtime;

Error bad(const std::string& message) { return make_error(Errc::invalid_argument, message); }

Result<rt::oci::Process> process_from_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return make_error(Errc::not_found, "cannot read the process file " + path);
  const Json json = Json::parse(in, nullptr, false);
  if (json.is_discarded()) return bad("the process file " + path + " is not valid JSON");
  return rt::oci::parse_process(json);
}

Result<std::pair<uint32_t, uint32_t>> parse_user(const std::string& text) {
  unsigned uid = 0, gid = 0;
  char tail = 0;
  const int fields = std::sscanf(text.c_str(), "%u:%u%c", &uid, &gid, &tail);
  if (fields != 1 && fields != 2) return bad("--user \"" + text + "\" is not UID[:GID]");
  return std::pair<uint32_t, uint32_t>{uid, gid};
}

// runc's exec without --process: the container's process with the given command and flags.
Result<rt::oci::Process> process_from_flags(const rt::Container& container, const Flags& flags) {
  if (flags.positional.size() < 2) return bad("hyper-runtime exec needs a command (or --process)");
  rt::oci::Process process;
  process.args.assign(flags.positional.begin() + 1, flags.positional.end());
  process.env = container.config.env;
  for (const auto& env : flags.all("env")) process.env.push_back(env);
  process.cwd = flags.last("cwd").value_or(container.config.working_dir.empty() ? "/" : container.config.working_dir);
  const auto user = HYPER_TRY(parse_user(flags.last("user").value_or(container.config.user.empty() ? "0:0" : container.config.user)));
  process.uid = user.first;
  process.gid = user.second;
  // As runc does: the container's own process is the base, its groups and rlimits too.
  if (flags.has("additional-gids")) {
    for (const auto& gid : flags.all("additional-gids")) process.additional_gids.push_back(HYPER_TRY(parse_user(gid)).first);
  } else {
    process.additional_gids = container.config.groups.value_or(std::vector<uint32_t>{});
  }
  process.rlimits = container.config.rlimits;
  process.terminal = flags.has("tty");
  return process;
}

struct Terminal {
  std::optional<rt::oci::Pty> pty;  // sent to --console-socket; ours to relay
  bool own = false;                 // no console socket: our stdin is the terminal
};

Result<Terminal> terminal_for(const rt::oci::Process& process, const Flags& flags) {
  Terminal terminal;
  if (!process.terminal) {
    if (flags.has("console-socket")) return bad("--console-socket given, but the process has no terminal");
    return terminal;
  }
  if (const auto socket = flags.last("console-socket")) {
    terminal.pty = HYPER_TRY(rt::oci::open_pty(process.rows, process.cols));
    HYPER_CHECK(rt::oci::send_console(*socket, *terminal.pty));
    return terminal;
  }
  if (flags.has("detach")) return bad("a detached exec with a terminal needs --console-socket");
  terminal.own = true;
  return terminal;
}

// Runs the process to its end; `ready` (if valid) hears "0" once it runs, or "1" and why not.
int run_process(const rt::Container& container, const rt::oci::Process& process, const Terminal& terminal, UniqueFd ready) {
  Json spec = rt::oci::agent_process(process);
  if (terminal.own && !(process.rows && process.cols))
    if (auto size = rt::terminal_size()) spec["rows"] = size->first, spec["cols"] = size->second;
  auto signals = rt::forwarded_signals_fd();
  rt::ExecStart exec = rt::start_exec(container, spec);
  const std::string answer = exec.conn ? "0" : "1" + exec.error;
  if (ready.valid()) (void)write_all(ready.get(), answer.data(), answer.size(), "hyper-runtime exec");
  ready.reset();
  if (!exec.conn) {
    std::fprintf(stderr, "hyper-runtime: %s\n", exec.error.c_str());
    return exec.code;
  }
  std::optional<rt::RawTerminal> raw;
  if (terminal.own || terminal.pty) raw.emplace();
  rt::RelayOptions relay;
  relay.forward_stdin = true;
  relay.tty = process.terminal;
  relay.signal_fd = signals.ok() ? signals->get() : -1;
  const auto outcome = rt::relay_stdio(*exec.conn, relay);
  raw.reset();
  if (!outcome.status) {
    std::fprintf(stderr, "hyper-runtime: %s\n", outcome.error.c_str());
    return 137;
  }
  return *outcome.status;
}

// Forks the relay; returns once the process runs (its pid written) or could not start.
Status run_detached(const rt::Container& container, const rt::oci::Process& process, Terminal terminal,
                    const std::optional<std::string>& pid_file) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return Error::from_errno("pipe");
  UniqueFd read_end(fds[0]), write_end(fds[1]);
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  if (pid < 0) return Error::from_errno("fork");
  if (pid == 0) {
    read_end.reset();
    if (terminal.pty) {
      if (auto taken = rt::oci::take_terminal(*terminal.pty); !taken.ok()) _exit(125);
      terminal.pty.reset();
      terminal.own = true;
    } else {
      ::setsid();
    }
    _exit(run_process(container, process, terminal, std::move(write_end)) & 0xff);
  }
  write_end.reset();
  terminal.pty.reset();
  std::string answer;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(read_end.get(), buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
    if (n > 0) answer.append(buf, static_cast<size_t>(n));
  if (answer.empty()) return make_error(Errc::io, "the exec's relay died before the process started");
  if (answer[0] != '0') return make_error(Errc::invalid_argument, answer.substr(1));
  if (pid_file) HYPER_CHECK(write_pid_file(*pid_file, pid));
  return {};
}

}  // namespace

int cmd_exec(const Global& global, const std::vector<std::string>& args) {
  static constexpr FlagSpec kFlags[] = {
      {"process", 'p', true},  {"tty", 't', false},          {"detach", 'd', false},      {"pid-file", 0, true},
      {"console-socket", 0, true}, {"cwd", 0, true},         {"env", 'e', true},          {"user", 'u', true},
      {"additional-gids", 'g', true}, {"cap", 'c', true},    {"no-new-privs", 0, false},  {"apparmor", 0, true},
      {"process-label", 0, true}, {"preserve-fds", 0, true}, {"ignore-paused", 0, false}, {"no-subreaper", 0, false}};
  auto flags = parse_flags(args, kFlags);
  if (!flags.ok()) return fail(global, flags.error().message);
  if (flags->positional.empty()) return fail(global, "hyper-runtime exec needs a container id");
  if (const auto fds = flags->last("preserve-fds"); fds && *fds != "0")
    return fail(global, "--preserve-fds: a VM cannot take host file descriptors");
  auto context = open_container(global, flags->positional[0]);
  if (!context.ok()) return fail(global, context.error().message);
  if (status_of(*context) != "running") return fail(global, "container " + context->record.id + " is not running");
  auto container = context->store.find(context->record.container_id);
  if (!container.ok()) return fail(global, container.error().message);
  if (flags->has("process") && flags->positional.size() > 1)
    return fail(global, "hyper-runtime exec takes either --process or a command, not both");
  auto process = flags->has("process") ? process_from_file(*flags->last("process")) : process_from_flags(*container, *flags);
  if (!process.ok()) return fail(global, process.error().message);
  if (flags->has("tty")) process->terminal = true;
  auto terminal = terminal_for(*process, *flags);
  if (!terminal.ok()) return fail(global, terminal.error().message);
  if (flags->has("detach")) {
    auto detached = run_detached(*container, *process, std::move(terminal).value(), flags->last("pid-file"));
    return detached.ok() ? 0 : fail(global, detached.error().message);
  }
  if (terminal->pty) {
    // Ours to relay in the foreground: the terminal's slave becomes our stdio.
    for (int fd : {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO}) ::dup2(terminal->pty->slave.get(), fd);
  }
  if (const auto pid_file = flags->last("pid-file")) {
    if (auto written = write_pid_file(*pid_file, ::getpid()); !written.ok()) return fail(global, written.error().message);
  }
  return run_process(*container, *process, *terminal, UniqueFd());
}

}  // namespace hyper::cli::oci
