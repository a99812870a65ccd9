// The host's side of container networks, over rtnetlink (guest::Netlink's framing): a
// bridge per network, a tap per container enslaved to it, and floating addresses on an
// uplink. Everything acts in the calling thread's network namespace and needs
// CAP_NET_ADMIN; the kernel needs the bridge and tun drivers.
#pragma once

#include <cstdint>
#include <string>

#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::runtime::net {

// 1-15 characters of [A-Za-z0-9_.-]: what IFNAMSIZ allows, without anything a shell,
// sysfs path or nft rule would read specially.
[[nodiscard]] Status check_link_name(const std::string& name);

struct BridgeSpec {
  std::string name;
  uint32_t gateway_be;  // the bridge's own address, the containers' gateway
  uint8_t prefix_len;
};

// Creates the bridge when missing, gives it the gateway address when it lacks it, sets it
// up, sets net.ipv4.conf.<name>.route_localnet=1 (published ports reached from 127.0.0.1
// are DNATed onto it) and net.ipv4.ip_forward=1. Idempotent.
[[nodiscard]] Status ensure_bridge(const BridgeSpec& spec);
// A missing link is fine.
[[nodiscard]] Status delete_link(const std::string& name);
[[nodiscard]] Result<bool> link_exists(const std::string& name);

// A tap for one container: created non-persistent (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR,
// O_NONBLOCK, as virtio::open_tap), enslaved to `bridge`, set up. The returned fd is the
// device's only reference: when every copy is closed the kernel deletes it, so a killed
// monitor or VMM leaves no tap or bridge port behind. Fails if a link of that name exists.
[[nodiscard]] Result<UniqueFd> create_bridged_tap(const std::string& tap, const std::string& bridge);

// For floating addresses: adds addr/prefix_len to an uplink interface; already there is fine.
[[nodiscard]] Status add_host_address(const std::string& ifname, uint32_t addr_be, uint8_t prefix_len);
// Absent is fine.
[[nodiscard]] Status remove_host_address(const std::string& ifname, uint32_t addr_be, uint8_t prefix_len);

}  // namespace hyper::runtime::net
