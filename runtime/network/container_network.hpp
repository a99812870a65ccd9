// The host side of one container's run on a network, held by its monitor for as long as
// the VM runs: the address lease, the tap on the network's bridge, the published ports
// (each reserved by a bound socket, so a taken port fails the start, and forwarded by
// nftables DNAT), a floating address attached to it, and the network's DNS resolver.
// Everything is undone by the destructor; what a killed monitor leaves behind (rules, the
// lease) is undone by release_container_network, which `rm` and the next start call. The
// tap needs no such care: the kernel deletes it with the last fd.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/container_store.hpp"
#include "runtime/network/network_config.hpp"
#include "runtime/network/network_store.hpp"
#include "runtime/paths.hpp"
#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::runtime::net {

class DnsServer;

// The tag of a container's own nftables rules (its published ports).
[[nodiscard]] std::string container_rule_tag(const std::string& container_id);

class ContainerNetwork {
 public:
  // Before the VMM starts; on failure nothing is left behind.
  static Result<std::unique_ptr<ContainerNetwork>> attach(const Paths& paths, const ContainerStore& containers,
                                                          const Container& container);
  ~ContainerNetwork();
  ContainerNetwork(const ContainerNetwork&) = delete;
  ContainerNetwork& operator=(const ContainerNetwork&) = delete;

  [[nodiscard]] int tap_fd() const { return tap_.get(); }
  [[nodiscard]] const EndpointState& state() const { return state_; }
  // The agent's start request "network": eth0's address, the resolver, /etc/hosts lines.
  [[nodiscard]] nlohmann::json guest_network() const;
  // --link's variables for the container's environment (ALIAS_PORT_80_TCP_ADDR...).
  [[nodiscard]] const std::vector<std::string>& link_env() const { return link_env_; }
  // Once the VMM is forked (a thread would not survive the fork): serves the network's
  // names on its gateway, port 53.
  Status start_resolver();

 private:
  ContainerNetwork(Paths paths, const Container& container);
  Status set_up(const ContainerStore& containers);
  Status reserve_ports();
  Status resolve_links(const ContainerStore& containers);

  Paths paths_;
  Container container_;
  Network network_;
  Endpoint endpoint_;
  EndpointState state_;
  UniqueFd tap_;
  std::vector<UniqueFd> reservations_;
  std::vector<std::string> hosts_, link_env_;
  std::unique_ptr<DnsServer> dns_;
  bool leased_ = false, ports_forwarded_ = false, floating_started_ = false;
};

// The "network" of a start request for a container without one (--network none): only
// its --dns, --dns-search and --add-host.
[[nodiscard]] nlohmann::json guest_network_without_interface(const NetworkConfig& config);

// Drops what a container's runs may have left on the host: its leases, its port rules,
// its floating address's rules. `removed`: the container goes, so its floating address is
// detached too.
Status release_container_network(const Paths& paths, const std::string& container_id, bool removed);

// The bridge, its address and the network's NAT and isolation rules, made when missing
// (network create, and every start, since a host reboot or `nft flush ruleset` loses them).
Status ensure_network_on_host(const Paths& paths, const Network& network);
// `network rm`: the bridge and the rules go.
Status remove_network_from_host(const Network& network);

// `network create`: the record, and (as root) its bridge at once, as Docker's exists from
// creation on; without root the bridge comes with the first container (which needs root too).
Result<Network> create_network(const Paths& paths, NetworkStore& store, const NetworkRequest& request);
// `network rm`: the record, and (as root) the bridge and its rules.
Status remove_network(const NetworkStore& store, const Network& network);

}  // namespace hyper::runtime::net
