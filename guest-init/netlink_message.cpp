#include "guest-init/netlink_message.hpp"

#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <sys/socket.h>

#include <climits>
#include <cstring>

#include "guest-init/ipv4.hpp"

namespace hyper::guest {
namespace {

constexpr size_t align4(size_t size) { return (size + 3) & ~size_t{3}; }

// Appends a header, one family struct and attributes; finish() writes the total length.
class MessageBuilder {
 public:
  MessageBuilder(uint16_t type, uint16_t flags, uint32_t seq) {
    nlmsghdr header{};
    header.nlmsg_type = type;
    header.nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | NLM_F_ACK | flags);
    header.nlmsg_seq = seq;
    append(&header, sizeof header);
  }

  template <class Struct>
  void add_struct(const Struct& value) {
    append(&value, sizeof value);
  }

  void add_attribute(uint16_t type, const void* data, size_t size) {
    rtattr attribute{};
    attribute.rta_type = type;
    attribute.rta_len = static_cast<unsigned short>(sizeof attribute + size);
    append(&attribute, sizeof attribute);
    if (size != 0) append(data, size);
  }

  void add_u32(uint16_t type, uint32_t value) { add_attribute(type, &value, sizeof value); }
  // NUL-terminated, as the kernel's NLA_STRING/NLA_NUL_STRING policies accept.
  void add_string(uint16_t type, const std::string& value) { add_attribute(type, value.c_str(), value.size() + 1); }

  // Attributes added until end_nested(returned offset) are the payload of attribute `type`.
  [[nodiscard]] size_t begin_nested(uint16_t type) {
    const size_t offset = bytes_.size();
    add_attribute(type, nullptr, 0);
    return offset;
  }
  void end_nested(size_t offset) {
    const auto length = static_cast<unsigned short>(bytes_.size() - offset);
    std::memcpy(bytes_.data() + offset + offsetof(rtattr, rta_len), &length, sizeof length);
  }

  NetlinkMessage finish() && {
    const auto length = static_cast<uint32_t>(bytes_.size());
    std::memcpy(bytes_.data() + offsetof(nlmsghdr, nlmsg_len), &length, sizeof length);
    return std::move(bytes_);
  }

 private:
  // Each piece starts 4-byte aligned (NLMSG_ALIGN and RTA_ALIGN agree); padding is zero.
  void append(const void* data, size_t size) {
    const auto* begin = static_cast<const uint8_t*>(data);
    bytes_.insert(bytes_.end(), begin, begin + size);
    bytes_.resize(align4(bytes_.size()), 0);
  }

  NetlinkMessage bytes_;
};

bool is_loopback_address(uint32_t ipv4_be) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(&ipv4_be);
  return bytes[0] == 127;
}

ifinfomsg link_info(int index) {
  ifinfomsg info{};
  info.ifi_family = AF_UNSPEC;
  info.ifi_index = index;
  return info;
}

}  // namespace

NetlinkMessage build_set_link_up(uint32_t seq, int index, std::optional<uint32_t> mtu) {
  MessageBuilder message(RTM_NEWLINK, 0, seq);
  ifinfomsg info = link_info(index);
  info.ifi_flags = IFF_UP;
  info.ifi_change = IFF_UP;
  message.add_struct(info);
  if (mtu) message.add_u32(IFLA_MTU, *mtu);
  return std::move(message).finish();
}

NetlinkMessage build_set_link_address(uint32_t seq, int index, const std::array<uint8_t, 6>& mac) {
  MessageBuilder message(RTM_NEWLINK, 0, seq);
  message.add_struct(link_info(index));
  message.add_attribute(IFLA_ADDRESS, mac.data(), mac.size());
  return std::move(message).finish();
}

namespace {

// RTM_NEWADDR and RTM_DELADDR name an address the same way.
NetlinkMessage build_address_request(uint16_t type, uint16_t flags, uint32_t seq, int index, uint32_t ipv4_be,
                                     uint8_t prefix_len) {
  MessageBuilder message(type, flags, seq);
  ifaddrmsg address{};
  address.ifa_family = AF_INET;
  address.ifa_prefixlen = prefix_len;
  address.ifa_scope = is_loopback_address(ipv4_be) ? RT_SCOPE_HOST : RT_SCOPE_UNIVERSE;
  address.ifa_index = static_cast<uint32_t>(index);
  message.add_struct(address);
  message.add_u32(IFA_LOCAL, ipv4_be);
  message.add_u32(IFA_ADDRESS, ipv4_be);
  // /31 and /32 have no broadcast address (RFC 3021).
  if (type == RTM_NEWADDR && prefix_len <= 30) message.add_u32(IFA_BROADCAST, ipv4_be | ~ipv4_netmask_be(prefix_len));
  return std::move(message).finish();
}

}  // namespace

NetlinkMessage build_add_address(uint32_t seq, int index, uint32_t ipv4_be, uint8_t prefix_len) {
  return build_address_request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, seq, index, ipv4_be, prefix_len);
}

NetlinkMessage build_delete_address(uint32_t seq, int index, uint32_t ipv4_be, uint8_t prefix_len) {
  return build_address_request(RTM_DELADDR, 0, seq, index, ipv4_be, prefix_len);
}

