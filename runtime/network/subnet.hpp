// IPv4 subnets for the networks' address management: a network is a prefix, its gateway
// and containers take host addresses inside it. Addresses are in host byte order here
// (arithmetic on them is the point); text is dotted-quad as guest-init/ipv4.hpp parses it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/result.hpp"

namespace hyper::runtime::net {

struct Subnet {
  uint32_t base = 0;  // the network address, host bits clear
  uint8_t prefix = 0;

  [[nodiscard]] uint32_t mask() const { return prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix); }
  [[nodiscard]] uint32_t broadcast() const { return base | ~mask(); }
  [[nodiscard]] bool contains(uint32_t address) const { return (address & mask()) == base; }
  [[nodiscard]] bool overlaps(const Subnet& other) const {
    const uint8_t shorter = prefix < other.prefix ? prefix : other.prefix;
    const uint32_t m = shorter == 0 ? 0 : ~uint32_t{0} << (32 - shorter);
    return (base & m) == (other.base & m);
  }
  [[nodiscard]] std::string text() const;  // "172.31.0.0/16"
  bool operator==(const Subnet&) const = default;
};

// "172.31.0.0/16": the prefix length is required, 8..30 (room for a gateway and a
// container), and host bits must be clear, as Docker insists.
[[nodiscard]] Result<Subnet> parse_subnet(std::string_view text);
[[nodiscard]] Result<uint32_t> parse_address(std::string_view text);
[[nodiscard]] std::string address_text(uint32_t address);

// The lowest address of `subnet` that is a host address (not the network or broadcast
// address) and is not in `taken`; nullopt when the subnet is full.
[[nodiscard]] std::optional<uint32_t> first_free_host(const Subnet& subnet, const std::vector<uint32_t>& taken);

// The IPv4 routes of the host's main table (/proc/net/route), so that a new network's
// subnet does not shadow a network the host already reaches.
[[nodiscard]] std::vector<Subnet> parse_proc_net_route(std::string_view text);

}  // namespace hyper::runtime::net
