#include "runtime/api/container_json.hpp"

#include <cstdlib>
#include <ctime>

#include "runtime/api/human_time.hpp"

namespace hyper::runtime::api {
namespace {

using Json = OrderedJson;

constexpr uint64_t kMiB = 1024 * 1024;
constexpr uint64_t kNanoCpusPerCpu = 1'000'000'000;
constexpr size_t kShortId = 12;
constexpr const char* kZeroTime = "0001-01-01T00:00:00Z";  // Go's zero time, Docker's "never"

std::string or_zero_time(const std::string& time) { return time.empty() ? kZeroTime : time; }

// Docker writes null, not [], for an unset entrypoint or command.
Json list_or_null(const std::vector<std::string>& words) { return words.empty() ? Json() : Json(words); }

Json state_json(const Container& container) {
  const auto& state = container.state;
  const bool running = state.status == ContainerStatus::running;
  return {{"Status", status_name(state.status)},
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
               {"Entrypoint", list_or_null(config.entrypoint)},
               {"Labels", Json::object()}};
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
    Json item = {{"Type", volume::mount_type_name(mount.type)},
                 {"Source", mount.source},
                 {"Destination", mount.target},
                 {"Mode", mount.read_only ? "ro" : ""},
                 {"RW", !mount.read_only}};
    if (mount.type == volume::MountType::volume) item["Name"] = mount.source;
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
  if (endpoint && container.state.status == ContainerStatus::running) {
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
Json extra_hosts_json(const net::NetworkConfig& config) {
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

}  // namespace

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
          {"RestartCount", 0},
          {"Driver", "hyper-microvm"},
          {"Platform", "linux"},
          {"HostConfig",
           {{"NanoCpus", uint64_t{config.cpus} * kNanoCpusPerCpu},
            {"Memory", config.memory_mib * kMiB},
            {"AutoRemove", config.auto_remove},
            // Docker's SDKs read these: the log is json-file (runtime/log_file.hpp), and a
            // container restarts only when asked.
            {"LogConfig", {{"Type", "json-file"}, {"Config", Json::object()}}},
            {"RestartPolicy", {{"Name", "no"}, {"MaximumRetryCount", 0}}},
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

std::string status_text(const Container& container) {
  const auto& state = container.state;
  switch (state.status) {
    case ContainerStatus::created: return "Created";
    case ContainerStatus::running: {
      const auto seconds = seconds_since(state.started_at);
      return "Up " + (seconds ? human_duration(*seconds) : std::string("Less than a second"));
    }
    case ContainerStatus::exited: return "Exited (" + std::to_string(state.exit_code) + ") " + ago(state.finished_at);
  }
  return "";
}

namespace {

int64_t unix_seconds(const std::string& rfc3339) {
  tm utc{};
  if (::strptime(rfc3339.c_str(), "%Y-%m-%dT%H:%M:%S", &utc) == nullptr) return 0;
  return static_cast<int64_t>(::timegm(&utc));
}

std::string command_line(const ContainerConfig& config) {
  std::string line;
  for (const auto* words : {&config.entrypoint, &config.cmd})
    for (const auto& word : *words) line += (line.empty() ? "" : " ") + word;
  return line;
}

Json ports_summary_json(const Container& container) {
  Json ports = Json::array();
  const auto& endpoint = container.state.endpoint;
  if (!endpoint || container.state.status != ContainerStatus::running) return ports;
  for (const auto& port : endpoint->ports)
    ports.push_back({{"IP", port.host_ip.empty() ? "0.0.0.0" : port.host_ip},
                     {"PrivatePort", port.container_port},
                     {"PublicPort", port.host_port},
                     {"Type", port.proto}});
  return ports;
}

}  // namespace

OrderedJson container_summary_json(const Container& container) {
  const auto full = container_json(container);
  return {{"Id", container.id},
          {"Names", Json::array({"/" + container.name})},
          {"Image", container.config.image},
          {"ImageID", container.config.image_id},
          {"Command", command_line(container.config)},
          {"Created", unix_seconds(container.created)},
          {"Ports", ports_summary_json(container)},
          {"Labels", Json::object()},
          {"State", status_name(container.state.status)},
          {"Status", status_text(container)},
          {"HostConfig", {{"NetworkMode", full["HostConfig"]["NetworkMode"]}}},
          {"NetworkSettings", {{"Networks", full["NetworkSettings"]["Networks"]}}},
          {"Mounts", full["Mounts"]}};
}

}  // namespace hyper::runtime::api
