// The nftables rules of container networks, published ports and floating addresses, as
// text for add_rules: pure functions, so the rule text is tested without a kernel. Every
// input is validated here, since it ends up inside nft syntax. A function given an invalid
// input returns the error instead of rules.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/network/nft.hpp"
#include "vmm/result.hpp"

namespace hyper::runtime::net {

// Every hyper bridge is called "hyper...", which is how the forward rule tells them apart
// from the host's other interfaces.
inline constexpr const char* kBridgePrefix = "hyper";

// Egress NAT for the network on `bridge` with `subnet_cidr` ("10.88.0.0/16"; host bits are
// dropped), and isolation from the other hyper bridges:
//   postrouting: ip saddr SUBNET oifname != BRIDGE masquerade
//   postrouting: ip saddr 127.0.0.0/8 oifname BRIDGE masquerade   (published ports used from loopback)
//   forward:     iifname BRIDGE oifname "hyper*" oifname != BRIDGE drop
[[nodiscard]] Result<std::vector<NftRule>> network_rules(const std::string& bridge, const std::string& subnet_cidr);

struct PublishedPort {
  std::string host_ip;  // "" or "0.0.0.0": every local address
  uint16_t host_port;
  uint16_t container_port;
  std::string proto;  // "tcp" | "udp"
};

// DNAT to container_ip:container_port for traffic to each host port, in prerouting (from
// other hosts and namespaces) and output (from the host itself, 127.0.0.1 included).
// Publishing on every address matches `fib daddr type local`.
[[nodiscard]] Result<std::vector<NftRule>> port_rules(const std::string& container_ip,
                                                      const std::vector<PublishedPort>& ports);

// A floating address mapped 1:1 onto a container: prerouting and output
// `ip daddr FIP dnat to CIP`, postrouting `ip saddr CIP oifname != BRIDGE snat to FIP`.
[[nodiscard]] Result<std::vector<NftRule>> floating_ip_rules(const std::string& fip, const std::string& container_ip,
                                                             const std::string& bridge);

}  // namespace hyper::runtime::net
