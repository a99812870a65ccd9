// The few DNS messages the containers' resolver reads and writes (RFC 1035): one
// question in, an answer of A records or an error out. Everything else is forwarded
// untouched, so this parser only has to be strict, not complete.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/result.hpp"

namespace hyper::runtime::net {

inline constexpr uint16_t kDnsTypeA = 1;
inline constexpr uint16_t kDnsClassIn = 1;
inline constexpr size_t kDnsHeaderSize = 12;

enum class DnsRcode : uint8_t { no_error = 0, format_error = 1, server_failure = 2, name_error = 3, not_implemented = 4 };

struct DnsQuery {
  uint16_t id = 0;
  bool recursion_desired = false;
  std::string name;  // lower case, without the root's trailing dot
  uint16_t qtype = 0;
  uint16_t qclass = 0;
  size_t question_end = 0;  // offset just past the question, within the message
};

// A standard query with exactly one question; anything else is invalid_argument.
Result<DnsQuery> parse_query(std::span<const uint8_t> message);

// The reply to `query` (whose bytes are `message`): its question and one A record per address.
std::vector<uint8_t> build_answer(std::span<const uint8_t> message, const DnsQuery& query,
                                  const std::vector<uint32_t>& ipv4s_be, uint32_t ttl_seconds);

// An error reply; it repeats the question when `query` parsed, else only the header.
std::vector<uint8_t> build_error(std::span<const uint8_t> message, const DnsQuery* query, DnsRcode rcode);

// The message id, for replies to messages that did not parse.
uint16_t message_id(std::span<const uint8_t> message);
void set_message_id(std::span<uint8_t> message, uint16_t id);

// The IPv4 `nameserver` lines of a resolv.conf, in network byte order and file order.
std::vector<uint32_t> resolv_conf_nameservers(std::string_view text);

}  // namespace hyper::runtime::net
