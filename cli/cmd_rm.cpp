// hyper rm: removes containers that are not running; with -f, running ones are killed
// first (their monitor, which takes the VM with it).
#include <cstdio>

#include "cli/commands.hpp"
#include "cli/container_args.hpp"
#include "runtime/container_control.hpp"

namespace hyper::cli {
namespace {

namespace po = boost::program_options;
using runtime::ContainerStore;

constexpr const char* kUsage =
    "Usage: hyper rm [OPTIONS] CONTAINER [CONTAINER...]\n\nRemove one or more containers\n\n"
    "  -f, --force     force the removal of a running container (uses SIGKILL)\n"
    "  -v, --volumes   remove the anonymous volumes of the container too\n";

}  // namespace

int cmd_rm(const GlobalOptions& global, const std::vector<std::string>& args) {
  bool force = false, volumes = false;
  po::options_description desc;
  desc.add_options()("force,f", po::bool_switch(&force))("volumes,v", po::bool_switch(&volumes));
  po::variables_map vm;
  auto refs = parse_command_line(args, desc, vm);
  if (!refs.ok()) return report(refs.error().message + "\nSee 'hyper rm --help'.", 125);
  if (help_requested(vm)) {
    std::printf("%s", kUsage);
    return 0;
  }
  if (refs->empty()) return report("\"hyper rm\" requires at least 1 argument.\nSee 'hyper rm --help'.", 125);
  auto paths = runtime::resolve_paths(global.root);
  if (!paths.ok()) return report(paths.error().message, 125);
  auto store = ContainerStore::open(paths->containers());
  if (!store.ok()) return report(store.error().message, 125);
  int status = 0;
  for (const auto& ref : *refs) {
    if (auto removed = runtime::remove_container(*paths, *store, ref, force, volumes); !removed.ok()) {
      status = report(removed.error().message, 1);
      continue;
    }
    std::printf("%s\n", ref.c_str());
    std::fflush(stdout);
  }
  return status;
}

}  // namespace hyper::cli
