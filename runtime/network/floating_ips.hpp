// Floating addresses (hyper.sh's floating IPs): public addresses from a pool named in
// <root>/config.json, allocated to the user, then attached to one container at a time.
// An attached address reaches its container 1:1 (runtime/network/nat_rules.hpp), and
// `attach` to another container moves it without restarting either.
//
//   <root>/config.json            {"floating_ips": {"pool": "198.51.100.0/28", "interface": "eth0"}}
//   <root>/networks/floating_ips.json   {"198.51.100.1": {"container": "<id>" or ""}}
//
// "interface" is optional: when given, an allocated address is added to it as a /32, so
// that the uplink's neighbours get ARP answers for it; without it the upstream routes the
// pool to this host.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "runtime/file_lock.hpp"
#include "runtime/network/subnet.hpp"
#include "runtime/paths.hpp"
#include "vmm/result.hpp"

namespace hyper::runtime::net {

struct FloatingIpPool {
  Subnet pool;
  std::string interface;  // "" when none
};

struct FloatingIp {
  std::string address;
  std::string container_id;  // "" when not attached
};

// Where a container is on its network while it runs, for the address's rules.
struct FloatingTarget {
  std::string container_id;
  std::string address;  // the container's own address, no prefix
  std::string bridge;
};

// The pool from <root>/config.json; an error saying how to configure one when absent.
[[nodiscard]] Result<FloatingIpPool> read_floating_pool(const Paths& paths);

class FloatingIps {
 public:
  static Result<FloatingIps> open(const Paths& paths);

  [[nodiscard]] Result<std::vector<FloatingIp>> list() const;
  // The lowest free address of the pool, or `wanted` when it is in the pool and free.
  Result<std::string> allocate(const std::optional<std::string>& wanted) const;
  // Records the address as attached to the container and, when `running` says where the
  // container is now, moves the address's rules to it. The address must be allocated.
  Status attach(const std::string& address, const std::string& container_id,
                const std::optional<FloatingTarget>& running) const;
  Status detach(const std::string& address) const;
  // Detaches first; then the address goes back to the pool.
  Status release(const std::string& address) const;

  // For a container's monitor: installs (at start) or removes (at its end) the rules of the
  // address attached to it, if any, under the same lock as `attach`, so a move to another
  // container is never undone by the first container's monitor ending.
  Status container_started(const FloatingTarget& target) const;
  Status container_stopped(const std::string& container_id) const;
  // `hyper rm`: the container's address is detached (it stays allocated).
  Status container_removed(const std::string& container_id) const;

 private:
  FloatingIps(std::filesystem::path state, FloatingIpPool pool) : state_(std::move(state)), pool_(std::move(pool)) {}
  std::filesystem::path state_;
  FloatingIpPool pool_;
};

// For containers' monitors and `rm`, which work without a pool configured: the same
// operations, doing nothing when there is no pool.
Status floating_ips_started(const Paths& paths, const FloatingTarget& target);
Status floating_ips_stopped(const Paths& paths, const std::string& container_id);
Status floating_ips_removed(const Paths& paths, const std::string& container_id);

}  // namespace hyper::runtime::net
