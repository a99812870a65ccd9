#include "runtime/api/create_body.hpp"

#include <cmath>

namespace hyper::runtime::api {
namespace {

std::vector<std::string> strings(const Json& body, const char* key) {
  std::vector<std::string> out;
  const auto it = body.find(key);
  if (it == body.end() || it->is_null()) return out;
  if (it->is_string()) return {it->get<std::string>()};  // Docker accepts "Cmd": "sh" too
  for (const auto& item : *it) out.push_back(item.get<std::string>());
  return out;
}

std::string text(const Json& body, const char* key) {
  const auto it = body.find(key);
  return it == body.end() || it->is_null() ? std::string() : it->get<std::string>();
}

bool boolean(const Json& body, const char* key) {
  const auto it = body.find(key);
  return it != body.end() && it->is_boolean() && it->get<bool>();
}

// HostConfig.PortBindings {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]} as -p words.
std::vector<std::string> publish_words(const Json& host) {
  std::vector<std::string> out;
  const auto it = host.find("PortBindings");
  if (it == host.end() || !it->is_object()) return out;
  for (const auto& [port, bindings] : it->items()) {
    if (!bindings.is_array() || bindings.empty()) {
      out.push_back(port);
      continue;
    }
    for (const auto& binding : bindings) {
      const std::string ip = text(binding, "HostIp"), host_port = text(binding, "HostPort");
      out.push_back((ip.empty() ? "" : ip + ":") + host_port + ":" + port);
    }
  }
  return out;
}

// HostConfig.Mounts as --mount words.
std::vector<std::string> mount_words(const Json& host) {
  std::vector<std::string> out;
  const auto it = host.find("Mounts");
  if (it == host.end() || !it->is_array()) return out;
  for (const auto& mount : *it) {
    std::string word = "type=" + text(mount, "Type") + ",target=" + text(mount, "Target");
    if (!text(mount, "Source").empty()) word += ",source=" + text(mount, "Source");
    if (boolean(mount, "ReadOnly")) word += ",readonly";
    out.push_back(word);
  }
  return out;
}

std::vector<std::string> tmpfs_words(const Json& host) {
  std::vector<std::string> out;
  const auto it = host.find("Tmpfs");
  if (it == host.end() || !it->is_object()) return out;
  for (const auto& [target, options] : it->items())
    out.push_back(options.get<std::string>().empty() ? target : target + ":" + options.get<std::string>());
  return out;
}

}  // namespace

Result<RunFlags> create_flags(const Json& body, const std::optional<std::string>& name) {
  RunFlags flags;
  flags.image = text(body, "Image");
  if (flags.image.empty()) return make_error(Errc::invalid_argument, "config cannot be empty in order to create a container");
  flags.name = name;
  flags.command = strings(body, "Cmd");
  if (body.contains("Entrypoint") && !body["Entrypoint"].is_null()) flags.entrypoint = strings(body, "Entrypoint");
  flags.env = strings(body, "Env");
  flags.tty = boolean(body, "Tty");
  flags.interactive = boolean(body, "OpenStdin");
  if (!text(body, "WorkingDir").empty()) flags.workdir = text(body, "WorkingDir");
  if (!text(body, "User").empty()) flags.user = text(body, "User");
  if (!text(body, "Hostname").empty()) flags.hostname = text(body, "Hostname");
  if (!text(body, "MacAddress").empty()) flags.mac_address = text(body, "MacAddress");
  const Json host = body.value("HostConfig", Json::object());
  flags.remove = boolean(host, "AutoRemove");
  flags.volumes = strings(host, "Binds");
  flags.mounts = mount_words(host);
  flags.tmpfs = tmpfs_words(host);
  flags.publish = publish_words(host);
  flags.publish_all = boolean(host, "PublishAllPorts");
  flags.links = strings(host, "Links");
  flags.dns = strings(host, "Dns");
  flags.dns_search = strings(host, "DnsSearch");
  for (const auto& entry : strings(host, "ExtraHosts")) flags.add_hosts.push_back(entry);
  const std::string mode = text(host, "NetworkMode");
  if (!mode.empty() && mode != "default") flags.network = mode;
  if (host.value("Memory", int64_t{0}) > 0) flags.memory = std::to_string(host["Memory"].get<int64_t>());
  if (host.value("NanoCpus", int64_t{0}) > 0)
    flags.cpus = std::to_string(static_cast<int64_t>(std::ceil(static_cast<double>(host["NanoCpus"].get<int64_t>()) / 1e9)));
  for (const auto& option : strings(host, "SecurityOpt")) {
    if (option != "seccomp=unconfined" && option != "seccomp:unconfined")
      return make_error(Errc::invalid_argument, "security option \"" + option + "\" is not supported (only seccomp=unconfined)");
    flags.seccomp = false;
  }
  if (const auto endpoints = body.value("NetworkingConfig", Json::object()).value("EndpointsConfig", Json::object());
      endpoints.is_object()) {
    for (const auto& [network, endpoint] : endpoints.items()) {
      if (!flags.network && network != "default") flags.network = network;
      for (const auto& alias : strings(endpoint, "Aliases")) flags.network_aliases.push_back(alias);
    }
  }
  return flags;
}

}  // namespace hyper::runtime::api
