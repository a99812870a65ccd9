#include "runtime/network/host_link.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "guest-init/ipv4.hpp"
#include "guest-init/netlink.hpp"
#include "virtio/tap.hpp"

namespace hyper::runtime::net {
namespace {

using guest::Netlink;

bool is_name_character(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
         c == '-';
}

// sysctls are files under /proc/sys, each value taken in one write(2).
Status write_sysctl(const std::string& key_path, const std::string& value) {
  const std::string path = "/proc/sys/" + key_path;
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return Error::from_errno("sysctl: open " + path);
  if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size())) {
    return Error::from_errno("sysctl: write " + value + " to " + path);
  }
  return {};
}

std::string describe_address(uint32_t addr_be, uint8_t prefix_len) {
  return guest::format_ipv4(addr_be) + '/' + std::to_string(prefix_len);
}

Status check_prefix(uint8_t prefix_len) {
  if (prefix_len > 32) {
    return make_error(Errc::invalid_argument, "prefix length " + std::to_string(prefix_len) + " is larger than 32");
  }
  return {};
}

// The index of `name`, or 0 when there is no such link.
Result<int> find_link(Netlink& netlink, const std::string& name) {
  auto index = netlink.link_index(name);
  if (!index && index.error().code == Errc::not_found) return 0;
  return index;
}

Status create_bridge_if_missing(Netlink& netlink, const std::string& name) {
  if (HYPER_TRY(find_link(netlink, name)) != 0) return {};
  // EEXIST: another process created it since the look-up.
  return netlink.send_request(guest::build_create_bridge(netlink.next_seq(), name), "create bridge " + name,
                              {EEXIST});
}

}  // namespace

Status check_link_name(const std::string& name) {
  bool valid = !name.empty() && name.size() <= 15;
  for (const char c : name) valid = valid && is_name_character(c);
  if (!valid) {
    return make_error(Errc::invalid_argument,
                      "invalid network interface name \"" + name + "\" (1-15 characters of A-Z a-z 0-9 _ . -)");
  }
  return {};
}

Status ensure_bridge(const BridgeSpec& spec) {
  HYPER_CHECK(check_link_name(spec.name));
  HYPER_CHECK(check_prefix(spec.prefix_len));
  auto netlink = HYPER_TRY(Netlink::open());
  HYPER_CHECK(create_bridge_if_missing(netlink, spec.name));
  const int index = HYPER_TRY(netlink.link_index(spec.name));
  HYPER_CHECK(netlink.send_request(
      guest::build_add_address(netlink.next_seq(), index, spec.gateway_be, spec.prefix_len),
      "add address " + describe_address(spec.gateway_be, spec.prefix_len) + " to " + spec.name, {EEXIST}));
  HYPER_CHECK(netlink.set_link_up(index));
  // The per-interface key exists once the link does.
  HYPER_CHECK(write_sysctl("net/ipv4/conf/" + spec.name + "/route_localnet", "1"));
  return write_sysctl("net/ipv4/ip_forward", "1");
}

Status delete_link(const std::string& name) {
  HYPER_CHECK(check_link_name(name));
  auto netlink = HYPER_TRY(Netlink::open());
  const int index = HYPER_TRY(find_link(netlink, name));
  if (index == 0) return {};
  // ENODEV: it went away since the look-up.
  return netlink.send_request(guest::build_delete_link(netlink.next_seq(), index), "delete link " + name, {ENODEV});
}

Result<bool> link_exists(const std::string& name) {
  HYPER_CHECK(check_link_name(name));
  auto netlink = HYPER_TRY(Netlink::open());
  return HYPER_TRY(find_link(netlink, name)) != 0;
}

Result<UniqueFd> create_bridged_tap(const std::string& tap, const std::string& bridge) {
  HYPER_CHECK(check_link_name(tap));
  HYPER_CHECK(check_link_name(bridge));
  auto netlink = HYPER_TRY(Netlink::open());
  const int bridge_index = HYPER_TRY(netlink.link_index(bridge));
  // TUNSETIFF alone would attach to a persistent tap of that name, or fail vaguely on
  // another kind of link: a clear error first, then IFF_TUN_EXCL closes the race.
  if (HYPER_TRY(find_link(netlink, tap)) != 0) {
    return make_error(Errc::invalid_argument, "a network interface called " + tap + " already exists");
  }
  auto fd = HYPER_TRY(virtio::open_tap(tap, virtio::TapOpen::create_new));
  const int index = HYPER_TRY(netlink.link_index(tap));
  HYPER_CHECK(netlink.send_request(guest::build_set_link_master(netlink.next_seq(), index, bridge_index),
                                   "attach " + tap + " to bridge " + bridge));
  HYPER_CHECK(netlink.set_link_up(index));
  return fd;
}

Status add_host_address(const std::string& ifname, uint32_t addr_be, uint8_t prefix_len) {
  HYPER_CHECK(check_link_name(ifname));
  HYPER_CHECK(check_prefix(prefix_len));
  auto netlink = HYPER_TRY(Netlink::open());
  const int index = HYPER_TRY(netlink.link_index(ifname));
  return netlink.send_request(guest::build_add_address(netlink.next_seq(), index, addr_be, prefix_len),
                              "add address " + describe_address(addr_be, prefix_len) + " to " + ifname, {EEXIST});
}

Status remove_host_address(const std::string& ifname, uint32_t addr_be, uint8_t prefix_len) {
  HYPER_CHECK(check_link_name(ifname));
  HYPER_CHECK(check_prefix(prefix_len));
  auto netlink = HYPER_TRY(Netlink::open());
  const int index = HYPER_TRY(netlink.link_index(ifname));
  return netlink.send_request(guest::build_delete_address(netlink.next_seq(), index, addr_be, prefix_len),
                              "remove address " + describe_address(addr_be, prefix_len) + " from " + ifname,
                              {EADDRNOTAVAIL});
}

}  // namespace hyper::runtime::net
