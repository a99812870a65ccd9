#include "runtime/network/network_config.hpp"

#include <charconv>

#include "runtime/network/subnet.hpp"

namespace hyper::runtime::net {
namespace {

using Json = nlohmann::json;

Result<uint16_t> parse_port(const std::string& text, const std::string& spec) {
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value == 0 || value > 65535)
    return make_error(Errc::invalid_argument, "invalid port \"" + text + "\" in \"" + spec + "\": 1 to 65535");
  return static_cast<uint16_t>(value);
}

// "80" or "8000-8002" -> {first, count}
Result<std::pair<uint16_t, uint16_t>> parse_port_range(const std::string& text, const std::string& spec) {
  const auto dash = text.find('-');
  if (dash == std::string::npos) return std::pair<uint16_t, uint16_t>{HYPER_TRY(parse_port(text, spec)), 1};
  const uint16_t first = HYPER_TRY(parse_port(text.substr(0, dash), spec));
  const uint16_t last = HYPER_TRY(parse_port(text.substr(dash + 1), spec));
  if (last < first) return make_error(Errc::invalid_argument, "invalid port range \"" + text + "\" in \"" + spec + "\"");
  return std::pair<uint16_t, uint16_t>{first, static_cast<uint16_t>(last - first + 1)};
}

Result<std::string> parse_proto(const std::string& text, const std::string& spec) {
  if (text == "tcp" || text == "udp") return text;
  return make_error(Errc::invalid_argument, "invalid protocol \"" + text + "\" in \"" + spec + "\": tcp or udp");
}

std::vector<std::string> strings(const Json& json, const char* key) {
  std::vector<std::string> out;
  if (const auto it = json.find(key); it != json.end() && it->is_array())
    for (const auto& item : *it)
      if (item.is_string()) out.push_back(item.get<std::string>());
  return out;
}

Json ports_json(const std::vector<PortMapping>& ports) {
  Json out = Json::array();
  for (const auto& port : ports)
    out.push_back({{"host_ip", port.host_ip}, {"host_port", port.host_port}, {"container_port", port.container_port}, {"proto", port.proto}});
  return out;
}

std::vector<PortMapping> parse_ports(const Json& json) {
  std::vector<PortMapping> ports;
  if (!json.is_array()) return ports;
  for (const auto& item : json) {
    if (!item.is_object()) continue;
    PortMapping port;
    port.host_ip = item.value("host_ip", "");
    port.host_port = item.value("host_port", uint16_t{0});
    port.container_port = item.value("container_port", uint16_t{0});
    port.proto = item.value("proto", "tcp");
    ports.push_back(port);
  }
  return ports;
}

}  // namespace

Result<std::vector<PortMapping>> parse_publish(const std::string& spec) {
  std::string rest = spec, proto = "tcp";
  if (const auto slash = rest.rfind('/'); slash != std::string::npos) {
    proto = HYPER_TRY(parse_proto(rest.substr(slash + 1), spec));
    rest.resize(slash);
  }
  std::string host_ip, host_ports;
  const auto last_colon = rest.rfind(':');
  const std::string container_ports = last_colon == std::string::npos ? rest : rest.substr(last_colon + 1);
  if (last_colon != std::string::npos) {
    const std::string front = rest.substr(0, last_colon);
    const auto colon = front.rfind(':');
    if (colon == std::string::npos) {
      host_ports = front;
    } else {
      host_ip = front.substr(0, colon);
      host_ports = front.substr(colon + 1);
      if (!parse_address(host_ip).ok())
        return make_error(Errc::invalid_argument, "invalid IP address \"" + host_ip + "\" in \"" + spec + "\" (IPv4 only)");
      if (host_ip == "0.0.0.0") host_ip.clear();
    }
  }
  const auto [container_first, count] = HYPER_TRY(parse_port_range(container_ports, spec));
  uint16_t host_first = 0;
  if (!host_ports.empty()) {
    const auto [first, host_count] = HYPER_TRY(parse_port_range(host_ports, spec));
    if (host_count != count)
      return make_error(Errc::invalid_argument, "invalid ranges in \"" + spec + "\": the host and container ranges differ in length");
    host_first = first;
  }
  std::vector<PortMapping> mappings;
  for (uint16_t i = 0; i < count; ++i)
    mappings.push_back(PortMapping{host_ip, static_cast<uint16_t>(host_first ? host_first + i : 0),
                                   static_cast<uint16_t>(container_first + i), proto});
  return mappings;
}

