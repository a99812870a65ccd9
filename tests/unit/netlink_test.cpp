#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "guest-init/netlink.hpp"
#include "tests/unit/netns_child.hpp"

using namespace hyper;
using namespace hyper::guest;

namespace {

// A request taken apart again: the header, the family struct and the attributes, with
// every alignment rule checked on the way.
template <class Family>
struct Parsed {
  nlmsghdr header{};
  Family family{};
  std::map<uint16_t, std::vector<uint8_t>> attributes;
};

template <class Family>
Parsed<Family> parse_request(const NetlinkMessage& bytes) {
  Parsed<Family> parsed;
  REQUIRE(bytes.size() >= sizeof(nlmsghdr) + sizeof(Family));
  std::memcpy(&parsed.header, bytes.data(), sizeof parsed.header);
  CHECK(parsed.header.nlmsg_len == bytes.size());
  CHECK(bytes.size() % 4 == 0);
  CHECK(parsed.header.nlmsg_pid == 0);
  std::memcpy(&parsed.family, bytes.data() + sizeof(nlmsghdr), sizeof(Family));
  size_t offset = NLMSG_ALIGN(sizeof(nlmsghdr)) + NLMSG_ALIGN(sizeof(Family));
  while (offset < bytes.size()) {
    CHECK(offset % 4 == 0);
    REQUIRE(offset + sizeof(rtattr) <= bytes.size());
    rtattr attribute;
    std::memcpy(&attribute, bytes.data() + offset, sizeof attribute);
    REQUIRE(attribute.rta_len >= sizeof attribute);
    REQUIRE(offset + attribute.rta_len <= bytes.size());
    CHECK(parsed.attributes.count(attribute.rta_type) == 0);
    const auto* payload = bytes.data() + offset + sizeof attribute;
    parsed.attributes[attribute.rta_type].assign(payload, bytes.data() + offset + attribute.rta_len);
    const size_t padded = RTA_ALIGN(attribute.rta_len);
    for (size_t pad = attribute.rta_len; pad < padded; ++pad) CHECK(bytes[offset + pad] == 0);
    offset += padded;
  }
  CHECK(offset == bytes.size());
  return parsed;
}

std::vector<uint8_t> u32_bytes(uint32_t value) {
  std::vector<uint8_t> bytes(4);
  std::memcpy(bytes.data(), &value, 4);
  return bytes;
}

std::vector<uint8_t> ip_bytes(const char* text) { return u32_bytes(parse_ipv4(text).value()); }

constexpr uint16_t kRequestAck = NLM_F_REQUEST | NLM_F_ACK;
constexpr uint16_t kCreateExclusive = NLM_F_CREATE | NLM_F_EXCL;

}  // namespace

TEST_CASE("netlink: bring a link up, with and without an MTU") {
  auto up = parse_request<ifinfomsg>(build_set_link_up(7, 3, std::nullopt));
  CHECK(up.header.nlmsg_type == RTM_NEWLINK);
  CHECK(up.header.nlmsg_flags == kRequestAck);
  CHECK(up.header.nlmsg_seq == 7);
  CHECK(up.header.nlmsg_len == sizeof(nlmsghdr) + sizeof(ifinfomsg));
  CHECK(up.family.ifi_family == AF_UNSPEC);
  CHECK(up.family.ifi_index == 3);
  CHECK(up.family.ifi_flags == IFF_UP);
  CHECK(up.family.ifi_change == IFF_UP);
  CHECK(up.attributes.empty());

  auto with_mtu = parse_request<ifinfomsg>(build_set_link_up(8, 3, 1400));
  CHECK(with_mtu.header.nlmsg_seq == 8);
  CHECK(with_mtu.header.nlmsg_len == sizeof(nlmsghdr) + sizeof(ifinfomsg) + 8);
  CHECK(with_mtu.attributes.size() == 1);
  CHECK(with_mtu.attributes[IFLA_MTU] == u32_bytes(1400));
}

