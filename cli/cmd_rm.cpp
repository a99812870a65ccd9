// hyper rm: removes containers that are not running; with -f, running ones are killed
// first (their monitor, which takes the VM with it).
#include <signal.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <thread>

#include "cli/commands.hpp"
#include "cli/container_args.hpp"
#include "runtime/volume/volume_users.hpp"

namespace hyper::cli {
namespace {

namespace po = boost::program_options;
using runtime::Container;
using runtime::ContainerStatus;
using runtime::ContainerStore;

constexpr auto kKillTimeout = std::chrono::seconds(10);
constexpr auto kPollInterval = std::chrono::milliseconds(20);

constexpr const char* kUsage =
    "Usage: hyper rm [OPTIONS] CONTAINER [CONTAINER...]\n\nRemove one or more containers\n\n"
    "  -f, --force     force the removal of a running container (uses SIGKILL)\n"
    "  -v, --volumes   remove the anonymous volumes of the container too\n";

// Kills the monitor and waits until the store no longer shows the container running
// (find() notices the dead monitor and records the exit).
Status kill_container(const ContainerStore& store, const Container& container) {
  if (runtime::monitor_alive(container.state) && ::kill(container.state.pid, SIGKILL) != 0 && errno != ESRCH)
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

Status remove_one(const runtime::Paths& paths, const ContainerStore& store, const std::string& ref, bool force,
                  bool volumes) {
  auto container = store.find(ref);
  // Docker: removing what is not there is no error when forced.
  if (!container.ok() && force && container.error().code == Errc::not_found) return {};
  if (!container.ok()) return std::move(container).error();
  const bool was_running = container->state.status == ContainerStatus::running;
  if (was_running) {
    if (!force)
      return make_error(Errc::invalid_argument, "You cannot remove a running container " + container->id +
                                                    ". Stop the container before attempting removal or force remove");
    HYPER_CHECK(kill_container(store, *container));
  }
  // A stopped container's VM may be up for a commit (or a start may be on its way): its
  // files stay until that is over. A monitor just killed lets go of them as its last
  // thread exits, a moment after it is seen dead.
  auto vm = HYPER_TRY(store.claim_vm(*container));
  for (auto deadline = std::chrono::steady_clock::now() + kKillTimeout;
       !vm && was_running && std::chrono::steady_clock::now() < deadline;) {
    std::this_thread::sleep_for(kPollInterval);
    vm = HYPER_TRY(store.claim_vm(*container));
  }
  if (!vm)
    return make_error(Errc::invalid_argument, "container " + container->id +
                                                  " is busy: another hyper command is starting or committing it");
  HYPER_CHECK(store.remove(*container));
  if (volumes) {
    const auto volume_store = HYPER_TRY(runtime::volume::VolumeStore::open(paths.volumes()));
    runtime::volume::remove_anonymous_volumes(volume_store, store, *container);
  }
  std::printf("%s\n", ref.c_str());
  std::fflush(stdout);
  return {};
}

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
    if (auto removed = remove_one(*paths, *store, ref, force, volumes); !removed.ok()) status = report(removed.error().message, 1);
  }
  return status;
}

}  // namespace hyper::cli
