// The resolver a network's containers use (their nameserver is the gateway): a UDP
// server on a thread of the monitor that answers the network's own names and forwards
// everything else to upstream servers, as Docker's embedded DNS does.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "vmm/result.hpp"

namespace hyper::runtime::net {

struct DnsAnswer {
  enum class Kind { forward, addresses, nxdomain };
  Kind kind = Kind::forward;
  std::vector<uint32_t> ipv4s_be;      // for `addresses`
  std::vector<sockaddr_in> upstreams;  // for `forward`, tried in order; none means SERVFAIL
};

// Called on the server's thread for every well-formed query.
using DnsResolve = std::function<DnsAnswer(uint32_t client_be, const std::string& name, uint16_t qtype)>;

class DnsServer {
 public:
  static constexpr uint32_t kAnswerTtlSeconds = 600;
  static constexpr int kUpstreamTimeoutMs = 2000;
  static constexpr size_t kMaxPending = 1024;

  // Binds UDP `bind` (port 0 picks one); `reuse_port` lets every monitor of a network
  // serve the same gateway address, so the resolver outlives any one container.
  static Result<std::unique_ptr<DnsServer>> start(const sockaddr_in& bind, bool reuse_port, DnsResolve resolve);
  ~DnsServer();
  DnsServer(const DnsServer&) = delete;
  DnsServer& operator=(const DnsServer&) = delete;

  [[nodiscard]] uint16_t port() const;

  struct State;

 private:
  explicit DnsServer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace hyper::runtime::net