TEST_CASE("netlink: a MAC address attribute is padded to 4 bytes with zeros") {
  const std::array<uint8_t, 6> mac{0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
  const NetlinkMessage bytes = build_set_link_address(9, 2, mac);
  auto parsed = parse_request<ifinfomsg>(bytes);
  CHECK(parsed.header.nlmsg_type == RTM_NEWLINK);
  CHECK(parsed.header.nlmsg_flags == kRequestAck);
  CHECK(parsed.family.ifi_index == 2);
  CHECK(parsed.family.ifi_change == 0u);  // the link's flags are left alone
  CHECK(parsed.attributes[IFLA_ADDRESS] == std::vector<uint8_t>(mac.begin(), mac.end()));
  CHECK(bytes.size() == 16 + 16 + 12);  // rta_len 10, padded to 12
}

TEST_CASE("netlink: add an address with its broadcast") {
  auto parsed = parse_request<ifaddrmsg>(build_add_address(11, 2, parse_ipv4("10.0.2.15").value(), 24));
  CHECK(parsed.header.nlmsg_type == RTM_NEWADDR);
  CHECK(parsed.header.nlmsg_flags == (kRequestAck | kCreateExclusive));
  CHECK(parsed.header.nlmsg_seq == 11);
  CHECK(parsed.family.ifa_family == AF_INET);
  CHECK(parsed.family.ifa_prefixlen == 24);
  CHECK(parsed.family.ifa_scope == RT_SCOPE_UNIVERSE);
  CHECK(parsed.family.ifa_index == 2u);
  CHECK(parsed.attributes.size() == 3);
  CHECK(parsed.attributes[IFA_LOCAL] == ip_bytes("10.0.2.15"));
  CHECK(parsed.attributes[IFA_ADDRESS] == ip_bytes("10.0.2.15"));
  CHECK(parsed.attributes[IFA_BROADCAST] == ip_bytes("10.0.2.255"));

  SUBCASE("/31 and /32 have no broadcast address") {
    for (const uint8_t prefix : {31, 32}) {
      auto point_to_point = parse_request<ifaddrmsg>(build_add_address(1, 2, parse_ipv4("10.0.2.15").value(), prefix));
      CHECK(point_to_point.attributes.count(IFA_BROADCAST) == 0);
      CHECK(point_to_point.attributes.count(IFA_LOCAL) == 1);
    }
  }
  SUBCASE("/30 and /0") {
    auto thirty = parse_request<ifaddrmsg>(build_add_address(1, 2, parse_ipv4("192.168.1.1").value(), 30));
    CHECK(thirty.attributes[IFA_BROADCAST] == ip_bytes("192.168.1.3"));
    auto zero = parse_request<ifaddrmsg>(build_add_address(1, 2, parse_ipv4("192.168.1.1").value(), 0));
    CHECK(zero.attributes[IFA_BROADCAST] == ip_bytes("255.255.255.255"));
  }
  SUBCASE("loopback addresses get host scope") {
    auto loopback = parse_request<ifaddrmsg>(build_add_address(1, 1, parse_ipv4("127.0.0.2").value(), 8));
    CHECK(loopback.family.ifa_scope == RT_SCOPE_HOST);
    CHECK(loopback.attributes[IFA_BROADCAST] == ip_bytes("127.255.255.255"));
  }
}

TEST_CASE("netlink: add a default route") {
  auto parsed = parse_request<rtmsg>(build_add_default_route(12, parse_ipv4("10.0.2.1").value(), 2));
  CHECK(parsed.header.nlmsg_type == RTM_NEWROUTE);
  CHECK(parsed.header.nlmsg_flags == (kRequestAck | kCreateExclusive));
  CHECK(parsed.header.nlmsg_seq == 12);
  CHECK(parsed.family.rtm_family == AF_INET);
  CHECK(parsed.family.rtm_dst_len == 0);
  CHECK(parsed.family.rtm_src_len == 0);
  CHECK(parsed.family.rtm_table == RT_TABLE_MAIN);
  CHECK(parsed.family.rtm_protocol == RTPROT_BOOT);
  CHECK(parsed.family.rtm_scope == RT_SCOPE_UNIVERSE);
  CHECK(parsed.family.rtm_type == RTN_UNICAST);
  CHECK(parsed.attributes.size() == 2);
  CHECK(parsed.attributes[RTA_GATEWAY] == ip_bytes("10.0.2.1"));
  CHECK(parsed.attributes[RTA_OIF] == u32_bytes(2));
}

TEST_CASE("netlink: create a bridge") {
  const NetlinkMessage bytes = build_create_bridge(13, "hyper0");
  auto parsed = parse_request<ifinfomsg>(bytes);
  CHECK(parsed.header.nlmsg_type == RTM_NEWLINK);
  CHECK(parsed.header.nlmsg_flags == (kRequestAck | kCreateExclusive));
  CHECK(parsed.header.nlmsg_seq == 13);
  CHECK(parsed.family.ifi_family == AF_UNSPEC);
  CHECK(parsed.family.ifi_index == 0);
  CHECK(parsed.family.ifi_flags == 0u);
  CHECK(parsed.attributes.size() == 2);
  const std::string name = "hyper0";
  CHECK(parsed.attributes[IFLA_IFNAME] == std::vector<uint8_t>(name.c_str(), name.c_str() + name.size() + 1));
  // IFLA_LINKINFO nests exactly one attribute: IFLA_INFO_KIND "bridge\0" (rta_len 11, padded to 12).
  const std::vector<uint8_t> kind = {11, 0, IFLA_INFO_KIND, 0, 'b', 'r', 'i', 'd', 'g', 'e', 0, 0};
  CHECK(parsed.attributes[IFLA_LINKINFO] == kind);
  CHECK(bytes.size() == 16 + 16 + 12 + 4 + 12);
}

TEST_CASE("netlink: create a veth pair with its peer in another namespace") {
  const NetlinkMessage bytes = build_create_veth(17, "v0", "v1", 4242);
  auto parsed = parse_request<ifinfomsg>(bytes);
  CHECK(parsed.header.nlmsg_type == RTM_NEWLINK);
  CHECK(parsed.header.nlmsg_flags == (kRequestAck | kCreateExclusive));
  CHECK(parsed.family.ifi_index == 0);
  CHECK(parsed.attributes[IFLA_IFNAME] == std::vector<uint8_t>{'v', '0', 0});
  // LINKINFO{ KIND "veth", DATA{ PEER{ ifinfomsg, IFNAME "v1", NET_NS_PID 4242 } } }
  std::vector<uint8_t> peer = {16 + 4 + 4 + 4 + 8, 0, VETH_INFO_PEER, 0};
  peer.insert(peer.end(), sizeof(ifinfomsg), 0);
  ifinfomsg info{};
  info.ifi_family = AF_UNSPEC;
  std::memcpy(peer.data() + 4, &info, sizeof info);
  peer.insert(peer.end(), {7, 0, IFLA_IFNAME, 0, 'v', '1', 0, 0, 8, 0, IFLA_NET_NS_PID, 0});
  const std::vector<uint8_t> pid = u32_bytes(4242);
  peer.insert(peer.end(), pid.begin(), pid.end());
  std::vector<uint8_t> linkinfo = {9, 0, IFLA_INFO_KIND, 0, 'v', 'e', 't', 'h', 0, 0, 0, 0};
  linkinfo.insert(linkinfo.end(), {static_cast<uint8_t>(4 + peer.size()), 0, IFLA_INFO_DATA, 0});
  linkinfo.insert(linkinfo.end(), peer.begin(), peer.end());
  CHECK(parsed.attributes[IFLA_LINKINFO] == linkinfo);
}

TEST_CASE("netlink: delete a link and enslave one to a bridge") {
  auto deleted = parse_request<ifinfomsg>(build_delete_link(14, 5));
  CHECK(deleted.header.nlmsg_type == RTM_DELLINK);
  CHECK(deleted.header.nlmsg_flags == kRequestAck);
  CHECK(deleted.header.nlmsg_seq == 14);
  CHECK(deleted.family.ifi_index == 5);
  CHECK(deleted.attributes.empty());

  auto enslaved = parse_request<ifinfomsg>(build_set_link_master(15, 6, 4));
  CHECK(enslaved.header.nlmsg_type == RTM_NEWLINK);
  CHECK(enslaved.header.nlmsg_flags == kRequestAck);
  CHECK(enslaved.family.ifi_index == 6);
  CHECK(enslaved.family.ifi_change == 0u);
  CHECK(enslaved.attributes.size() == 1);
  CHECK(enslaved.attributes[IFLA_MASTER] == u32_bytes(4));
}

TEST_CASE("netlink: delete an address") {
  auto parsed = parse_request<ifaddrmsg>(build_delete_address(16, 2, parse_ipv4("10.0.2.15").value(), 24));
  CHECK(parsed.header.nlmsg_type == RTM_DELADDR);
  CHECK(parsed.header.nlmsg_flags == kRequestAck);
  CHECK(parsed.header.nlmsg_seq == 16);
  CHECK(parsed.family.ifa_family == AF_INET);
  CHECK(parsed.family.ifa_prefixlen == 24);
  CHECK(parsed.family.ifa_index == 2u);
  CHECK(parsed.attributes.size() == 2);
  CHECK(parsed.attributes[IFA_LOCAL] == ip_bytes("10.0.2.15"));
  CHECK(parsed.attributes[IFA_ADDRESS] == ip_bytes("10.0.2.15"));
}

namespace {

// An acknowledgement as the kernel sends it: nlmsghdr, nlmsgerr, then (maybe) the echoed
// request payload and extended-ack attributes.
std::vector<uint8_t> ack_bytes(uint32_t seq, int error, uint16_t flags, std::vector<uint8_t> echoed = {},
                               std::string extack = {}) {
  std::vector<uint8_t> body(sizeof(nlmsgerr));
  nlmsgerr err{};
  err.error = error;
  err.msg.nlmsg_len = static_cast<uint32_t>(sizeof(nlmsghdr) + echoed.size());
  err.msg.nlmsg_seq = seq;
  std::memcpy(body.data(), &err, sizeof err);
  body.insert(body.end(), echoed.begin(), echoed.end());
  body.resize(NLMSG_ALIGN(body.size()));
  if (!extack.empty()) {
    flags |= NLM_F_ACK_TLVS;
    rtattr attribute{};
    attribute.rta_type = NLMSGERR_ATTR_MSG;
    attribute.rta_len = static_cast<unsigned short>(sizeof attribute + extack.size() + 1);
    const size_t at = body.size();
    body.resize(at + RTA_ALIGN(attribute.rta_len));
    std::memcpy(body.data() + at, &attribute, sizeof attribute);
    std::memcpy(body.data() + at + sizeof attribute, extack.c_str(), extack.size() + 1);
  }
  nlmsghdr header{};
  header.nlmsg_len = static_cast<uint32_t>(sizeof header + body.size());
  header.nlmsg_type = NLMSG_ERROR;
  header.nlmsg_flags = flags;
  header.nlmsg_seq = seq;
  std::vector<uint8_t> bytes(sizeof header);
  std::memcpy(bytes.data(), &header, sizeof header);
  bytes.insert(bytes.end(), body.begin(), body.end());
  return bytes;
}

}  // namespace

TEST_CASE("netlink: acknowledgements are matched by sequence number") {
  SUBCASE("success") {
    auto ack = find_ack(ack_bytes(5, 0, NLM_F_CAPPED), 5);
    REQUIRE(ack.has_value());
    CHECK(ack->error == 0);
    CHECK(ack->kernel_message.empty());
  }
  SUBCASE("another request's answer is not ours") { CHECK_FALSE(find_ack(ack_bytes(4, 0, NLM_F_CAPPED), 5)); }
  SUBCASE("a refusal with the kernel's explanation, capped") {
    auto ack = find_ack(ack_bytes(5, -EEXIST, NLM_F_CAPPED, {}, "Address already assigned"), 5);
    REQUIRE(ack.has_value());
    CHECK(ack->error == EEXIST);
    CHECK(ack->kernel_message == "Address already assigned");
  }
  SUBCASE("a refusal echoing the request before the explanation") {
    const std::vector<uint8_t> echoed(22, 0xab);  // not a multiple of 4: padded
    auto ack = find_ack(ack_bytes(5, -ENETUNREACH, 0, echoed, "Nexthop has invalid gateway"), 5);
    REQUIRE(ack.has_value());
    CHECK(ack->error == ENETUNREACH);
    CHECK(ack->kernel_message == "Nexthop has invalid gateway");
  }
  SUBCASE("ours after another message in the same datagram") {
    auto bytes = ack_bytes(4, -EINVAL, NLM_F_CAPPED);
    const auto ours = ack_bytes(5, -EPERM, NLM_F_CAPPED);
    bytes.insert(bytes.end(), ours.begin(), ours.end());
    auto ack = find_ack(bytes, 5);
    REQUIRE(ack.has_value());
    CHECK(ack->error == EPERM);
  }
  SUBCASE("a positive error is not taken for success") {
    auto ack = find_ack(ack_bytes(5, 17, NLM_F_CAPPED), 5);
    REQUIRE(ack.has_value());
    CHECK(ack->error == EPROTO);
  }
  SUBCASE("truncated and malformed datagrams are ignored, not read past") {
    auto bytes = ack_bytes(5, -EPERM, NLM_F_CAPPED);
    for (size_t size = 0; size < bytes.size(); ++size) {
      CHECK_FALSE(find_ack(std::span<const uint8_t>(bytes.data(), size), 5));
    }
    uint32_t too_short = 8;
    std::memcpy(bytes.data(), &too_short, 4);
    CHECK_FALSE(find_ack(bytes, 5));
  }
  SUBCASE("an extended ack whose attribute overruns the message gives no text") {
    auto bytes = ack_bytes(5, -EPERM, NLM_F_CAPPED, {}, "some explanation");
    bytes.resize(bytes.size() - 8);
    const auto length = static_cast<uint32_t>(bytes.size());
    std::memcpy(bytes.data(), &length, 4);
    auto ack = find_ack(bytes, 5);
    REQUIRE(ack.has_value());
    CHECK(ack->error == EPERM);
    CHECK(ack->kernel_message.empty());
  }
}

TEST_CASE("parse_ipv4: dotted quads only") {
  CHECK(parse_ipv4("10.0.2.1").value() == htonl(0x0a000201));
  CHECK(parse_ipv4("0.0.0.0").value() == 0u);
  CHECK(parse_ipv4("255.255.255.255").value() == 0xffffffffu);
  CHECK(format_ipv4(parse_ipv4("192.168.100.7").value()) == "192.168.100.7");

  for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.256", " 1.2.3.4", "1.2.3.4 ",
                          "01.2.3.4", "1.2.3.00", "1..3.4", "1.2.3.", ".1.2.3", "1.2.3.4/24", "a.b.c.d",
                          "1.2.3.-4", "1.2.3.+4", "0x1.2.3.4", "1234.1.1.1", "1.2.3.4\n"}) {
    CAPTURE(bad);
    auto result = parse_ipv4(bad);
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().code == Errc::invalid_argument);
    CHECK(result.error().message.find("invalid IPv4 address") == 0);
  }
  // The message names the input and the reason.
  CHECK(parse_ipv4("256.1.1.1").error().message == "invalid IPv4 address \"256.1.1.1\": \"256\" is larger than 255");
  CHECK(parse_ipv4("01.2.3.4").error().message.find("leading zero") != std::string::npos);
  CHECK(parse_ipv4("1.2.3").error().message.find("four numbers") != std::string::npos);
  CHECK(parse_ipv4(std::string_view("1.2.3\0" "4", 7)).error().message.find("\\x00") != std::string::npos);
}

