// The guest's network setup through rtnetlink (no `ip` binary in the guest): bring a
// link up, give it an IPv4 address and a default route. Each request is acknowledged by
// the kernel; a refusal becomes an Error naming the request, the interface and the reason.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "guest-init/ipv4.hpp"
#include "guest-init/netlink_message.hpp"
#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::guest {

class Netlink {
 public:
  // How long one request waits for the kernel's acknowledgement.
  static constexpr int kAckTimeoutMs = 1000;

  // A NETLINK_ROUTE socket in the calling thread's network namespace.
  static Result<Netlink> open();

  // The index of the interface called `name` ("eth0"); not_found if there is none.
  Result<int> link_index(std::string_view name);
  // Sets the link up, and its MTU first when given.
  Status set_link_up(int index, std::optional<uint32_t> mtu = {});
  Status set_link_address(int index, const std::array<uint8_t, 6>& mac);
  // Fails (File exists) if the interface already has this address.
  Status add_address(int index, uint32_t ipv4_be, uint8_t prefix_len);
  // Fails (File exists) if the main table already has a default route; the gateway must be
  // reachable through `index` (an address on its subnet), or the kernel refuses it.
  Status add_default_route(uint32_t gateway_be, int index);

  // For requests built by the caller (the build_* functions of netlink_message.hpp): the
  // sequence number to build one with.
  [[nodiscard]] uint32_t next_seq() { return ++seq_; }
  // Sends such a request and waits for its acknowledgement. A refusal whose errno is in
  // `accepted` counts as success (EEXIST when creating what is already there); `what`
  // ("create bridge hyper0") names the request in errors.
  Status send_request(const NetlinkMessage& message, const std::string& what, std::initializer_list<int> accepted = {});

 private:
  explicit Netlink(UniqueFd fd) : fd_(std::move(fd)) {}
  // Sends `message` and waits for the acknowledgement of `seq`. An Error here is a
  // transport failure; the kernel's answer, success or refusal, is the NetlinkAck.
  Result<NetlinkAck> exchange(std::span<const uint8_t> message, uint32_t seq);

  UniqueFd fd_;
  uint32_t seq_ = 0;
};

}  // namespace hyper::guest
