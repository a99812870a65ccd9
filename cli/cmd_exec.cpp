// hyper exec: one more process in a running container, through the agent.
#include <boost/program_options.hpp>

#include <unistd.h>

#include <cstdio>

#include "cli/commands.hpp"
#include "runtime/run_options.hpp"
#include "runtime/agent_client.hpp"
#include "runtime/container_control.hpp"
#include "runtime/container_store.hpp"
#include "runtime/paths.hpp"
#include "runtime/stdio_relay.hpp"

namespace hyper::cli {
namespace {

namespace po = boost::program_options;

struct ExecFlags {
  bool interactive = false, tty = false, detach = false;
  std::vector<std::string> env;
  std::optional<std::string> user, workdir;
  std::string container;
  std::vector<std::string> command;
};

Result<ExecFlags> parse_exec_flags(const std::vector<std::string>& args) {
  ExecFlags out;
  // The container is the first word that is not a flag or a flag's value.
  size_t split = 0;
  for (; split < args.size(); ++split) {
    const std::string& arg = args[split];
    if (arg.size() < 2 || arg[0] != '-') break;
    if (arg == "-e" || arg == "--env" || arg == "-u" || arg == "--user" || arg == "-w" || arg == "--workdir" ||
        (arg.size() > 2 && arg[1] != '-' && (arg.back() == 'e' || arg.back() == 'u' || arg.back() == 'w')))
      ++split;
  }
  if (split + 1 >= args.size())
    return make_error(Errc::invalid_argument, "\"hyper exec\" requires at least 2 arguments: CONTAINER COMMAND [ARG...]");
  po::options_description desc;
  desc.add_options()
      ("interactive,i", po::bool_switch(&out.interactive))
      ("tty,t", po::bool_switch(&out.tty))
      ("detach,d", po::bool_switch(&out.detach))
      ("env,e", po::value<std::vector<std::string>>(&out.env)->composing())
      ("user,u", po::value<std::string>())
      ("workdir,w", po::value<std::string>());
  po::variables_map vm;
  try {
    const std::vector<std::string> flags(args.begin(), args.begin() + static_cast<std::ptrdiff_t>(split));
    po::store(po::command_line_parser(flags).options(desc).style(po::command_line_style::default_style &
                                                                  ~po::command_line_style::allow_guessing).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return make_error(Errc::invalid_argument, e.what());
  }
  if (vm.count("user")) out.user = vm["user"].as<std::string>();
  if (vm.count("workdir")) out.workdir = vm["workdir"].as<std::string>();
  if (out.workdir && (out.workdir->empty() || (*out.workdir)[0] != '/'))
    return make_error(Errc::invalid_argument, "the working directory '" + *out.workdir + "' is invalid, it needs to be an absolute path");
  out.container = args[split];
  out.command.assign(args.begin() + static_cast<std::ptrdiff_t>(split) + 1, args.end());
  return out;
}

}  // namespace

int cmd_exec(const GlobalOptions& global, const std::vector<std::string>& args) {
  if (!args.empty() && args[0] == "--help") {
    std::printf("Usage: hyper exec [OPTIONS] CONTAINER COMMAND [ARG...]\n\nRun a command in a running container\n\n"
                "  -i, --interactive   keep STDIN open\n  -t, --tty           allocate a pseudo-TTY\n"
                "  -d, --detach        run in the background\n  -e, --env K=V       set an environment variable\n"
                "  -u, --user USER     user name or uid (and :group)\n  -w, --workdir DIR   working directory\n");
    return 0;
  }
  auto flags = parse_exec_flags(args);
  if (!flags.ok()) return report(flags.error().message + "\nSee 'hyper exec --help'.", 125);
  if (flags->tty && flags->interactive && !::isatty(STDIN_FILENO)) return report("the input device is not a TTY", 1);
  auto paths = runtime::resolve_paths(global.root);
  if (!paths.ok()) return report(paths.error().message, 125);
  auto store = runtime::ContainerStore::open(paths->containers());
  if (!store.ok()) return report(store.error().message, 125);
  auto container = store->find(flags->container);
  if (!container.ok()) return report(container.error().message, 1);
  if (container->state.status != runtime::ContainerStatus::running)
    return report("container " + container->id + " is not running", 1);
  auto env = runtime::merge_env(container->config.env, {}, flags->env);
  if (!env.ok()) return report(env.error().message, 125);

  auto signals = runtime::forwarded_signals_fd();
  runtime::Json process = {{"args", flags->command},
                           {"env", *env},
                           {"cwd", flags->workdir.value_or(container->config.working_dir.empty() ? "/" : container->config.working_dir)},
                           {"user", flags->user.value_or(container->config.user)},
                           {"tty", flags->tty},
                           {"stdin", flags->interactive}};
  if (flags->tty) {
    if (auto size = runtime::terminal_size()) process["rows"] = size->first, process["cols"] = size->second;
  }
  runtime::ExecStart exec = runtime::start_exec(*container, process);
  if (!exec.conn) return report(exec.error, exec.code);
  if (flags->detach) return 0;
  std::optional<runtime::RawTerminal> raw;
  if (flags->tty) raw.emplace();
  runtime::RelayOptions relay;
  relay.forward_stdin = flags->interactive;
  relay.tty = flags->tty;
  relay.signal_fd = signals.ok() ? signals->get() : -1;
  const auto outcome = runtime::relay_stdio(*exec.conn, relay);
  raw.reset();
  if (!outcome.status) return report(outcome.error, 137);
  return *outcome.status;
}

}  // namespace hyper::cli