TEST_CASE("parse_ipv4_cidr: address and prefix length") {
  const auto parsed = parse_ipv4_cidr("10.0.2.15/24").value();
  CHECK(parsed.first == parse_ipv4("10.0.2.15").value());
  CHECK(parsed.second == 24);
  CHECK(parse_ipv4_cidr("1.2.3.4/0").value().second == 0);
  CHECK(parse_ipv4_cidr("1.2.3.4/32").value().second == 32);

  for (const char* bad : {"1.2.3.4/33", "1.2.3.4/", "1.2.3.4", "1.2.3/24", "1.2.3.4/024", "1.2.3.4/100",
                          "1.2.3.4/-1", "1.2.3.4/24/8", "1.2.3.4 /24", "/24", "1.2.3.4/2a"}) {
    CAPTURE(bad);
    auto result = parse_ipv4_cidr(bad);
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().message.find(std::string("\"") + bad + "\"") != std::string::npos);
  }
  CHECK(parse_ipv4_cidr("1.2.3.4/33").error().message ==
        "invalid IPv4 address/prefix \"1.2.3.4/33\": prefix length 33 is larger than 32");
  CHECK(parse_ipv4_cidr("1.2.3.4").error().message.find("prefix length is missing") != std::string::npos);
}

TEST_CASE("ipv4_netmask_be") {
  CHECK(ipv4_netmask_be(0) == 0u);
  CHECK(ipv4_netmask_be(8) == parse_ipv4("255.0.0.0").value());
  CHECK(ipv4_netmask_be(23) == parse_ipv4("255.255.254.0").value());
  CHECK(ipv4_netmask_be(32) == 0xffffffffu);
}

