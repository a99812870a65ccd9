// Networks and their address leases, kept under the state root so that every `hyper`
// command sees the same ones without a daemon:
//
//   networks/lock                          held while a network or a lease changes
//   networks/<id>/network.json             name, subnet, gateway, bridge (written once)
//   networks/<id>/endpoints/<container>.json  one lease: the container's address, names and
//                                          the monitor holding it (replaced atomically)
//
// A lease whose monitor is gone (killed) is stale: allocation reuses its address and the
// DNS resolver ignores it, so a crash never leaks an address for good.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "runtime/network/subnet.hpp"
#include "vmm/result.hpp"

namespace hyper::runtime::net {

inline constexpr const char* kDefaultNetwork = "bridge";
inline constexpr const char* kDefaultBridge = "hyper0";
inline constexpr const char* kDefaultSubnet = "172.31.0.0/16";

struct Network {
  std::string id;  // 64 hex digits
  std::string name;
  std::string driver = "bridge";
  std::string created;  // RFC 3339
  std::string bridge;   // the host's bridge device
  Subnet subnet;
  uint32_t gateway = 0;  // the bridge's address, the containers' default route and resolver
  std::filesystem::path dir;

  [[nodiscard]] bool is_default() const { return name == kDefaultNetwork; }
  // The tag of the network's own nftables rules.
  [[nodiscard]] std::string rule_tag() const { return "hyper:net:" + id.substr(0, 12); }
};

struct Endpoint {
  std::string container_id, container_name;
  std::vector<std::string> aliases;  // --network-alias; the resolver answers for them too
  uint32_t address = 0;
  std::string mac;
  std::vector<std::string> dns;  // the container's --dns servers, where its lookups go
  pid_t monitor_pid = 0;
  uint64_t monitor_start_ticks = 0;
};

struct NetworkRequest {
  std::string name;
  std::optional<std::string> subnet, gateway;  // chosen by the store when absent
};

class NetworkStore {
 public:
  // Creates the directory and the default network's record when missing.
  static Result<NetworkStore> open(const std::filesystem::path& dir);

  // `host_routes`: subnets the host reaches already, which an automatic choice avoids.
  Result<Network> create(const NetworkRequest& request, const std::vector<Subnet>& host_routes);
  // By name, full id or unique id prefix.
  [[nodiscard]] Result<Network> find(const std::string& reference) const;
  [[nodiscard]] Result<std::vector<Network>> list() const;  // the default first, then by name
  // Refuses the default network and a network with live endpoints.
  Status remove(const Network& network) const;

  // The live leases (stale ones left out).
  [[nodiscard]] Result<std::vector<Endpoint>> endpoints(const Network& network) const;
  // Leases the lowest free address to `endpoint` (its address field is ignored) and
  // records it; replaces the container's earlier lease on this network.
  Result<Endpoint> attach(const Network& network, Endpoint endpoint) const;
  // Drops the container's lease on every network; none is fine.
  Status detach_everywhere(const std::string& container_id) const;

 private:
  explicit NetworkStore(std::filesystem::path dir) : dir_(std::move(dir)) {}
  [[nodiscard]] Result<Network> load(const std::string& id) const;
  [[nodiscard]] Result<std::vector<std::string>> ids() const;
  std::filesystem::path dir_;
};

// The host's routes from /proc/net/route (empty when it cannot be read).
[[nodiscard]] std::vector<Subnet> host_routes();

}  // namespace hyper::runtime::net
