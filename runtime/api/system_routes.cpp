// /_ping, /version, /info, /events: what a client asks before anything else.
#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <thread>

#include "runtime/api/daemon.hpp"
#include "runtime/image_store.hpp"
#include "runtime/usage/report.hpp"

#ifndef HYPER_VERSION
#define HYPER_VERSION "0.1.0"
#endif

namespace hyper::runtime::api {
namespace {

constexpr auto kEventPoll = std::chrono::milliseconds(100);

void ping(const Daemon&, const Request&, Exchange& exchange) {
  exchange.send_text(http::status::ok, "OK", "text/plain; charset=utf-8");
}

Json kernel_json() {
  utsname name{};
  ::uname(&name);
  return {{"KernelVersion", name.release}, {"Arch", name.machine}};
}

void version(const Daemon&, const Request&, Exchange& exchange) {
  const Json kernel = kernel_json();
  const std::string arch = kernel["Arch"] == "x86_64" ? "amd64" : kernel["Arch"].get<std::string>();
  const Json details = {{"ApiVersion", kApiVersion}, {"MinAPIVersion", kMinApiVersion}, {"GitCommit", ""},
                        {"GoVersion", "n/a (C++)"}, {"Os", "linux"}, {"Arch", arch},
                        {"KernelVersion", kernel["KernelVersion"]}, {"Experimental", "false"}, {"BuildTime", ""}};
  exchange.send_json(http::status::ok,
                     Json{{"Platform", {{"Name", "Hyper"}}},
                          {"Components", Json::array({{{"Name", "Engine"}, {"Version", HYPER_VERSION}, {"Details", details}}})},
                          {"Version", HYPER_VERSION},
                          {"ApiVersion", kApiVersion},
                          {"MinAPIVersion", kMinApiVersion},
                          {"GitCommit", ""},
                          {"GoVersion", "n/a (C++)"},
                          {"Os", "linux"},
                          {"Arch", arch},
                          {"KernelVersion", kernel["KernelVersion"]},
                          {"BuildTime", ""}});
}

void info(const Daemon& daemon, const Request&, Exchange& exchange) {
  const auto store = daemon.containers();
  if (!store.ok()) return exchange.send_error(store.error());
  const auto containers = store->list();
  if (!containers.ok()) return exchange.send_error(containers.error());
  int running = 0, stopped = 0;
  for (const auto& c : *containers) (c.state.status == ContainerStatus::running ? running : stopped)++;
  size_t images = 0;
  if (auto image_store = ImageStore::open(daemon.paths().images()); image_store.ok())
    if (auto list = image_store->list(); list.ok()) images = list->size();
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const Json kernel = kernel_json();
  exchange.send_json(http::status::ok,
                     Json{{"ID", ""},
                          {"Containers", containers->size()},
                          {"ContainersRunning", running},
                          {"ContainersPaused", 0},
                          {"ContainersStopped", stopped},
                          {"Images", images},
                          {"Driver", "hyper-microvm"},
                          {"DockerRootDir", daemon.paths().root.string()},
                          {"Name", host},
                          {"NCPU", std::thread::hardware_concurrency()},
                          {"MemTotal", static_cast<int64_t>(::sysconf(_SC_PHYS_PAGES)) * ::sysconf(_SC_PAGESIZE)},
                          {"OperatingSystem", "Hyper (every container in its own KVM microVM)"},
                          {"OSType", "linux"},
                          {"Architecture", kernel["Arch"]},
                          {"KernelVersion", kernel["KernelVersion"]},
                          {"ServerVersion", HYPER_VERSION},
                          {"DefaultRuntime", "hyper"},
                          {"Runtimes", {{"hyper", {{"path", "hyper-vmm (in-process, one microVM a container)"}}}}},
                          {"SecurityOptions", Json::array({"name=seccomp,profile=hyper-vmm"})},
                          {"LoggingDriver", "json-file"},
                          {"CgroupVersion", "2"},
                          {"Plugins", {{"Volume", {"local", "nbd"}}, {"Network", {"bridge", "none"}}, {"Log", {"json-file"}}}},
                          {"Warnings", Json::array()}});
}

// Container events, found by comparing the store's states between polls: create,
// start, die (with its exit code) and destroy. Like wait, the stream watches every
// running container's exit (ContainerStore::watch_exit), so a --rm container that ends
// between two polls is seen to die before it is removed.
void events(const Daemon& daemon, const Request&, Exchange& exchange) {
  const auto store = daemon.containers();
  if (!store.ok()) return exchange.send_error(store.error());
  std::map<std::string, Container> known;
  std::map<std::string, FileLock> watching;
  if (auto all = store->list(); all.ok())
    for (auto& c : *all) {
      if (c.state.status == ContainerStatus::running)
        if (auto lock = store->watch_exit(c); lock.ok()) watching.emplace(c.id, std::move(lock).value());
      known.emplace(c.id, c);
    }
  exchange.begin_stream(http::status::ok, "application/json");
  const auto emit = [&](const Container& c, const std::string& action, Json attributes) {
    attributes["name"] = c.name;
    attributes["image"] = c.config.image;
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    const Json event = {{"status", action}, {"id", c.id}, {"from", c.config.image}, {"Type", "container"},
                        {"Action", action}, {"Actor", {{"ID", c.id}, {"Attributes", attributes}}}, {"scope", "local"},
                        {"time", std::chrono::duration_cast<std::chrono::seconds>(now).count()},
                        {"timeNano", std::chrono::duration_cast<std::chrono::nanoseconds>(now).count()}};
    return exchange.write_chunk(event.dump() + "\n");
  };
  for (;;) {
    std::this_thread::sleep_for(kEventPoll);
    auto all = store->list();
    if (!all.ok()) continue;
    std::map<std::string, Container> now;
    for (auto& c : *all) now.emplace(c.id, c);
    bool open = true;
    for (const auto& [id, c] : now) {
      const auto before = known.find(id);
      if (before == known.end()) open = open && emit(c, "create", Json::object());
      const bool was_running = before != known.end() && before->second.state.status == ContainerStatus::running;
      const bool started_again = before != known.end() && before->second.state.started_at != c.state.started_at;
      if (c.state.status == ContainerStatus::running && (!was_running || started_again)) open = open && emit(c, "start", Json::object());
      if (c.state.status == ContainerStatus::exited && (was_running || (before != known.end() && before->second.state.finished_at != c.state.finished_at)))
        open = open && emit(c, "die", Json{{"exitCode", std::to_string(c.state.exit_code)}});
    }
    for (const auto& [id, c] : known)
      if (!now.contains(id)) open = open && emit(c, "destroy", Json::object());
    for (const auto& [id, c] : now) {
      if (c.state.status != ContainerStatus::running) watching.erase(id);
      else if (!watching.contains(id))
        if (auto lock = store->watch_exit(c); lock.ok()) watching.emplace(id, std::move(lock).value());
    }
    std::erase_if(watching, [&](const auto& entry) { return !now.contains(entry.first); });
    known = std::move(now);
    if (!open) return;
    if (!exchange.write_chunk("")) return;
  }
}

// hyper's own: the usage ledger's figures, as `hyper usage --format json` prints them.
void usage_report(const Daemon& daemon, const Request& request, Exchange& exchange) {
  const int64_t now = usage::unix_now();
  std::optional<int64_t> since;
  int64_t until = now;
  for (const auto& [key, target] : {std::pair<const char*, bool>{"since", true}, {"until", false}}) {
    const auto text = request.arg(key);
    if (!text || text->empty()) continue;
    const auto parsed = usage::parse_time(*text, now);
    if (!parsed.ok()) return exchange.send_error(http::status::bad_request, parsed.error().message);
    if (target) since = *parsed;
    else until = *parsed;
  }
  const auto report = usage::report_json(daemon.paths(), since, until);
  if (!report.ok()) return exchange.send_error(report.error());
  exchange.send_text(http::status::ok, report->dump() + "\n", "application/json");
}

}  // namespace

void add_system_routes(Router& router, Daemon& daemon) {
  using http::verb;
  router.add(verb::get, "/_ping", bound(daemon, ping));
  router.add(verb::get, "/version", bound(daemon, version));
  router.add(verb::get, "/info", bound(daemon, info));
  router.add(verb::get, "/events", bound(daemon, events));
  router.add(verb::get, "/hyper/usage", bound(daemon, usage_report));
}

}  // namespace hyper::runtime::api