NetlinkMessage build_create_bridge(uint32_t seq, const std::string& name) {
  MessageBuilder message(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, seq);
  message.add_struct(link_info(0));
  message.add_string(IFLA_IFNAME, name);
  const size_t linkinfo = message.begin_nested(IFLA_LINKINFO);
  message.add_string(IFLA_INFO_KIND, "bridge");
  message.end_nested(linkinfo);
  return std::move(message).finish();
}

NetlinkMessage build_create_veth(uint32_t seq, const std::string& name, const std::string& peer, pid_t peer_netns_pid) {
  MessageBuilder message(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, seq);
  message.add_struct(link_info(0));
  message.add_string(IFLA_IFNAME, name);
  const size_t linkinfo = message.begin_nested(IFLA_LINKINFO);
  message.add_string(IFLA_INFO_KIND, "veth");
  const size_t data = message.begin_nested(IFLA_INFO_DATA);
  // The peer is described like a link of its own: an ifinfomsg, then its attributes.
  const size_t peer_info = message.begin_nested(VETH_INFO_PEER);
  message.add_struct(link_info(0));
  message.add_string(IFLA_IFNAME, peer);
  message.add_u32(IFLA_NET_NS_PID, static_cast<uint32_t>(peer_netns_pid));
  message.end_nested(peer_info);
  message.end_nested(data);
  message.end_nested(linkinfo);
  return std::move(message).finish();
}

NetlinkMessage build_delete_link(uint32_t seq, int index) {
  MessageBuilder message(RTM_DELLINK, 0, seq);
  message.add_struct(link_info(index));
  return std::move(message).finish();
}

NetlinkMessage build_set_link_master(uint32_t seq, int index, int master_index) {
  MessageBuilder message(RTM_NEWLINK, 0, seq);
  message.add_struct(link_info(index));
  message.add_u32(IFLA_MASTER, static_cast<uint32_t>(master_index));
  return std::move(message).finish();
}

NetlinkMessage build_add_default_route(uint32_t seq, uint32_t gateway_be, int index) {
  MessageBuilder message(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, seq);
  rtmsg route{};
  route.rtm_family = AF_INET;
  route.rtm_dst_len = 0;
  route.rtm_table = RT_TABLE_MAIN;
  route.rtm_protocol = RTPROT_BOOT;
  route.rtm_scope = RT_SCOPE_UNIVERSE;
  route.rtm_type = RTN_UNICAST;
  message.add_struct(route);
  message.add_u32(RTA_GATEWAY, gateway_be);
  message.add_u32(RTA_OIF, static_cast<uint32_t>(index));
  return std::move(message).finish();
}

namespace {

// NLMSGERR_ATTR_MSG among the extended-ack attributes in `attributes`.
std::string extended_ack_message(std::span<const uint8_t> attributes) {
  constexpr size_t kMaxMessage = 256;
  while (attributes.size() >= sizeof(rtattr)) {
    rtattr attribute;
    std::memcpy(&attribute, attributes.data(), sizeof attribute);
    if (attribute.rta_len < sizeof attribute || attribute.rta_len > attributes.size()) break;
    if (attribute.rta_type == NLMSGERR_ATTR_MSG) {
      const auto* text = reinterpret_cast<const char*>(attributes.data() + sizeof attribute);
      const size_t size = attribute.rta_len - sizeof attribute;
      return std::string(text, strnlen(text, size < kMaxMessage ? size : kMaxMessage));
    }
    const size_t step = align4(attribute.rta_len);
    if (step >= attributes.size()) break;
    attributes = attributes.subspan(step);
  }
  return {};
}

NetlinkAck parse_error_message(const nlmsghdr& header, std::span<const uint8_t> payload) {
  nlmsgerr error;
  if (payload.size() < sizeof error) return {EPROTO, "truncated acknowledgement"};
  std::memcpy(&error, payload.data(), sizeof error);
  NetlinkAck ack;
  // The kernel sends a negative errno; anything else is nonsense, not success.
  if (error.error > 0 || error.error == INT_MIN) return {EPROTO, "malformed acknowledgement"};
  ack.error = -error.error;
  if (header.nlmsg_flags & NLM_F_ACK_TLVS) {
    // Unless capped, the request's payload is echoed between nlmsgerr and the attributes.
    size_t offset = sizeof error;
    if (!(header.nlmsg_flags & NLM_F_CAPPED) && error.msg.nlmsg_len > sizeof(nlmsghdr)) {
      offset += align4(error.msg.nlmsg_len - sizeof(nlmsghdr));
    }
    if (offset < payload.size()) ack.kernel_message = extended_ack_message(payload.subspan(offset));
  }
  return ack;
}

}  // namespace

std::optional<NetlinkAck> find_ack(std::span<const uint8_t> datagram, uint32_t seq) {
  while (datagram.size() >= sizeof(nlmsghdr)) {
    nlmsghdr header;
    std::memcpy(&header, datagram.data(), sizeof header);
    if (header.nlmsg_len < sizeof header || header.nlmsg_len > datagram.size()) return std::nullopt;
    if (header.nlmsg_seq == seq && header.nlmsg_type == NLMSG_ERROR) {
      return parse_error_message(header, datagram.subspan(sizeof header, header.nlmsg_len - sizeof header));
    }
    const size_t step = align4(header.nlmsg_len);
    if (step >= datagram.size()) return std::nullopt;
    datagram = datagram.subspan(step);
  }
  return std::nullopt;
}

}  // namespace hyper::guest
