// Ethernet addresses as text: the VMM's virtio-net, the runtime's endpoints and the guest
// init (which gives a restored VM its own address) read and write them the same way.
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

namespace hyper {

using MacAddress = std::array<uint8_t, 6>;

// "52:54:00:12:34:56" -> bytes; nullopt when malformed or multicast (not a NIC's address).
[[nodiscard]] inline std::optional<MacAddress> parse_mac(const std::string& text) {
  MacAddress mac{};
  unsigned int b[6];
  char extra;
  if (std::sscanf(text.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &extra) != 6 ||
      text.size() != 17)
    return std::nullopt;
  for (int i = 0; i < 6; ++i) mac[i] = static_cast<uint8_t>(b[i]);
  if (mac[0] & 1) return std::nullopt;
  return mac;
}

[[nodiscard]] inline std::string format_mac(const MacAddress& mac) {
  char text[18];
  std::snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
  return text;
}

}  // namespace hyper
