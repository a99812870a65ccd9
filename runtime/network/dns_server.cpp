#include "runtime/network/dns_server.hpp"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <chrono>
#include <random>
#include <thread>
#include <unordered_map>

#include "runtime/network/dns_message.hpp"
#include "vmm/event_fd.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::runtime::net {
namespace {

using Clock = std::chrono::steady_clock;

// Large enough for any EDNS reply an upstream sends a client that advertised it.
constexpr size_t kMaxMessage = 4096;

bool same_address(const sockaddr_in& a, const sockaddr_in& b) {
  return a.sin_addr.s_addr == b.sin_addr.s_addr && a.sin_port == b.sin_port;
}

Result<UniqueFd> udp_socket() {
  UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Error::from_errno("DNS resolver: socket");
  return fd;
}

Result<UniqueFd> bound_socket(const sockaddr_in& address, bool reuse_port) {
  UniqueFd fd = HYPER_TRY(udp_socket());
  const int on = 1;
  if (reuse_port && ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0)
    return Error::from_errno("DNS resolver: SO_REUSEPORT");
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    char text[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &address.sin_addr, text, sizeof text);
    return Error::from_errno(std::string("DNS resolver: bind ") + text + ":" + std::to_string(ntohs(address.sin_port)));
  }
  return fd;
}

// A query on its way to an upstream: what is needed to answer the client either way.
struct Pending {
  sockaddr_in client{};
  std::vector<uint8_t> message;  // the client's, with the client's id
  DnsQuery query;
  std::vector<sockaddr_in> upstreams;
  size_t next = 0;  // the upstream tried after the current one
  Clock::time_point deadline;
};

}  // namespace

struct DnsServer::State {
  State(UniqueFd listener_fd, UniqueFd upstream_fd, EventFd stop_fd, DnsResolve resolver)
      : listener(std::move(listener_fd)), upstream(std::move(upstream_fd)), stop(std::move(stop_fd)),
        resolve(std::move(resolver)) {}

  UniqueFd listener;
  UniqueFd upstream;  // one socket for every forwarded query, matched by id and source
  EventFd stop;
  DnsResolve resolve;
  uint16_t port = 0;
  std::unordered_map<uint16_t, Pending> pending;
  std::mt19937 ids{std::random_device{}()};
  std::thread thread;

  void run();
  void read_queries();
  void read_replies();
  void expire();
  void answer(const std::vector<uint8_t>& message, const sockaddr_in& client);
  // Sends the pending query to its next upstream; false once none is left (then it failed).
  bool forward_next(uint16_t id, Pending& entry);
  void reply(const sockaddr_in& client, const std::vector<uint8_t>& bytes) const;
  int poll_timeout_ms() const;
};

void DnsServer::State::reply(const sockaddr_in& client, const std::vector<uint8_t>& bytes) const {
  // A client that went away is not the server's problem: the datagram is dropped.
  (void)::sendto(listener.get(), bytes.data(), bytes.size(), 0, reinterpret_cast<const sockaddr*>(&client),
                 sizeof client);
}

bool DnsServer::State::forward_next(uint16_t id, Pending& entry) {
  std::vector<uint8_t> ours = entry.message;
  set_message_id(ours, id);
  while (entry.next < entry.upstreams.size()) {
    const sockaddr_in& to = entry.upstreams[entry.next++];
    if (::sendto(upstream.get(), ours.data(), ours.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to) ==
        static_cast<ssize_t>(ours.size())) {
      entry.deadline = Clock::now() + std::chrono::milliseconds(kUpstreamTimeoutMs);
      return true;
    }
  }
  return false;
}

void DnsServer::State::answer(const std::vector<uint8_t>& message, const sockaddr_in& client) {
  auto query = parse_query(message);
  if (!query.ok()) {
    // A header is enough to say FORMERR to; less than that is noise.
    if (message.size() >= kDnsHeaderSize) reply(client, build_error(message, nullptr, DnsRcode::format_error));
    return;
  }
  DnsAnswer found = resolve(client.sin_addr.s_addr, query->name, query->qtype);
  switch (found.kind) {
    case DnsAnswer::Kind::addresses:
      return reply(client, build_answer(message, *query, found.ipv4s_be, kAnswerTtlSeconds));
    case DnsAnswer::Kind::nxdomain:
      return reply(client, build_error(message, &*query, DnsRcode::name_error));
    case DnsAnswer::Kind::forward:
      break;
  }
  if (found.upstreams.empty() || pending.size() >= kMaxPending)
    return reply(client, build_error(message, &*query, DnsRcode::server_failure));
  uint16_t id = 0;
  do id = static_cast<uint16_t>(ids()); while (pending.contains(id));
  Pending entry{client, message, std::move(query).value(), std::move(found.upstreams), 0, {}};
  if (!forward_next(id, entry)) return reply(client, build_error(message, &entry.query, DnsRcode::server_failure));
  pending.emplace(id, std::move(entry));
}

