// hyper inspect: containers as JSON in the shape (and the indentation) of `docker
// inspect`, so tools and scripts that read Docker's fields find them here.
#include <cstdio>
#include <cstdlib>
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

// Docker's "Mounts": each volume, host directory and tmpfs, as the container sees it.
Json mounts_json(const Container& container) {
  Json mounts = Json::array();
  for (const auto& mount : container.config.mounts) {
    Json item = {{"Type", runtime::volume::mount_type_name(mount.type)},
                 {"Source", mount.source},
                 {"Destination", mount.target},
                 {"Mode", mount.read_only ? "ro" : ""},
                 {"RW", !mount.read_only}};
    if (mount.type == runtime::volume::MountType::volume) item["Name"] = mount.source;
    mounts.push_back(item);
  }
  return mounts;
}

// Docker's "NetworkSettings": where the running container is; empty values when stopped.
Json network_settings_json(const Container& container) {
  const auto& endpoint = container.state.endpoint;
  Json ports = Json::object();
  for (const auto& port : container.config.net.ports) ports[std::to_string(port.container_port) + "/" + port.proto] = nullptr;
  std::string ip, gateway, mac;
  int prefix = 0;
  Json networks = Json::object();
  if (endpoint && container.state.status == runtime::ContainerStatus::running) {
    const auto slash = endpoint->address.find('/');
    ip = endpoint->address.substr(0, slash);
    prefix = slash == std::string::npos ? 0 : std::atoi(endpoint->address.c_str() + slash + 1);
    gateway = endpoint->gateway;
    mac = endpoint->mac;
    for (const auto& port : endpoint->ports) {
      auto& bindings = ports[std::to_string(port.container_port) + "/" + port.proto];
      if (!bindings.is_array()) bindings = Json::array();
      bindings.push_back({{"HostIp", port.host_ip.empty() ? "0.0.0.0" : port.host_ip}, {"HostPort", std::to_string(port.host_port)}});
    }
    networks[endpoint->network_name] = {{"NetworkID", endpoint->network_id}, {"IPAddress", ip},
                                        {"IPPrefixLen", prefix},         {"Gateway", gateway},
                                        {"MacAddress", mac},             {"Aliases", list_or_null(container.config.net.aliases)}};
  }
  return {{"IPAddress", ip}, {"IPPrefixLen", prefix}, {"Gateway", gateway}, {"MacAddress", mac},
          {"Ports", ports},  {"Networks", networks},  {"SandboxKey", endpoint ? endpoint->tap : ""}};
}

// Docker's form: "/db:/web/db".
Json links_json(const Container& container) {
  Json links = Json::array();
  for (const auto& link : container.config.net.links) links.push_back("/" + link.name + ":/" + container.name + "/" + link.alias);
  return links.empty() ? Json() : links;
}

// Back to the flag's "NAME:IP" from the hosts line "IP NAME".
Json extra_hosts_json(const runtime::net::NetworkConfig& config) {
  Json hosts = Json::array();
  for (const auto& line : config.extra_hosts) {
    const auto space = line.find(' ');
    hosts.push_back(line.substr(space + 1) + ":" + line.substr(0, space));
  }
  return hosts.empty() ? Json() : hosts;
}

Json port_bindings_json(const Container& container) {
  Json bindings = Json::object();
  for (const auto& port : container.config.net.ports) {
    auto& list = bindings[std::to_string(port.container_port) + "/" + port.proto];
    if (!list.is_array()) list = Json::array();
    list.push_back({{"HostIp", port.host_ip}, {"HostPort", port.host_port ? std::to_string(port.host_port) : ""}});
  }
  return bindings;
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
            {"SecurityOpt", config.seccomp ? Json(nullptr) : Json::array({"seccomp=unconfined"})},
            {"NetworkMode", config.network ? "tap" : config.net.network},
            {"PortBindings", port_bindings_json(container)},
            {"Links", links_json(container)},
            {"Dns", config.net.dns},
            {"DnsSearch", config.net.dns_search},
            {"ExtraHosts", extra_hosts_json(config.net)}}},
          {"Mounts", mounts_json(container)},
          {"NetworkSettings", network_settings_json(container)},
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
