// The containers' resolver: its message parser, and a server on loopback answering
// its own names, failing unknown ones and forwarding the rest to test-driven upstreams.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <poll.h>
#include <sys/socket.h>

#include <string>
#include <vector>

#include "runtime/network/dns_message.hpp"
#include "runtime/network/dns_server.hpp"
#include "vmm/unique_fd.hpp"

using namespace hyper;
using namespace hyper::runtime::net;

namespace {

std::vector<uint8_t> make_query(uint16_t id, const std::string& name, uint16_t qtype = kDnsTypeA) {
  std::vector<uint8_t> out = {static_cast<uint8_t>(id >> 8), static_cast<uint8_t>(id), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};
  size_t start = 0;
  while (start <= name.size()) {
    const size_t dot = std::min(name.find('.', start), name.size());
    out.push_back(static_cast<uint8_t>(dot - start));
    out.insert(out.end(), name.begin() + static_cast<ptrdiff_t>(start), name.begin() + static_cast<ptrdiff_t>(dot));
    start = dot + 1;
  }
  out.push_back(0);
  out.insert(out.end(), {static_cast<uint8_t>(qtype >> 8), static_cast<uint8_t>(qtype), 0, 1});
  return out;
}

uint8_t rcode_of(const std::vector<uint8_t>& reply) { return reply.at(3) & 0x0f; }
uint16_t answers_of(const std::vector<uint8_t>& reply) { return static_cast<uint16_t>(reply.at(6) << 8 | reply.at(7)); }

sockaddr_in loopback(uint16_t port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  return address;
}

UniqueFd bound_udp() {
  UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  REQUIRE(fd.valid());
  const sockaddr_in any = loopback(0);
  REQUIRE(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&any), sizeof any) == 0);
  return fd;
}

uint16_t port_of(const UniqueFd& fd) {
  sockaddr_in address{};
  socklen_t length = sizeof address;
  REQUIRE(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length) == 0);
  return ntohs(address.sin_port);
}

// Receives one datagram within `timeout_ms`, or an empty vector.
std::vector<uint8_t> receive(const UniqueFd& fd, int timeout_ms, sockaddr_in* from = nullptr) {
  pollfd p{fd.get(), POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) != 1) return {};
  std::vector<uint8_t> buffer(4096);
  sockaddr_in source{};
  socklen_t length = sizeof source;
  const ssize_t n = ::recvfrom(fd.get(), buffer.data(), buffer.size(), 0, reinterpret_cast<sockaddr*>(&source), &length);
  if (n < 0) return {};
  if (from) *from = source;
  buffer.resize(static_cast<size_t>(n));
  return buffer;
}

void send_to(const UniqueFd& fd, const std::vector<uint8_t>& bytes, const sockaddr_in& to) {
  REQUIRE(::sendto(fd.get(), bytes.data(), bytes.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to) ==
          static_cast<ssize_t>(bytes.size()));
}

}  // namespace

TEST_CASE("dns: a query parses to its id, lower-cased name and type") {
  const auto message = make_query(0x1234, "Web.Front", 28);
  auto query = parse_query(message);
  REQUIRE(query.ok());
  CHECK(query->id == 0x1234);
  CHECK(query->recursion_desired);
  CHECK(query->name == "web.front");
  CHECK(query->qtype == 28);
  CHECK(query->question_end == message.size());
}

TEST_CASE("dns: malformed queries are refused with a reason") {
  CHECK(!parse_query(std::vector<uint8_t>(5, 0)).ok());
  auto response = make_query(1, "a");
  response[2] |= 0x80;
  CHECK(parse_query(response).error().message.find("a response") != std::string::npos);
  auto two = make_query(1, "a");
  two[5] = 2;
  CHECK(parse_query(two).error().message.find("2 questions") != std::string::npos);
  auto pointer = make_query(1, "a");
  pointer[12] = 0xc0;
  CHECK(!parse_query(pointer).ok());
  auto cut = make_query(1, "abc");
  cut.resize(cut.size() - 3);
  CHECK(!parse_query(cut).ok());
  CHECK(!parse_query(make_query(1, std::string(64, 'x'))).ok());
  std::string long_name;
  for (int i = 0; i < 5; ++i) long_name += std::string(60, 'a') + ".";
  CHECK(!parse_query(make_query(1, long_name + "a")).ok());
}

