// hyper stop / kill / wait: signals go to the container's main process through the
// agent; the monitor records the exit. When the agent cannot be reached (a wedged VM),
// stop falls back to killing the monitor, which ends the VM.
#include <boost/program_options.hpp>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "cli/commands.hpp"
#include "runtime/container_control.hpp"
#include "runtime/container_store.hpp"
#include "runtime/paths.hpp"

namespace hyper::cli {
namespace {

namespace po = boost::program_options;
using runtime::Container;
using runtime::ContainerStatus;
using runtime::ContainerStore;

Result<std::vector<std::string>> parse(const std::vector<std::string>& args, po::options_description& desc,
                                       po::variables_map& vm) {
  desc.add_options()("containers", po::value<std::vector<std::string>>());
  po::positional_options_description pos;
  pos.add("containers", -1);
  try {
    po::store(po::command_line_parser(args).options(desc).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return make_error(Errc::invalid_argument, e.what());
  }
  if (!vm.count("containers")) return make_error(Errc::invalid_argument, "requires at least 1 container");
  return vm["containers"].as<std::vector<std::string>>();
}

template <class Fn>
int for_each_container(const GlobalOptions& global, const std::vector<std::string>& refs, Fn fn) {
  auto paths = runtime::resolve_paths(global.root);
  if (!paths.ok()) return report(paths.error().message, 125);
  auto store = ContainerStore::open(paths->containers());
  if (!store.ok()) return report(store.error().message, 125);
  int status = 0;
  for (const auto& ref : refs) {
    auto container = store->find(ref);
    if (!container.ok()) {
      status = report(container.error().message, 1);
      continue;
    }
    if (auto done = fn(*store, *container, ref); !done.ok()) status = report(done.error().message, 1);
  }
  return status;
}

}  // namespace

int cmd_stop(const GlobalOptions& global, const std::vector<std::string>& args) {
  if (wants_help(args)) {
    std::printf("Usage: hyper stop [-t SECONDS] CONTAINER...\n\nStop running containers: the image's stop signal "
                "(SIGTERM), then SIGKILL\n\n  -t, --time SECONDS   grace time before SIGKILL (default 10)\n");
    return 0;
  }
  po::options_description desc;
  int timeout = 10;
  desc.add_options()("time,t", po::value<int>(&timeout), "seconds to wait before killing");
  po::variables_map vm;
  auto refs = parse(args, desc, vm);
  if (!refs.ok()) return report(refs.error().message + "\nUsage: hyper stop [-t SECONDS] CONTAINER...", 125);
  if (timeout < 0) timeout = 0;
  return for_each_container(global, *refs, [&](const ContainerStore& store, const Container& c, const std::string& ref) -> Status {
    HYPER_CHECK(runtime::stop_container(store, c, timeout));
    std::printf("%s\n", ref.c_str());
    return {};
  });
}

int cmd_kill(const GlobalOptions& global, const std::vector<std::string>& args) {
  if (wants_help(args)) {
    std::printf("Usage: hyper kill [-s SIGNAL] CONTAINER...\n\nSend a signal to the main process of running "
                "containers\n\n  -s, --signal SIGNAL   name or number (default KILL)\n");
    return 0;
  }
  po::options_description desc;
  std::string signal = "KILL";
  desc.add_options()("signal,s", po::value<std::string>(&signal), "signal to send");
  po::variables_map vm;
  auto refs = parse(args, desc, vm);
  if (!refs.ok()) return report(refs.error().message + "\nUsage: hyper kill [-s SIGNAL] CONTAINER...", 125);
  auto sig = runtime::parse_signal(signal);
  if (!sig.ok()) return report(sig.error().message, 125);
  return for_each_container(global, *refs, [&](const ContainerStore&, const Container& c, const std::string& ref) -> Status {
    if (c.state.status != ContainerStatus::running)
      return make_error(Errc::invalid_argument, "Cannot kill container: " + ref + ": container " + c.id + " is not running");
    HYPER_CHECK(runtime::signal_container(c, *sig));
    std::printf("%s\n", ref.c_str());
    return {};
  });
}

int cmd_wait(const GlobalOptions& global, const std::vector<std::string>& args) {
  if (wants_help(args)) {
    std::printf("Usage: hyper wait CONTAINER...\n\nBlock until containers stop, then print their exit codes\n");
    return 0;
  }
  po::options_description desc;
  po::variables_map vm;
  auto refs = parse(args, desc, vm);
  if (!refs.ok()) return report(refs.error().message + "\nUsage: hyper wait CONTAINER...", 125);
  return for_each_container(global, *refs, [&](const ContainerStore& store, const Container& c, const std::string&) -> Status {
    const auto forever = std::chrono::steady_clock::time_point::max();
    const Container done = HYPER_TRY(runtime::wait_until_exited(store, c.id, forever));
    std::printf("%d\n", done.state.exit_code);
    std::fflush(stdout);
    return {};
  });
}

}  // namespace hyper::cli
