// hyper-runtime: an OCI runtime with runc's command line, whose containers are microVMs.
// podman (through conmon) and containerd (through its runc shim) drive it as they drive
// runc; docs/embedding.md describes what each command does and what a VM cannot honour.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <fstream>

#include <nlohmann/json.hpp>

#include "cli/runtime_cli.hpp"
#include "runtime/oci/bundle.hpp"

namespace hyper::cli::oci {
namespace {

constexpr const char* kVersion = "0.1.0";

void usage() {
  std::printf(
      "Usage: hyper-runtime [GLOBAL OPTIONS] COMMAND [OPTIONS] ID\n\n"
      "An OCI runtime whose containers run in KVM microVMs (docs/embedding.md).\n\n"
      "Commands:\n"
      "  create [--bundle DIR] [--pid-file F] [--console-socket S] ID   create a container from a bundle\n"
      "  start ID                          run the created container's process\n"
      "  state ID                          print its state (OCI runtime spec JSON)\n"
      "  kill [--all] ID [SIGNAL]          signal its process (default SIGTERM)\n"
      "  delete [--force] ID               remove a stopped container (--force: any)\n"
      "  exec [--process F | CMD...] [--tty] [--detach] [--pid-file F] [--console-socket S] ID\n"
      "                                    run one more process in a running container\n"
      "  ps [--format table|json] ID       the host processes of the container\n"
      "  features                          what this runtime supports (JSON)\n\n"
      "Global options:\n"
      "  --root DIR          state directory (default %s)\n"
      "  --log FILE          also write errors to FILE\n"
      "  --log-format F      text or json\n"
      "  --debug, --systemd-cgroup, --criu P, --rootless B   accepted for runc compatibility, ignored\n"
      "  -v, --version       print the version\n",
      kDefaultRoot);
}

std::string now_rfc3339() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  tm utc{};
  ::gmtime_r(&ts.tv_sec, &utc);
  char text[64];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

using Command = int (*)(const Global&, const std::vector<std::string>&);

Command find_command(const std::string& name) {
  static const std::pair<const char*, Command> kCommands[] = {
      {"create", cmd_create}, {"start", cmd_start}, {"state", cmd_state}, {"kill", cmd_kill},
      {"delete", cmd_delete}, {"exec", cmd_exec},   {"ps", cmd_ps},       {"features", cmd_features}};
  for (const auto& [command, run] : kCommands)
    if (name == command) return run;
  return nullptr;
}

}  // namespace

int fail(const Global& global, const std::string& message, int code) {
  std::fflush(stdout);
  std::fprintf(stderr, "hyper-runtime: %s\n", message.c_str());
  if (global.log) {
    std::ofstream log(*global.log, std::ios::app);
    if (global.log_json)
      log << nlohmann::json{{"level", "error"}, {"msg", message}, {"time", now_rfc3339()}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    else
      log << "time=\"" << now_rfc3339() << "\" level=error msg=\"" << message << "\"\n";
  }
  return code;
}

}  // namespace hyper::cli::oci

int main(int argc, char** argv) {
  using namespace hyper::cli::oci;
  // A client that goes away mid-answer is an error to report, not a reason to die.
  ::signal(SIGPIPE, SIG_IGN);
  const std::vector<std::string> args(argv + 1, argv + argc);
  static constexpr FlagSpec kGlobalFlags[] = {
      {"root", 0, true},   {"log", 0, true},   {"log-format", 0, true}, {"debug", 0, false},
      {"systemd-cgroup", 0, false}, {"criu", 0, true}, {"rootless", 0, true}, {"version", 'v', false},
      {"help", 'h', false}};
  Global global;
  auto flags = parse_flags(args, kGlobalFlags);
  if (!flags.ok()) return fail(global, flags.error().message + " (see hyper-runtime --help)");
  if (auto root = flags->last("root")) global.root = *root;
  global.log = flags->last("log");
  const std::string format = flags->last("log-format").value_or("text");
  if (format != "text" && format != "json") return fail(global, "--log-format must be text or json, not \"" + format + "\"");
  global.log_json = format == "json";
  if (flags->has("version")) {
    std::printf("hyper-runtime version %s\nspec: %s\n", kVersion, hyper::runtime::oci::kSpecVersion);
    return 0;
  }
  if (flags->has("help") || flags->positional.empty()) {
    usage();
    return flags->has("help") ? 0 : 1;
  }
  const std::string name = flags->positional.front();
  const Command command = find_command(name);
  if (!command) return fail(global, "unknown command \"" + name + "\" (see hyper-runtime --help)");
  return command(global, std::vector<std::string>(flags->positional.begin() + 1, flags->positional.end()));
}
