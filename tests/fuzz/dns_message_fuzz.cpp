// What a container sends the network's resolver: any datagram at all. Parsing must
// never crash, and every reply built from a query that parsed must parse back as
// the same question (the reply is then a query with QR set, so its header is patched).
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "runtime/network/dns_message.hpp"

using namespace hyper::runtime::net;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> message(data, size);
  const auto query = parse_query(message);
  if (!query.ok()) {
    if (size >= kDnsHeaderSize && build_error(message, nullptr, DnsRcode::format_error).size() != kDnsHeaderSize)
      __builtin_trap();
    return 0;
  }
  if (query->question_end > size || query->name.size() > 253) __builtin_trap();
  std::vector<uint8_t> reply = build_answer(message, *query, {0x0100000a, 0x0200000a}, 600);
  if (reply.size() < query->question_end) __builtin_trap();
  reply[2] &= 0x7f;  // clear QR so the reply reads as the query it repeats
  reply[2] &= static_cast<uint8_t>(~0x02);
  const auto again = parse_query(reply);
  if (!again.ok() || again->name != query->name || again->qtype != query->qtype || again->id != query->id)
    __builtin_trap();
  (void)build_error(message, &*query, DnsRcode::server_failure);
  return 0;
}
