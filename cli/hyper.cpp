// hyper: Docker's workflow for containers that each run in their own KVM microVM. The
// global flags come before the command; each command parses the rest of the line.
#include <cstdio>
#include <string>
#include <vector>

#include "cli/commands.hpp"

namespace hyper::cli {
namespace {

constexpr const char* kVersion = "0.1.0";

struct CommandEntry {
  const char* name;
  Command run;
  const char* summary;
};

constexpr CommandEntry kCommands[] = {
    {"run", cmd_run, "Create and run a new container from an image"},
    {"start", cmd_start, "Start one or more stopped containers"},
    {"exec", cmd_exec, "Execute a command in a running container"},
    {"stop", cmd_stop, "Stop one or more running containers"},
    {"kill", cmd_kill, "Send a signal to one or more running containers"},
    {"wait", cmd_wait, "Block until containers stop, then print their exit codes"},
    {"ps", cmd_ps, "List containers"},
    {"logs", cmd_logs, "Fetch the logs of a container"},
    {"rm", cmd_rm, "Remove one or more containers"},
    {"inspect", cmd_inspect, "Return low-level information on containers"},
    {"load", cmd_load, "Load an image from a tar archive or an OCI layout"},
    {"images", cmd_images, "List images"},
    {"pull", cmd_pull, "Download an image from a registry"},
    {"push", cmd_push, "Upload an image to a registry"},
    {"login", cmd_login, "Log in to a registry"},
    {"logout", cmd_logout, "Log out from a registry"},
    {"tag", cmd_tag, "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"},
    {"rmi", cmd_rmi, "Remove one or more images"},
    {"image", cmd_image, "Manage images (ls, pull, push, rm, tag, inspect, prune, save, load, import)"},
    {"save", cmd_save, "Save one or more images to a tar archive"},
    {"import", cmd_import, "Import the contents from a tarball to create a filesystem image"},
    {"commit", cmd_commit, "Create a new image from a container's changes"},
    {"network", cmd_network, "Manage networks (create, ls, inspect, rm, prune)"},
    {"port", cmd_port, "List port mappings or a specific mapping for the container"},
    {"fip", cmd_fip, "Manage floating IPs (allocate, ls, attach, detach, release)"},
    {"volume", cmd_volume, "Manage volumes (create, ls, inspect, rm, prune, snapshot)"},
    {"usage", cmd_usage, "Show the containers' metered usage (vCPU- and GiB-seconds) and its cost"},
};

void usage() {
  std::printf(
      "Usage:  hyper [OPTIONS] COMMAND\n\n"
      "Run containers, each in its own KVM microVM\n\n"
      "Options:\n"
      "      --root DIR   state directory (default: $HYPER_ROOT, else /var/lib/hyper for root,\n"
      "                   else $XDG_DATA_HOME/hyper or ~/.local/share/hyper)\n"
      "      --insecure-registry HOST[:PORT]\n"
      "                   talk to this registry over plain HTTP (repeatable; see docs/images.md)\n"
      "  -h, --help       print this help\n"
      "  -v, --version    print the version\n\n"
      "Commands:\n");
  for (const auto& command : kCommands) std::printf("  %-9s %s\n", command.name, command.summary);
  std::printf("\nRun 'hyper COMMAND --help' for more information on a command.\n");
}

const CommandEntry* find_command(const std::string& name) {
  for (const auto& command : kCommands) {
    if (name == command.name) return &command;
  }
  return nullptr;
}

// The global flags; returns where the command is, or an exit status when there is
// nothing to run (help, version, a bad flag).
struct Parsed {
  size_t command_at = 0;
  int exit_status = -1;  // >= 0: exit with it
};

Parsed parse_globals(const std::vector<std::string>& args, GlobalOptions& global) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "-h" || arg == "--help") {
      usage();
      return {i, 0};
    }
    if (arg == "-v" || arg == "--version") {
      std::printf("Hyper version %s\n", kVersion);
      return {i, 0};
    }
    if (arg == "--insecure-registry") {
      if (i + 1 == args.size())
        return {i, report("flag needs an argument: --insecure-registry\nSee 'hyper --help'.", 125)};
      global.insecure_registries.push_back(args[++i]);
    } else if (arg.rfind("--insecure-registry=", 0) == 0) {
      global.insecure_registries.push_back(arg.substr(std::string("--insecure-registry=").size()));
    } else if (arg == "--root") {
      if (i + 1 == args.size()) return {i, report("flag needs an argument: --root\nSee 'hyper --help'.", 125)};
      global.root = args[++i];
    } else if (arg.rfind("--root=", 0) == 0) {
      global.root = arg.substr(std::string("--root=").size());
    } else if (arg.size() > 1 && arg[0] == '-') {
      return {i, report("unknown flag: " + arg + "\nSee 'hyper --help'.", 125)};
    } else {
      return {i, -1};
    }
  }
  usage();
  return {args.size(), 0};
}

}  // namespace

int report(const std::string& message, int code) {
  // What was printed before the error stays before it.
  std::fflush(stdout);
  std::fprintf(stderr, "hyper: %s\n", message.c_str());
  return code;
}

}  // namespace hyper::cli

int main(int argc, char** argv) {
  using namespace hyper::cli;
  const std::vector<std::string> args(argv + 1, argv + argc);
  GlobalOptions global;
  const Parsed parsed = parse_globals(args, global);
  if (parsed.exit_status >= 0) return parsed.exit_status;
  const std::string& name = args[parsed.command_at];
  std::vector<std::string> rest(args.begin() + static_cast<std::ptrdiff_t>(parsed.command_at) + 1, args.end());
  if (name == "help") {
    // "hyper help run" is "hyper run --help".
    if (rest.empty() || find_command(rest.front()) == nullptr) {
      usage();
      return 0;
    }
    return find_command(rest.front())->run(global, {"--help"});
  }
  const CommandEntry* command = find_command(name);
  if (command == nullptr) return report("'" + name + "' is not a hyper command.\nSee 'hyper --help'", 1);
  const int status = command->run(global, rest);
  std::fflush(stdout);
  return status;
}
