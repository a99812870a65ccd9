#include "runtime/network/nat_rules.hpp"

#include "guest-init/ipv4.hpp"
#include "runtime/network/host_link.hpp"

namespace hyper::runtime::net {
namespace {

// The canonical text of a dotted quad, after strict parsing.
Result<std::string> checked_ipv4(const std::string& text, const char* what) {
  auto address = guest::parse_ipv4(text);
  if (!address) return make_error(Errc::invalid_argument, std::string(what) + ": " + address.error().message);
  return guest::format_ipv4(*address);
}

Result<std::string> checked_subnet(const std::string& cidr) {
  auto parsed = guest::parse_ipv4_cidr(cidr);
  if (!parsed) return make_error(Errc::invalid_argument, "subnet: " + parsed.error().message);
  const auto [address, prefix_len] = *parsed;
  return guest::format_ipv4(address & guest::ipv4_netmask_be(prefix_len)) + '/' + std::to_string(prefix_len);
}

Status check_port(const PublishedPort& port) {
  if (port.proto != "tcp" && port.proto != "udp") {
    return make_error(Errc::invalid_argument, "published port: protocol \"" + port.proto + "\" is not tcp or udp");
  }
  if (port.host_port == 0 || port.container_port == 0) {
    return make_error(Errc::invalid_argument, "published port: port 0 cannot be published");
  }
  return {};
}

// The match for the port's destination on the host.
Result<std::string> host_match(const PublishedPort& port) {
  if (port.host_ip.empty() || port.host_ip == "0.0.0.0") return std::string("fib daddr type local");
  return "ip daddr " + HYPER_TRY(checked_ipv4(port.host_ip, "published port host address"));
}

std::string quoted(const std::string& name) { return '"' + name + '"'; }

}  // namespace

Result<std::vector<NftRule>> network_rules(const std::string& bridge, const std::string& subnet_cidr) {
  HYPER_CHECK(check_link_name(bridge));
  const std::string subnet = HYPER_TRY(checked_subnet(subnet_cidr));
  const std::string name = quoted(bridge);
  return std::vector<NftRule>{
      {"postrouting", "ip saddr " + subnet + " oifname != " + name + " masquerade"},
      {"postrouting", "ip saddr 127.0.0.0/8 oifname " + name + " masquerade"},
      {"forward", "iifname " + name + " oifname " + quoted(std::string(kBridgePrefix) + "*") + " oifname != " + name +
                      " drop"},
  };
}

Result<std::vector<NftRule>> port_rules(const std::string& container_ip, const std::vector<PublishedPort>& ports) {
  const std::string target = HYPER_TRY(checked_ipv4(container_ip, "container address"));
  std::vector<NftRule> rules;
  for (const PublishedPort& port : ports) {
    HYPER_CHECK(check_port(port));
    const std::string statement = HYPER_TRY(host_match(port)) + ' ' + port.proto + " dport " +
                                  std::to_string(port.host_port) + " dnat to " + target + ':' +
                                  std::to_string(port.container_port);
    rules.push_back({"prerouting", statement});
    rules.push_back({"output", statement});
  }
  return rules;
}

Result<std::vector<NftRule>> floating_ip_rules(const std::string& fip, const std::string& container_ip,
                                               const std::string& bridge) {
  const std::string floating = HYPER_TRY(checked_ipv4(fip, "floating address"));
  const std::string target = HYPER_TRY(checked_ipv4(container_ip, "container address"));
  HYPER_CHECK(check_link_name(bridge));
  const std::string inbound = "ip daddr " + floating + " dnat to " + target;
  return std::vector<NftRule>{
      {"prerouting", inbound},
      {"output", inbound},
      {"postrouting", "ip saddr " + target + " oifname != " + quoted(bridge) + " snat to " + floating},
  };
}

}  // namespace hyper::runtime::net
