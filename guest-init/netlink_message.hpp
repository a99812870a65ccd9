// rtnetlink requests as bytes, apart from the socket that sends them, so tests can check
// every header field and attribute without a kernel.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace hyper::guest {

using NetlinkMessage = std::vector<uint8_t>;

// Every request asks for an acknowledgement (NLM_F_REQUEST | NLM_F_ACK); nlmsg_pid is 0
// (the kernel fills in the sender).

// RTM_NEWLINK: sets IFF_UP on `index` (ifi_change = IFF_UP), and IFLA_MTU when given.
[[nodiscard]] NetlinkMessage build_set_link_up(uint32_t seq, int index, std::optional<uint32_t> mtu);

// RTM_NEWLINK with IFLA_ADDRESS: the link-layer (MAC) address of `index`; flags unchanged.
[[nodiscard]] NetlinkMessage build_set_link_address(uint32_t seq, int index,
                                                    const std::array<uint8_t, 6>& mac);

// RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL (an address already there is an error, as with
// `ip addr add`): IFA_LOCAL = IFA_ADDRESS = the address, and IFA_BROADCAST (the host bits
// set) for prefixes up to /30. Scope host for 127.0.0.0/8, universe otherwise, as `ip` does.
[[nodiscard]] NetlinkMessage build_add_address(uint32_t seq, int index, uint32_t ipv4_be,
                                               uint8_t prefix_len);

// RTM_DELADDR of the address build_add_address would add (no IFA_BROADCAST: the kernel
// matches on the local address and prefix length).
[[nodiscard]] NetlinkMessage build_delete_address(uint32_t seq, int index, uint32_t ipv4_be, uint8_t prefix_len);

// RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL: a bridge called `name` (IFLA_IFNAME, and
// IFLA_LINKINFO holding IFLA_INFO_KIND "bridge"), down, with the kernel's defaults.
[[nodiscard]] NetlinkMessage build_create_bridge(uint32_t seq, const std::string& name);

// RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL: a veth pair, `name` here and `peer` in the
// network namespace of process `peer_netns_pid` (VETH_INFO_PEER with IFLA_NET_NS_PID).
[[nodiscard]] NetlinkMessage build_create_veth(uint32_t seq, const std::string& name, const std::string& peer,
                                               pid_t peer_netns_pid);

// RTM_DELLINK of `index`.
[[nodiscard]] NetlinkMessage build_delete_link(uint32_t seq, int index);

// RTM_NEWLINK with IFLA_MASTER: enslaves `index` to the bridge `master_index`.
[[nodiscard]] NetlinkMessage build_set_link_master(uint32_t seq, int index, int master_index);

// RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL: 0.0.0.0/0 via RTA_GATEWAY out of RTA_OIF, in the
// main table, protocol boot, scope universe, type unicast.
[[nodiscard]] NetlinkMessage build_add_default_route(uint32_t seq, uint32_t gateway_be, int index);

struct NetlinkAck {
  int error = 0;               // 0: the request succeeded; otherwise a positive errno
  std::string kernel_message;  // the extended ack's explanation (NLMSGERR_ATTR_MSG), if any
};

// The kernel's answer to request `seq` among the messages of one received datagram, or
// nullopt when it holds none (other sequence numbers, notifications). Stops at the first
// malformed or truncated message; never reads outside `datagram`.
[[nodiscard]] std::optional<NetlinkAck> find_ack(std::span<const uint8_t> datagram, uint32_t seq);

}  // namespace hyper::guest
