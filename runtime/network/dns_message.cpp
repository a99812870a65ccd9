#include "runtime/network/dns_message.hpp"

#include <arpa/inet.h>

#include <cctype>

namespace hyper::runtime::net {
namespace {

constexpr uint16_t kFlagResponse = 0x8000;
constexpr uint16_t kOpcodeMask = 0x7800;
constexpr uint16_t kFlagTruncated = 0x0200;
constexpr uint16_t kFlagRecursionDesired = 0x0100;
constexpr uint16_t kFlagRecursionAvailable = 0x0080;
constexpr size_t kMaxLabel = 63;
constexpr size_t kMaxName = 253;  // presentation form, without the trailing dot
constexpr uint16_t kPointerToQuestion = 0xc000 | kDnsHeaderSize;

uint16_t read16(std::span<const uint8_t> bytes, size_t at) {
  return static_cast<uint16_t>(bytes[at] << 8 | bytes[at + 1]);
}

void put16(std::vector<uint8_t>& out, uint16_t value) {
  out.push_back(static_cast<uint8_t>(value >> 8));
  out.push_back(static_cast<uint8_t>(value));
}

void put32(std::vector<uint8_t>& out, uint32_t value) {
  put16(out, static_cast<uint16_t>(value >> 16));
  put16(out, static_cast<uint16_t>(value));
}

Error malformed(std::string what) { return Error{Errc::invalid_argument, "DNS query: " + std::move(what)}; }

// Reads the question's name from `at`; compression pointers are refused, since a
// client's single question has nothing earlier to point at.
Result<std::string> read_name(std::span<const uint8_t> message, size_t& at) {
  std::string name;
  for (;;) {
    if (at >= message.size()) return malformed("the name runs past the message");
    const size_t length = message[at++];
    if (length == 0) break;
    if (length > kMaxLabel) return malformed("a label longer than 63 bytes or a compression pointer");
    if (message.size() - at < length) return malformed("a label runs past the message");
    if (!name.empty()) name += '.';
    for (size_t i = 0; i < length; ++i) {
      const auto c = static_cast<unsigned char>(message[at + i]);
      if (c == '.' || c < 0x21 || c > 0x7e) return malformed("a label with a dot or an unprintable byte");
      name += static_cast<char>(std::tolower(c));
    }
    at += length;
    if (name.size() > kMaxName) return malformed("a name longer than 253 characters");
  }
  return name;
}

// Header and question of a reply to `query`, with the answer count still to be set.
std::vector<uint8_t> reply_head(std::span<const uint8_t> message, const DnsQuery& query, DnsRcode rcode,
                                uint16_t answers) {
  std::vector<uint8_t> out;
  put16(out, query.id);
  put16(out, static_cast<uint16_t>(kFlagResponse | (query.recursion_desired ? kFlagRecursionDesired : 0) |
                                   kFlagRecursionAvailable | static_cast<uint8_t>(rcode)));
  put16(out, 1);  // the question, repeated
  put16(out, answers);
  put16(out, 0);
  put16(out, 0);
  out.insert(out.end(), message.begin() + kDnsHeaderSize, message.begin() + static_cast<ptrdiff_t>(query.question_end));
  return out;
}

}  // namespace

Result<DnsQuery> parse_query(std::span<const uint8_t> message) {
  if (message.size() < kDnsHeaderSize) return malformed("shorter than its 12-byte header");
  const uint16_t flags = read16(message, 2);
  if (flags & kFlagResponse) return malformed("a response, not a query");
  if (flags & kOpcodeMask) return malformed("not a standard query (opcode " + std::to_string((flags & kOpcodeMask) >> 11) + ")");
  if (flags & kFlagTruncated) return malformed("truncated");
  if (read16(message, 4) != 1) return malformed(std::to_string(read16(message, 4)) + " questions, not one");
  DnsQuery query;
  query.id = read16(message, 0);
  query.recursion_desired = (flags & kFlagRecursionDesired) != 0;
  size_t at = kDnsHeaderSize;
  query.name = HYPER_TRY(read_name(message, at));
  if (message.size() - at < 4) return malformed("the question's type and class run past the message");
  query.qtype = read16(message, at);
  query.qclass = read16(message, at + 2);
  query.question_end = at + 4;
  return query;
}

std::vector<uint8_t> build_answer(std::span<const uint8_t> message, const DnsQuery& query,
                                  const std::vector<uint32_t>& ipv4s_be, uint32_t ttl_seconds) {
  // Other types for a name of ours get an empty NOERROR answer: the name exists, so a
  // resolver asking A and AAAA must not conclude from the AAAA that it does not.
  const bool wants_a = query.qtype == kDnsTypeA && query.qclass == kDnsClassIn;
  const auto count = static_cast<uint16_t>(wants_a ? ipv4s_be.size() : 0);
  std::vector<uint8_t> out = reply_head(message, query, DnsRcode::no_error, count);
  for (size_t i = 0; i < count; ++i) {
    put16(out, kPointerToQuestion);
    put16(out, kDnsTypeA);
    put16(out, kDnsClassIn);
    put32(out, ttl_seconds);
    put16(out, 4);
    put32(out, ntohl(ipv4s_be[i]));
  }
  return out;
}

std::vector<uint8_t> build_error(std::span<const uint8_t> message, const DnsQuery* query, DnsRcode rcode) {
  if (query) return reply_head(message, *query, rcode, 0);
  std::vector<uint8_t> out;
  put16(out, message_id(message));
  put16(out, static_cast<uint16_t>(kFlagResponse | kFlagRecursionAvailable | static_cast<uint8_t>(rcode)));
  out.resize(kDnsHeaderSize, 0);
  return out;
}

uint16_t message_id(std::span<const uint8_t> message) { return message.size() < 2 ? 0 : read16(message, 0); }

void set_message_id(std::span<uint8_t> message, uint16_t id) {
  if (message.size() < 2) return;
  message[0] = static_cast<uint8_t>(id >> 8);
  message[1] = static_cast<uint8_t>(id);
}

std::vector<uint32_t> resolv_conf_nameservers(std::string_view text) {
  std::vector<uint32_t> servers;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    auto word = [&line]() {
      const size_t start = line.find_first_not_of(" \t\r");
      if (start == std::string_view::npos) return std::string_view{};
      line.remove_prefix(start);
      const size_t stop = std::min(line.find_first_of(" \t\r"), line.size());
      std::string_view out = line.substr(0, stop);
      line.remove_prefix(stop);
      return out;
    };
    if (word() != "nameserver") continue;
    const std::string address(word());
    in_addr parsed{};
    if (inet_pton(AF_INET, address.c_str(), &parsed) == 1) servers.push_back(parsed.s_addr);
  }
  return servers;
}

}  // namespace hyper::runtime::net
