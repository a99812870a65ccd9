#include "runtime/network/subnet.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdlib>
#include <sstream>

#include "guest-init/ipv4.hpp"

namespace hyper::runtime::net {

std::string Subnet::text() const { return address_text(base) + "/" + std::to_string(prefix); }

Result<uint32_t> parse_address(std::string_view text) { return ntohl(HYPER_TRY(guest::parse_ipv4(text))); }

std::string address_text(uint32_t address) { return guest::format_ipv4(htonl(address)); }

Result<Subnet> parse_subnet(std::string_view text) {
  const auto [address_be, prefix] = HYPER_TRY(guest::parse_ipv4_cidr(text));
  if (prefix < 8 || prefix > 30)
    return make_error(Errc::invalid_argument, "invalid subnet \"" + std::string(text) + "\": the prefix length must be 8 to 30");
  Subnet subnet{ntohl(address_be), prefix};
  if ((subnet.base & subnet.mask()) != subnet.base) {
    Subnet network{subnet.base & subnet.mask(), prefix};
    return make_error(Errc::invalid_argument, "invalid subnet \"" + std::string(text) + "\": host bits are set (the network is " +
                                                  network.text() + ")");
  }
  return subnet;
}

std::optional<uint32_t> first_free_host(const Subnet& subnet, const std::vector<uint32_t>& taken) {
  for (uint32_t address = subnet.base + 1; address < subnet.broadcast(); ++address)
    if (std::find(taken.begin(), taken.end(), address) == taken.end()) return address;
  return std::nullopt;
}

std::vector<Subnet> parse_proc_net_route(std::string_view text) {
  std::vector<Subnet> routes;
  std::istringstream lines{std::string(text)};
  std::string line;
  std::getline(lines, line);  // the header
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string iface, destination, gateway, flags, refcnt, use, metric, mask;
    if (!(fields >> iface >> destination >> gateway >> flags >> refcnt >> use >> metric >> mask)) continue;
    // The kernel prints the words in network byte order, read as a native integer.
    const uint32_t dest = ntohl(static_cast<uint32_t>(std::strtoul(destination.c_str(), nullptr, 16)));
    const uint32_t m = ntohl(static_cast<uint32_t>(std::strtoul(mask.c_str(), nullptr, 16)));
    if (m == 0) continue;  // the default route overlaps everything and shadows nothing
    routes.push_back(Subnet{dest & m, static_cast<uint8_t>(__builtin_popcount(m))});
  }
  return routes;
}

}  // namespace hyper::runtime::net