Result<Link> parse_link(const std::string& spec) {
  const auto colon = spec.find(':');
  Link link{spec.substr(0, colon), colon == std::string::npos ? spec : spec.substr(colon + 1)};
  if (!link.name.empty() && link.name[0] == '/') link.name.erase(0, 1);
  if (link.name.empty() || link.alias.empty() || link.alias.find(':') != std::string::npos)
    return make_error(Errc::invalid_argument, "invalid --link \"" + spec + "\": want NAME or NAME:ALIAS");
  return link;
}

Result<std::string> parse_add_host(const std::string& spec) {
  // NAME:IP, and NAME=IP as newer Docker also takes.
  const auto split = spec.find_first_of(":=");
  const std::string name = split == std::string::npos ? "" : spec.substr(0, split);
  const std::string ip = split == std::string::npos ? "" : spec.substr(split + 1);
  if (name.empty() || name.find_first_of(" \t\n") != std::string::npos || !parse_address(ip).ok())
    return make_error(Errc::invalid_argument, "invalid --add-host \"" + spec + "\": want NAME:IPv4");
  return ip + " " + name;
}

Result<PortMapping> exposed_port_mapping(const std::string& key) {
  const auto slash = key.find('/');
  PortMapping port;
  port.container_port = HYPER_TRY(parse_port(key.substr(0, slash), key));
  if (slash != std::string::npos) port.proto = HYPER_TRY(parse_proto(key.substr(slash + 1), key));
  return port;
}

std::string port_text(const PortMapping& port) {
  return (port.host_ip.empty() ? "0.0.0.0" : port.host_ip) + ":" + std::to_string(port.host_port) + "->" +
         std::to_string(port.container_port) + "/" + port.proto;
}

Json config_json(const NetworkConfig& config) {
  Json links = Json::array();
  for (const auto& link : config.links) links.push_back({{"name", link.name}, {"alias", link.alias}});
  return {{"network", config.network}, {"aliases", config.aliases}, {"ports", ports_json(config.ports)},
          {"links", links},           {"dns", config.dns},         {"dns_search", config.dns_search},
          {"extra_hosts", config.extra_hosts}, {"mac", config.mac}};
}

NetworkConfig parse_config_json(const Json& json) {
  NetworkConfig config;
  if (!json.is_object()) return config;
  config.network = json.value("network", "bridge");
  config.aliases = strings(json, "aliases");
  config.ports = parse_ports(json.value("ports", Json::array()));
  if (const auto it = json.find("links"); it != json.end() && it->is_array())
    for (const auto& item : *it)
      if (item.is_object()) config.links.push_back(Link{item.value("name", ""), item.value("alias", "")});
  config.dns = strings(json, "dns");
  config.dns_search = strings(json, "dns_search");
  config.extra_hosts = strings(json, "extra_hosts");
  config.mac = json.value("mac", "");
  return config;
}

Json endpoint_json(const EndpointState& endpoint) {
  return {{"network_id", endpoint.network_id}, {"network_name", endpoint.network_name}, {"address", endpoint.address},
          {"gateway", endpoint.gateway},       {"mac", endpoint.mac},                   {"tap", endpoint.tap},
          {"bridge", endpoint.bridge},
          {"ports", ports_json(endpoint.ports)}};
}

EndpointState parse_endpoint_json(const Json& json) {
  EndpointState endpoint;
  if (!json.is_object()) return endpoint;
  endpoint.network_id = json.value("network_id", "");
  endpoint.network_name = json.value("network_name", "");
  endpoint.address = json.value("address", "");
  endpoint.gateway = json.value("gateway", "");
  endpoint.mac = json.value("mac", "");
  endpoint.tap = json.value("tap", "");
  endpoint.bridge = json.value("bridge", "");
  endpoint.ports = parse_ports(json.value("ports", Json::array()));
  return endpoint;
}

}  // namespace hyper::runtime::net