void DnsServer::State::read_queries() {
  std::array<uint8_t, kMaxMessage> buffer;
  for (;;) {
    sockaddr_in client{};
    socklen_t length = sizeof client;
    const ssize_t n = ::recvfrom(listener.get(), buffer.data(), buffer.size(), 0, reinterpret_cast<sockaddr*>(&client),
                                 &length);
    if (n < 0) return;  // EAGAIN: drained (errors of a UDP socket are per datagram)
    answer(std::vector<uint8_t>(buffer.begin(), buffer.begin() + n), client);
  }
}

void DnsServer::State::read_replies() {
  std::array<uint8_t, kMaxMessage> buffer;
  for (;;) {
    sockaddr_in from{};
    socklen_t length = sizeof from;
    const ssize_t n =
        ::recvfrom(upstream.get(), buffer.data(), buffer.size(), 0, reinterpret_cast<sockaddr*>(&from), &length);
    if (n < 0) return;
    const std::span<uint8_t> bytes(buffer.data(), static_cast<size_t>(n));
    const auto it = pending.find(message_id(bytes));
    // Only the upstream asked last may answer: anyone else guessing ids is ignored.
    if (n < static_cast<ssize_t>(kDnsHeaderSize) || it == pending.end() || it->second.next == 0 ||
        !same_address(from, it->second.upstreams[it->second.next - 1]))
      continue;
    set_message_id(bytes, it->second.query.id);
    reply(it->second.client, std::vector<uint8_t>(bytes.begin(), bytes.end()));
    pending.erase(it);
  }
}

void DnsServer::State::expire() {
  const auto now = Clock::now();
  for (auto it = pending.begin(); it != pending.end();) {
    if (it->second.deadline > now || forward_next(it->first, it->second)) {
      ++it;
      continue;
    }
    reply(it->second.client, build_error(it->second.message, &it->second.query, DnsRcode::server_failure));
    it = pending.erase(it);
  }
}

int DnsServer::State::poll_timeout_ms() const {
  if (pending.empty()) return -1;
  auto first = Clock::time_point::max();
  for (const auto& [id, entry] : pending) first = std::min(first, entry.deadline);
  const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(first - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(wait + 1, 0, kUpstreamTimeoutMs));
}

void DnsServer::State::run() {
  for (;;) {
    std::array<pollfd, 3> fds = {pollfd{listener.get(), POLLIN, 0}, pollfd{upstream.get(), POLLIN, 0},
                                 pollfd{stop.fd(), POLLIN, 0}};
    if (::poll(fds.data(), fds.size(), poll_timeout_ms()) < 0 && errno != EINTR) return;
    if (fds[2].revents) return;
    if (fds[0].revents) read_queries();
    if (fds[1].revents) read_replies();
    expire();
  }
}

Result<std::unique_ptr<DnsServer>> DnsServer::start(const sockaddr_in& bind, bool reuse_port, DnsResolve resolve) {
  UniqueFd listener = HYPER_TRY(bound_socket(bind, reuse_port));
  UniqueFd upstream = HYPER_TRY(udp_socket());
  EventFd stop = HYPER_TRY(EventFd::create());
  auto state = std::make_unique<State>(std::move(listener), std::move(upstream), std::move(stop), std::move(resolve));
  sockaddr_in bound{};
  socklen_t length = sizeof bound;
  if (::getsockname(state->listener.get(), reinterpret_cast<sockaddr*>(&bound), &length) != 0)
    return Error::from_errno("DNS resolver: getsockname");
  state->port = ntohs(bound.sin_port);
  State* raw = state.get();
  state->thread = std::thread([raw] { raw->run(); });
  return std::unique_ptr<DnsServer>(new DnsServer(std::move(state)));
}

DnsServer::DnsServer(std::unique_ptr<State> state) : state_(std::move(state)) {}

DnsServer::~DnsServer() {
  state_->stop.signal();
  state_->thread.join();
}

uint16_t DnsServer::port() const { return state_->port; }

}  // namespace hyper::runtime::net