// ---- Against the real kernel, in a network namespace of the test's own --------------

namespace {

using test::ChildChecks;

sockaddr_in inet_address(const char* text, uint16_t port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = parse_ipv4(text).value();
  return address;
}

// 0 if a UDP socket can bind to the address, else the errno.
int bind_error(const char* text) {
  const UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  const sockaddr_in address = inet_address(text, 0);
  return ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0 ? 0 : errno;
}

// 0 if the kernel has a route to the address (a UDP connect sends nothing), else the
// errno; `source` gets the address it would send from.
int route_error(const char* text, std::string* source) {
  const UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  const sockaddr_in address = inet_address(text, 9);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) return errno;
  sockaddr_in local{};
  socklen_t size = sizeof local;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&local), &size);
  *source = format_ipv4(local.sin_addr.s_addr);
  return 0;
}

ifreq interface_request(int request) {
  ifreq query{};
  std::strncpy(query.ifr_name, "lo", sizeof query.ifr_name - 1);
  const UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ::ioctl(fd.get(), static_cast<unsigned long>(request), &query);
  return query;
}

std::string exercise_namespace(ChildChecks& checks) {
  auto netlink = Netlink::open();
  if (!netlink) return "FAIL: " + netlink.error().message + "\n";

  auto missing = netlink->link_index("nosuch0");
  checks.expect(!missing.ok() && missing.error().code == Errc::not_found &&
                    missing.error().message == "network interface \"nosuch0\" not found",
                "link_index of a missing interface is not_found");
  checks.expect(!netlink->link_index("a-name-far-too-long-for-linux").ok(), "overlong names are refused");
  const auto lo = netlink->link_index("lo");
  if (!lo) return "FAIL: " + lo.error().message + "\n";
  const int index = lo.value();

  // (No bind check before this: until a namespace's first address creates its local
  // routing table, the kernel lets a socket bind to any address.)
  checks.expect((interface_request(SIOCGIFFLAGS).ifr_flags & IFF_UP) == 0, "lo starts down");
  checks.expect_ok(netlink->set_link_up(index, 16384), "set_link_up(lo, 16384)");
  checks.expect((interface_request(SIOCGIFFLAGS).ifr_flags & IFF_UP) != 0, "lo is up");
  checks.expect(interface_request(SIOCGIFMTU).ifr_mtu == 16384, "lo's MTU is 16384");
  // The kernel gives lo 127.0.0.1/8 as it comes up; 127.0.0.2 is then local too, which is
  // why the address added below is outside 127/8: its effect is observable.
  checks.expect(bind_error("127.0.0.1") == 0, "127.0.0.1 is there once lo is up");

  const std::array<uint8_t, 6> mac{0x02, 0, 0, 0, 0, 0x42};
  checks.expect_ok(netlink->set_link_address(index, mac), "set_link_address(lo)");
  const ifreq hardware = interface_request(SIOCGIFHWADDR);
  checks.expect(std::memcmp(hardware.ifr_hwaddr.sa_data, mac.data(), mac.size()) == 0, "lo's MAC changed");

  checks.expect(bind_error("10.0.2.15") == EADDRNOTAVAIL, "10.0.2.15 is not there before add_address");
  std::string source;
  checks.expect(route_error("192.0.2.1", &source) == ENETUNREACH, "no default route at first");

  const auto [address, prefix] = parse_ipv4_cidr("10.0.2.15/24").value();
  checks.expect_ok(netlink->add_address(index, address, prefix), "add_address(10.0.2.15/24)");
  checks.expect(bind_error("10.0.2.15") == 0, "10.0.2.15 is there after add_address");
  const Status again = netlink->add_address(index, address, prefix);
  checks.expect(!again.ok() && again.error().message.find("netlink: add address 10.0.2.15/24 to lo: File exists") == 0,
                "adding it twice says what and why: " + (again.ok() ? std::string("succeeded") : again.error().message));

  checks.expect_ok(netlink->add_default_route(parse_ipv4("10.0.2.1").value(), index), "add_default_route");
  checks.expect(route_error("192.0.2.1", &source) == 0 && source == "10.0.2.15",
                "traffic to 192.0.2.1 leaves from 10.0.2.15, got " + source);

  // The kernel's extended ack explains the refusal.
  const Status off_link = netlink->add_default_route(parse_ipv4("172.16.0.1").value(), index);
  checks.expect(!off_link.ok() && off_link.error().message.find("netlink: add default route via 172.16.0.1 dev lo: ") == 0 &&
                    off_link.error().message.find("(") != std::string::npos,
                "an off-link gateway is refused with the kernel's reason: " +
                    (off_link.ok() ? std::string("succeeded") : off_link.error().message));
  checks.expect(!netlink->add_address(index, address, 33).ok(), "prefix 33 is refused");
  checks.expect(!netlink->set_link_up(999).ok(), "a missing index is refused");
  return checks.failures();
}

}  // namespace

// CI runs the unit tests as root, so this runs there; elsewhere it says why it did not.
TEST_CASE("netlink: configure lo in a new network namespace") {
  if (::geteuid() != 0) {
    MESSAGE("skipped: creating a network namespace needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN)");
    return;
  }
  const std::string report = test::run_in_new_network_namespace([] {
    ChildChecks checks;
    return exercise_namespace(checks);
  });
  if (report.rfind("SKIP: ", 0) == 0) {
    MESSAGE("skipped: " << report.substr(6));
    return;
  }
  CHECK_MESSAGE(report == "OK\n", report);
}
