// Dotted-quad IPv4 text, strictly: the guest's addresses come from the host's
// configuration, and a typo must fail loudly rather than configure something else.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "vmm/result.hpp"

namespace hyper::guest {

// "10.0.2.1" -> the address in network byte order (the bytes 10, 0, 2, 1 in memory).
// Exactly four decimal numbers 0..255 separated by dots; nothing before, after or between.
// A number with a leading zero ("01") is refused: inet_aton reads it as octal and other
// tools as decimal, so it is ambiguous; "0" itself is fine.
[[nodiscard]] Result<uint32_t> parse_ipv4(std::string_view text);

// "10.0.2.15/24" -> {address in network byte order, 24}. The prefix length is required
// (an interface address without one is almost always a mistake), decimal 0..32, without
// leading zeros. Host bits may be set: this is an interface address, not a network.
[[nodiscard]] Result<std::pair<uint32_t, uint8_t>> parse_ipv4_cidr(std::string_view text);

// Network byte order -> "10.0.2.1".
[[nodiscard]] std::string format_ipv4(uint32_t ipv4_be);

// The netmask of a prefix length (0..32), in network byte order.
[[nodiscard]] uint32_t ipv4_netmask_be(uint8_t prefix_len);

}  // namespace hyper::guest
