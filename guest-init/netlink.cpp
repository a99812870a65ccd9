#include "guest-init/netlink.hpp"

#include <linux/netlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "guest-init/printable.hpp"

namespace hyper::guest {
namespace {

// Bounds the datagrams one request reads while looking for its acknowledgement.
constexpr int kMaxDatagramsPerRequest = 64;
// Acknowledgements are capped (NETLINK_CAP_ACK): a header, an errno and the extended ack.
constexpr size_t kReceiveBuffer = 8192;

// "eth0", or "interface 7" when the index has no name (any more).
std::string link_name(int index) {
  char name[IF_NAMESIZE] = {};
  if (index > 0 && ::if_indextoname(static_cast<unsigned>(index), name) != nullptr) {
    return printable(name);
  }
  return "interface " + std::to_string(index);
}

// `describe` is called only on failure: naming the link costs a system call.
template <class Describe>
Status to_status(Result<NetlinkAck> answer, Describe describe) {
  if (!answer) {
    Error error = std::move(answer).error();
    error.message = "netlink: " + describe() + ": " + error.message;
    return error;
  }
  if (answer->error == 0) return {};
  Error error = Error::from_errno("netlink: " + describe(), answer->error);
  if (!answer->kernel_message.empty()) error.message += " (" + printable(answer->kernel_message, 200) + ")";
  return error;
}

Status check_index(int index) {
  if (index <= 0) {
    return make_error(Errc::invalid_argument, "netlink: invalid interface index " + std::to_string(index));
  }
  return {};
}

std::string format_mac(const std::array<uint8_t, 6>& mac) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string text;
  for (const uint8_t byte : mac) {
    if (!text.empty()) text += ':';
    text += kHex[byte >> 4];
    text += kHex[byte & 0xf];
  }
  return text;
}

}  // namespace

Result<Netlink> Netlink::open() {
  UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!fd.valid()) return Error::from_errno("netlink: opening a NETLINK_ROUTE socket");
  const timeval timeout{kAckTimeoutMs / 1000, (kAckTimeoutMs % 1000) * 1000};
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) != 0) {
    return Error::from_errno("netlink: setting the receive timeout");
  }
  // Both only shape the acknowledgements (no echoed request, an explanation on failure),
  // and find_ack copes without them: failures are not fatal.
  const int on = 1;
  (void)::setsockopt(fd.get(), SOL_NETLINK, NETLINK_CAP_ACK, &on, sizeof on);
  (void)::setsockopt(fd.get(), SOL_NETLINK, NETLINK_EXT_ACK, &on, sizeof on);
  return Netlink(std::move(fd));
}

Result<NetlinkAck> Netlink::exchange(std::span<const uint8_t> message, uint32_t seq) {
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  const auto* address = reinterpret_cast<const sockaddr*>(&kernel);
  ssize_t sent;
  do {
    sent = ::sendto(fd_.get(), message.data(), message.size(), 0, address, sizeof kernel);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) return Error::from_errno("sending the request");
  if (static_cast<size_t>(sent) != message.size()) return make_error(Errc::io, "the request was sent in part");

  uint8_t buffer[kReceiveBuffer];
  for (int datagram = 0; datagram < kMaxDatagramsPerRequest; ++datagram) {
    sockaddr_nl sender{};
    socklen_t sender_size = sizeof sender;
    const ssize_t received =
        ::recvfrom(fd_.get(), buffer, sizeof buffer, 0, reinterpret_cast<sockaddr*>(&sender), &sender_size);
    if (received < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return make_error(Errc::io, "no answer from the kernel within " + std::to_string(kAckTimeoutMs) + " ms");
      }
      return Error::from_errno("receiving the acknowledgement");
    }
    if (sender.nl_pid != 0) continue;  // only the kernel answers requests
    if (auto ack = find_ack(std::span<const uint8_t>(buffer, static_cast<size_t>(received)), seq)) {
      return std::move(*ack);
    }
  }
  return make_error(Errc::io, "no acknowledgement among " + std::to_string(kMaxDatagramsPerRequest) +
                                  " messages from the kernel");
}

Result<int> Netlink::link_index(std::string_view name) {
  if (name.empty() || name.size() >= IF_NAMESIZE || name.find('\0') != std::string_view::npos) {
    return make_error(Errc::invalid_argument, "invalid network interface name " + quoted(name));
  }
  const std::string terminated(name);
  const unsigned index = ::if_nametoindex(terminated.c_str());
  if (index == 0) {
    const int err = errno;
    if (err == ENODEV || err == ENXIO) {
      return make_error(Errc::not_found, "network interface " + quoted(name) + " not found");
    }
    return Error::from_errno("looking up network interface " + quoted(name), err);
  }
  return static_cast<int>(index);
}

Status Netlink::set_link_up(int index, std::optional<uint32_t> mtu) {
  HYPER_CHECK(check_index(index));
  const uint32_t seq = next_seq();
  const NetlinkMessage message = build_set_link_up(seq, index, mtu);
  return to_status(exchange(message, seq), [&] {
    std::string what = "bring up " + link_name(index);
    if (mtu) what += " with MTU " + std::to_string(*mtu);
    return what;
  });
}

Status Netlink::set_link_address(int index, const std::array<uint8_t, 6>& mac) {
  HYPER_CHECK(check_index(index));
  const uint32_t seq = next_seq();
  const NetlinkMessage message = build_set_link_address(seq, index, mac);
  return to_status(exchange(message, seq),
                   [&] { return "set MAC address " + format_mac(mac) + " on " + link_name(index); });
}

Status Netlink::add_address(int index, uint32_t ipv4_be, uint8_t prefix_len) {
  HYPER_CHECK(check_index(index));
  const auto describe = [&] {
    return "add address " + format_ipv4(ipv4_be) + '/' + std::to_string(prefix_len) + " to " + link_name(index);
  };
  if (prefix_len > 32) {
    return make_error(Errc::invalid_argument, "netlink: " + describe() + ": the prefix length is larger than 32");
  }
  const uint32_t seq = next_seq();
  const NetlinkMessage message = build_add_address(seq, index, ipv4_be, prefix_len);
  return to_status(exchange(message, seq), describe);
}

Status Netlink::send_request(const NetlinkMessage& message, const std::string& what,
                             std::initializer_list<int> accepted) {
  nlmsghdr header;
  if (message.size() < sizeof header) {
    return make_error(Errc::invalid_argument, "netlink: " + what + ": the request has no header");
  }
  std::memcpy(&header, message.data(), sizeof header);
  auto answer = exchange(message, header.nlmsg_seq);
  if (answer && std::find(accepted.begin(), accepted.end(), answer->error) != accepted.end()) return {};
  return to_status(std::move(answer), [&] { return what; });
}

Status Netlink::add_default_route(uint32_t gateway_be, int index) {
  HYPER_CHECK(check_index(index));
  const uint32_t seq = next_seq();
  const NetlinkMessage message = build_add_default_route(seq, gateway_be, index);
  return to_status(exchange(message, seq),
                   [&] { return "add default route via " + format_ipv4(gateway_be) + " dev " + link_name(index); });
}

}  // namespace hyper::guest
