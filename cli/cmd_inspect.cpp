// hyper inspect: containers as JSON in the shape (and the indentation) of `docker
// inspect`, so tools and scripts that read Docker's fields find them here.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/container_args.hpp"

namespace hyper::cli {
namespace {

namespace po = boost::program_options;
using runtime::Container;
using runtime::ContainerStatus;
// Docker's field order, not alphabetical.
using Json = nlohmann::ordered_json;

constexpr uint64_t kMiB = 1024 * 1024;
constexpr uint64_t kNanoCpusPerCpu = 1'000'000'000;
constexpr size_t kShortId = 12;
constexpr const char* kZeroTime = "0001-01-01T00:00:00Z";  // Go's zero time, Docker's "never"

constexpr const char* kUsage =
    "Usage: hyper inspect CONTAINER [CONTAINER...]\n\nReturn low-level information on containers\n";

std::string or_zero_time(const std::string& time) { return time.empty() ? kZeroTime : time; }

// Docker writes null, not [], for an unset entrypoint or command.
Json list_or_null(const std::vector<std::string>& words) { return words.empty() ? Json() : Json(words); }

Json state_json(const Container& container) {
  const auto& state = container.state;
  const bool running = state.status == ContainerStatus::running;
  return {{"Status", runtime::status_name(state.status)},
          {"Running", running},
          {"Paused", false},
          {"Restarting", false},
          {"OOMKilled", false},
          {"Dead", false},
          // The container's process lives in the guest; the host process is the VMM.
          {"Pid", 0},
          {"VmmPid", running ? (state.vmm_pid ? state.vmm_pid : state.pid) : 0},
          {"ExitCode", state.exit_code},
          {"Error", state.error},
          {"StartedAt", or_zero_time(state.started_at)},
          {"FinishedAt", or_zero_time(state.finished_at)}};
}

Json config_json(const Container& container) {
  const auto& config = container.config;
  Json json = {{"Hostname", config.hostname.empty() ? container.id.substr(0, kShortId) : config.hostname},
               {"User", config.user},
               {"Tty", config.tty},
               {"OpenStdin", config.open_stdin},
               {"Env", config.env},
               {"Cmd", list_or_null(config.cmd)},
               {"Image", config.image},
               {"WorkingDir", config.working_dir},
               {"Entrypoint", list_or_null(config.entrypoint)}};
  if (!config.stop_signal.empty()) json["StopSignal"] = config.stop_signal;
  return json;
}

// hyper's own: how the VMM of the current (or last) run was confined; null before the
// first start. "Root" is how it entered a root holding only the container's directory.
Json jail_json(const Container& container) {
  if (!container.state.jail) return Json();
  const auto& jail = *container.state.jail;
  const bool jailed = !jail.namespaces.empty();
  return {{"Namespaces", jail.namespaces},
          {"Root", jail.root},
          {"RootHolds", jailed ? Json::array({container.dir.string()}) : Json::array()},
          {"Capabilities", jailed ? Json::array() : Json()},
          {"NoNewPrivs", jailed},
          {"Error", jail.error},
          {"Cgroup", jail.cgroup},
          {"MemoryMax", jail.memory_max},
          {"CpuMax", jail.cpu_max},
          {"Enforced", jail.limits_enforced},
          {"Reason", jail.limits_error}};
}

Json container_json(const Container& container) {
  std::vector<std::string> args = container.config.entrypoint;
  args.insert(args.end(), container.config.cmd.begin(), container.config.cmd.end());
  const std::string path = args.empty() ? "" : args.front();
  if (!args.empty()) args.erase(args.begin());
  const auto& config = container.config;
  return {{"Id", container.id},
          {"Created", container.created},
          {"Path", path},
          {"Args", args},
          {"State", state_json(container)},
          {"Image", config.image_id},
          {"LogPath", (container.dir / "container.log").string()},
          {"Name", "/" + container.name},
          {"HostConfig",
           {{"NanoCpus", uint64_t{config.cpus} * kNanoCpusPerCpu},
            {"Memory", config.memory_mib * kMiB},
            {"AutoRemove", config.auto_remove},
            {"SecurityOpt", config.seccomp ? Json(nullptr) : Json::array({"seccomp=unconfined"})}}},
          {"Jail", jail_json(container)},
          {"Config", config_json(container)}};
}

}  // namespace

int cmd_inspect(const GlobalOptions& global, const std::vector<std::string>& args) {
  po::options_description desc;
  po::variables_map vm;
  auto refs = parse_command_line(args, desc, vm);
  if (!refs.ok()) return report(refs.error().message + "\nSee 'hyper inspect --help'.", 125);
  if (help_requested(vm)) {
    std::printf("%s", kUsage);
    return 0;
  }
  if (refs->empty()) return report("\"hyper inspect\" requires at least 1 argument.\nSee 'hyper inspect --help'.", 125);
  auto store = open_container_store(global);
  if (!store.ok()) return report(store.error().message, 125);
  Json out = Json::array();
  int status = 0;
  for (const auto& ref : *refs) {
    auto container = store->find(ref);
    if (container.ok()) {
      out.push_back(container_json(*container));
    } else {
      status = report(container.error().code == Errc::not_found ? "No such object: " + ref : container.error().message, 1);
    }
  }
  // Arguments and environment are bytes; what is not UTF-8 is shown as U+FFFD.
  std::printf("%s\n", out.dump(4, ' ', false, Json::error_handler_t::replace).c_str());
  return status;
}

}  // namespace hyper::cli
