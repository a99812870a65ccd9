// What `hyper run` asked of a container's network (--network, -p, --link, --dns...), as
// kept in its config.json, and what its current run got (address, host ports), as kept in
// its state.json. Parsing and (de)serialising only; runtime/network/container_network.hpp
// sets it up on the host.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vmm/result.hpp"

namespace hyper::runtime::net {

struct PortMapping {
  std::string host_ip;     // "" = every local address
  uint16_t host_port = 0;  // 0 = any free port, chosen at each start
  uint16_t container_port = 0;
  std::string proto = "tcp";  // "tcp" | "udp"
  bool operator==(const PortMapping&) const = default;
};

struct Link {
  std::string name;   // the linked container
  std::string alias;  // the name it has here
  bool operator==(const Link&) const = default;
};

struct NetworkConfig {
  std::string network = "bridge";  // a network's name or id, or "none"
  std::vector<std::string> aliases;  // --network-alias
  std::vector<PortMapping> ports;    // -p, and -P's choice of the image's EXPOSEd ports
  std::vector<Link> links;
  std::vector<std::string> dns, dns_search;
  std::vector<std::string> extra_hosts;  // "IP NAME" lines for /etc/hosts, from --add-host NAME:IP
  std::string mac;                       // --mac-address; random otherwise
  [[nodiscard]] bool none() const { return network == "none"; }
};

// What the container's current (or last) run got on its network.
struct EndpointState {
  std::string network_id, network_name;
  std::string address;  // "172.31.0.2/16"
  std::string gateway, mac, tap, bridge;
  std::vector<PortMapping> ports;  // with the host ports actually bound
};

// -p [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp], and ranges of equal length on both sides
// ("8000-8001:80-81"); an empty host port is chosen at start.
[[nodiscard]] Result<std::vector<PortMapping>> parse_publish(const std::string& spec);
// --link NAME[:ALIAS]
[[nodiscard]] Result<Link> parse_link(const std::string& spec);
// --add-host NAME:IP -> the /etc/hosts line "IP NAME"
[[nodiscard]] Result<std::string> parse_add_host(const std::string& spec);
// An image's ExposedPorts key ("80/tcp") -> a mapping to a port chosen at start (-P).
[[nodiscard]] Result<PortMapping> exposed_port_mapping(const std::string& key);

// "0.0.0.0:8080->80/tcp", as `docker ps` and `docker port` print it.
[[nodiscard]] std::string port_text(const PortMapping& port);

[[nodiscard]] nlohmann::json config_json(const NetworkConfig& config);
[[nodiscard]] NetworkConfig parse_config_json(const nlohmann::json& json);  // lenient: defaults for what is missing
[[nodiscard]] nlohmann::json endpoint_json(const EndpointState& endpoint);
[[nodiscard]] EndpointState parse_endpoint_json(const nlohmann::json& json);

}  // namespace hyper::runtime::net
