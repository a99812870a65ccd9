// hyper run / hyper start: the container's monitor runs in this process when attached,
// or in a detached child (run -d, start) that reports back once the process runs.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>

#include "cli/commands.hpp"
#include "runtime/run_options.hpp"
#include "runtime/container_control.hpp"
#include "runtime/image_store.hpp"
#include "runtime/monitor.hpp"
#include "vmm/file_io.hpp"

namespace hyper::cli {
namespace {

using runtime::Container;
using runtime::ContainerStore;

uint64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

bool timings_requested() {
  const char* value = std::getenv("HYPER_TIMINGS");
  return value && *value && std::string(value) != "0";
}

void print_warning(const std::string& warning) { std::fprintf(stderr, "hyper: warning: %s\n", warning.c_str()); }

// The monitor in a process of its own session, so it outlives this command; returns once
// the container's process runs (0) or could not start (its docker exit code).
int start_in_background(const runtime::Paths& paths, ContainerStore& store, const Container& container) {
  const auto outcome = runtime::start_detached(paths, store, container);
  for (const auto& warning : outcome.warnings) print_warning(warning);
  if (outcome.code != 0) return report(outcome.error, outcome.code);
  return 0;
}

}  // namespace

int cmd_run(const GlobalOptions& global, const std::vector<std::string>& args) {
  const uint64_t start_ns = now_ns();
  if (!args.empty() && (args[0] == "--help")) {
    std::printf("Usage: hyper run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun a command in a new container (its own microVM)\n\n"
                "  -d, --detach           run in the background and print the container ID\n"
                "  -i, --interactive      keep STDIN open\n"
                "  -t, --tty              allocate a pseudo-TTY\n"
                "      --rm               remove the container when it exits\n"
                "      --template         start from a pre-booted VM template instead of booting\n"
                "                         (made on first use; docs/snapshots.md)\n"
                "      --name NAME        name the container\n"
                "  -e, --env K=V          set an environment variable (K alone: copy ours)\n"
                "      --env-file FILE    read variables from a file\n"
                "  -w, --workdir DIR      working directory inside the container\n"
                "  -u, --user USER[:GROUP] user name or uid (and group)\n"
                "      --entrypoint CMD   override the image's entrypoint\n"
                "  -h, --hostname NAME    the container's hostname\n"
                "      --cpus N           vCPUs (default 1)\n"
                "      --network NAME     connect to a network (default \"bridge\"; \"none\": no eth0)\n"
                "      --network-alias A  another name the container has on a user-defined network\n"
                "  -p, --publish [IP:][HOST_PORT:]PORT[/tcp|udp]\n"
                "                         publish a container's port on the host\n"
                "  -P, --publish-all      publish every EXPOSEd port on a free host port\n"
                "      --link NAME[:ALIAS] add a link to another container (hosts entry, variables)\n"
                "      --dns IP           a DNS server for the names the network does not know\n"
                "      --dns-search DOMAIN a DNS search domain\n"
                "      --add-host NAME:IP add a line to /etc/hosts\n"
                "      --mac-address MAC  eth0's MAC address\n"
                "      --tap NAME,ip=CIDR[,gw=IP][,mac=M][,dns=IP]\n"
                "                         eth0 on an existing tap device instead of a network\n"
                "  -m, --memory SIZE      VM memory (default 256m)\n"
                "  -v, --volume [SRC:]DST[:ro]\n"
                "                         a named volume (created when unknown), a host directory\n"
                "                         (absolute SRC, over virtio-fs) or an anonymous volume\n"
                "      --mount type=volume|bind|tmpfs,source=..,target=..[,readonly]\n"
                "      --tmpfs DST[:size=64m,mode=1777]\n"
                "      --security-opt seccomp=unconfined\n"
                "                         do not confine the VMM's threads with seccomp\n");
    return 0;
  }
  auto flags = runtime::parse_run_flags(args);
  if (!flags.ok()) return report(flags.error().message + "\nSee 'hyper run --help'.", 125);
  if (flags->tty && flags->interactive && !::isatty(STDIN_FILENO))
    return report("the input device is not a TTY", 1);
  auto paths = runtime::resolve_paths(global.root);
  if (!paths.ok()) return report(paths.error().message, 125);
  auto images = runtime::ImageStore::open(paths->images());
  if (!images.ok()) return report(images.error().message, 125);
  auto image = images->find(flags->image);
  if (!image.ok())
    return report("Unable to find image '" + flags->image + "' locally: " + image.error().message +
                      " (load it with 'hyper load -i ARCHIVE')",
                  125);
  auto config = runtime::container_config(*flags, *image);
  if (!config.ok()) return report(config.error().message, 125);
  // Networks need root (bridges, taps, nftables); without it a container still runs, as
  // with the jail, only unconnected.
  if (!flags->network && !flags->tap && ::geteuid() != 0) {
    if (!config->net.ports.empty() || !config->net.links.empty())
      return report("publishing ports and links need the default network, which needs root", 125);
    config->net.network = "none";
    print_warning("hyper runs as uid " + std::to_string(::geteuid()) + ", and networks need root: the container runs with --network none");
  }
  auto store = ContainerStore::open(paths->containers());
  if (!store.ok()) return report(store.error().message, 125);
  auto container = runtime::create_container(*paths, *store, *config, flags->name);
  if (!container.ok()) return report(container.error().message, 125);

  if (flags->detach) {
    const int code = start_in_background(*paths, *store, *container);
    if (code == 0) std::printf("%s\n", container->id.c_str());
    return code;
  }
  runtime::MonitorOptions options;
  options.attach = true;
  options.start_ns = start_ns;
  options.print_timings = timings_requested();
  options.on_started = [](int code, const std::string& error) {
    if (code != 0) report(error, code);
  };
  options.on_warning = print_warning;
  return runtime::run_monitor(*paths, *store, *container, options);
}

int cmd_start(const GlobalOptions& global, const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help") {
    std::printf("Usage: hyper start CONTAINER [CONTAINER...]\n\nStart one or more stopped containers (detached)\n");
    return args.empty() ? 125 : 0;
  }
  auto paths = runtime::resolve_paths(global.root);
  if (!paths.ok()) return report(paths.error().message, 125);
  auto store = ContainerStore::open(paths->containers());
  if (!store.ok()) return report(store.error().message, 125);
  int status = 0;
  for (const auto& ref : args) {
    auto container = store->find(ref);
    if (!container.ok()) {
      status = report(container.error().message, 1);
      continue;
    }
    if (container->state.status == runtime::ContainerStatus::running) {
      std::printf("%s\n", ref.c_str());
      continue;
    }
    const int code = start_in_background(*paths, *store, *container);
    if (code != 0) {
      status = code;
      continue;
    }
    std::printf("%s\n", ref.c_str());
  }
  return status;
}

}  // namespace hyper::cli
