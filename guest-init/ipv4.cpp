#include "guest-init/ipv4.hpp"

#include <arpa/inet.h>

#include <optional>

#include "guest-init/printable.hpp"

namespace hyper::guest {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// A decimal number of at most `max_digits` digits without a leading zero, or why not.
std::optional<std::string> parse_small_decimal(std::string_view text, size_t max_digits,
                                               uint32_t& value) {
  if (text.empty()) return std::string("a number is missing");
  for (const char c : text) {
    if (!is_digit(c)) return "unexpected character " + quoted(std::string_view(&c, 1));
  }
  if (text.size() > 1 && text[0] == '0') {
    return quoted(text) + " has a leading zero (ambiguous: octal or decimal?)";
  }
  if (text.size() > max_digits) return quoted(text) + " is too large";
  value = 0;
  for (const char c : text) value = value * 10 + static_cast<uint32_t>(c - '0');
  return std::nullopt;
}

// Parses "a.b.c.d" into `address_be`, or says what is wrong with it.
std::optional<std::string> ipv4_problem(std::string_view text, uint32_t& address_be) {
  uint32_t host_order = 0;
  std::string_view rest = text;
  for (int part = 0; part < 4; ++part) {
    const size_t dot = rest.find('.');
    const bool last = part == 3;
    if (last != (dot == std::string_view::npos)) {
      return std::string("expected four numbers separated by dots");
    }
    const std::string_view number = last ? rest : rest.substr(0, dot);
    uint32_t value = 0;
    if (auto problem = parse_small_decimal(number, 3, value)) return problem;
    if (value > 255) return quoted(number) + " is larger than 255";
    host_order = (host_order << 8) | value;
    if (!last) rest.remove_prefix(dot + 1);
  }
  address_be = htonl(host_order);
  return std::nullopt;
}

}  // namespace

Result<uint32_t> parse_ipv4(std::string_view text) {
  uint32_t address_be = 0;
  if (auto problem = ipv4_problem(text, address_be)) {
    return make_error(Errc::invalid_argument, "invalid IPv4 address " + quoted(text) + ": " + *problem);
  }
  return address_be;
}

Result<std::pair<uint32_t, uint8_t>> parse_ipv4_cidr(std::string_view text) {
  const auto fail = [&](const std::string& problem) {
    return make_error(Errc::invalid_argument,
                      "invalid IPv4 address/prefix " + quoted(text) + ": " + problem);
  };
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) return fail("the /prefix length is missing (e.g. /24)");
  uint32_t address_be = 0;
  if (auto problem = ipv4_problem(text.substr(0, slash), address_be)) return fail(*problem);
  uint32_t prefix = 0;
  if (auto problem = parse_small_decimal(text.substr(slash + 1), 2, prefix)) {
    return fail("prefix length: " + *problem);
  }
  if (prefix > 32) return fail("prefix length " + std::to_string(prefix) + " is larger than 32");
  return std::pair{address_be, static_cast<uint8_t>(prefix)};
}

std::string format_ipv4(uint32_t ipv4_be) {
  const uint32_t host_order = ntohl(ipv4_be);
  return std::to_string(host_order >> 24) + '.' + std::to_string((host_order >> 16) & 0xff) + '.' +
         std::to_string((host_order >> 8) & 0xff) + '.' + std::to_string(host_order & 0xff);
}

uint32_t ipv4_netmask_be(uint8_t prefix_len) {
  if (prefix_len == 0) return 0;
  if (prefix_len >= 32) return 0xffffffffu;
  return htonl(~((1u << (32 - prefix_len)) - 1));
}

}  // namespace hyper::guest