TEST_CASE("dns: answers carry one A record per address, other types none") {
  const auto message = make_query(7, "db");
  auto query = parse_query(message);
  REQUIRE(query.ok());
  const auto reply = build_answer(message, *query, {htonl(0x0a000005), htonl(0x0a000006)}, 600);
  CHECK((reply[2] & 0x80) != 0);
  CHECK(rcode_of(reply) == 0);
  CHECK(answers_of(reply) == 2);
  REQUIRE(reply.size() == message.size() + 2 * 16);
  const size_t first = message.size();
  CHECK(reply[first] == 0xc0);
  CHECK(reply[first + 1] == 12);
  CHECK(std::vector<uint8_t>(reply.begin() + first + 12, reply.begin() + first + 16) == std::vector<uint8_t>{10, 0, 0, 5});

  const auto aaaa = make_query(8, "db", 28);
  auto aaaa_query = parse_query(aaaa);
  REQUIRE(aaaa_query.ok());
  const auto empty = build_answer(aaaa, *aaaa_query, {htonl(0x0a000005)}, 600);
  CHECK(rcode_of(empty) == 0);
  CHECK(answers_of(empty) == 0);

  const auto error = build_error(message, &*query, DnsRcode::name_error);
  CHECK(rcode_of(error) == 3);
  CHECK(error.size() == message.size());
}

TEST_CASE("dns: resolv.conf's IPv4 nameservers, in order") {
  const auto servers =
      resolv_conf_nameservers("# comment\nsearch example.test\nnameserver 10.0.0.1\n  nameserver\t8.8.8.8 # x\n"
                              "nameserver ::1\nnameserver bogus\nnameserver 127.0.0.53");
  REQUIRE(servers.size() == 3);
  CHECK(servers[0] == htonl(0x0a000001));
  CHECK(servers[1] == htonl(0x08080808));
  CHECK(servers[2] == htonl(0x7f000035));
  CHECK(resolv_conf_nameservers("").empty());
}

TEST_CASE("dns: the server answers its names and forwards the rest") {
  UniqueFd slow = bound_udp();  // never answers: the server must move on to `fast`
  UniqueFd fast = bound_udp();
  const sockaddr_in slow_address = loopback(port_of(slow));
  const sockaddr_in fast_address = loopback(port_of(fast));
  auto resolve = [&](uint32_t client_be, const std::string& name, uint16_t) {
    CHECK(client_be == htonl(INADDR_LOOPBACK));
    if (name == "web") return DnsAnswer{DnsAnswer::Kind::addresses, {htonl(0x0a000005)}, {}};
    if (name == "gone") return DnsAnswer{DnsAnswer::Kind::nxdomain, {}, {}};
    if (name == "nowhere") return DnsAnswer{DnsAnswer::Kind::forward, {}, {}};
    if (name == "slow.test") return DnsAnswer{DnsAnswer::Kind::forward, {}, {slow_address, fast_address}};
    return DnsAnswer{DnsAnswer::Kind::forward, {}, {fast_address}};
  };
  auto server = DnsServer::start(loopback(0), false, resolve);
  REQUIRE(server.ok());
  const sockaddr_in server_address = loopback((*server)->port());
  UniqueFd client = bound_udp();

  send_to(client, make_query(1, "WEB"), server_address);
  auto reply = receive(client, 2000);
  REQUIRE(!reply.empty());
  CHECK(answers_of(reply) == 1);

  send_to(client, make_query(2, "gone"), server_address);
  CHECK(rcode_of(receive(client, 2000)) == 3);
  send_to(client, make_query(3, "nowhere"), server_address);
  CHECK(rcode_of(receive(client, 2000)) == 2);
  send_to(client, std::vector<uint8_t>(20, 0x80), server_address);
  CHECK(rcode_of(receive(client, 2000)) == 1);

  // Forwarded: the upstream sees a fresh id; its reply reaches the client with the client's.
  send_to(client, make_query(0x4242, "far.away"), server_address);
  sockaddr_in server_side{};
  auto forwarded = receive(fast, 2000, &server_side);
  REQUIRE(forwarded.size() > kDnsHeaderSize);
  auto answer = forwarded;
  answer[2] |= 0x80;
  // A reply from a stranger with the right id is ignored.
  UniqueFd stranger = bound_udp();
  send_to(stranger, answer, server_side);
  send_to(fast, answer, server_side);
  reply = receive(client, 2000);
  REQUIRE(reply.size() == answer.size());
  CHECK(message_id(reply) == 0x4242);
  CHECK(receive(client, 300).empty());

  // The first upstream times out; the second answers.
  send_to(client, make_query(9, "slow.test"), server_address);
  CHECK(!receive(slow, 2000).empty());
  auto retried = receive(fast, DnsServer::kUpstreamTimeoutMs + 1000, &server_side);
  REQUIRE(!retried.empty());
  retried[2] |= 0x80;
  send_to(fast, retried, server_side);
  reply = receive(client, 2000);
  REQUIRE(!reply.empty());
  CHECK(message_id(reply) == 9);
}
