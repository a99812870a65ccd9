#include "virtio/vsock_connection.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <limits>

namespace hyper::virtio::vsock {
namespace {

// A drained buffer larger than this gives its memory back: 1024 idle connections must not
// each keep the peak they once buffered.
constexpr size_t kKeepCapacity = 64 * 1024;

}  // namespace

void OutboundBuffer::consume(size_t n) {
  head_ += std::min(n, size());
  if (head_ == data_.size()) {
    clear();
  } else if (head_ >= data_.size() / 2) {
    data_.erase(data_.begin(), data_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }
}

void OutboundBuffer::clear() {
  data_.clear();
  head_ = 0;
  if (data_.capacity() > kKeepCapacity) data_.shrink_to_fit();
}

uint32_t Connection::peer_credit() const {
  const uint32_t in_flight = tx_cnt - peer_fwd_cnt;  // free-running counters wrap
  return in_flight > peer_buf_alloc ? 0 : peer_buf_alloc - in_flight;
}

bool Connection::can_read_host() const {
  return state == ConnectionState::established && !host_eof && !guest_shut_receive && peer_credit() > 0;
}

bool Connection::finished() const {
  const bool guest_to_host_over = host_write_shut || host_hung_up;
  const bool host_to_guest_over = host_eof || guest_shut_receive;
  return state == ConnectionState::established && guest_to_host_over && host_to_guest_over;
}

std::optional<uint32_t> parse_connect_line(std::string_view line) {
  constexpr std::string_view kVerb = "CONNECT ";
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.substr(0, kVerb.size()) != kVerb) return std::nullopt;
  const std::string_view digits = line.substr(kVerb.size());
  if (digits.empty() || digits.size() > 10) return std::nullopt;
  uint64_t port = 0;
  for (const char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    port = port * 10 + static_cast<uint64_t>(c - '0');
  }
  if (port > std::numeric_limits<uint32_t>::max()) return std::nullopt;
  return static_cast<uint32_t>(port);
}

Result<sockaddr_un> unix_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path)
    return make_error(Errc::invalid_argument, "vsock: socket path '" + path + "' is empty or longer than " +
                                                  std::to_string(sizeof addr.sun_path - 1) + " bytes");
  path.copy(addr.sun_path, path.size());
  return addr;
}

Result<UniqueFd> connect_unix(const std::string& path) {
  const sockaddr_un addr = HYPER_TRY(unix_address(path));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Error::from_errno("vsock: socket");
  int rc;
  do {
    rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) return Error::from_errno("vsock: connect " + path);
  return fd;
}

Result<size_t> send_some(int fd, std::span<const iovec> pieces) {
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(pieces.data());  // sendmsg does not write through it
  msg.msg_iovlen = pieces.size();
  for (;;) {
    const ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return size_t{0};
    return Error::from_errno("vsock: host socket write");
  }
}

Result<ReadOutcome> read_some(int fd, std::span<const iovec> pieces) {
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(pieces.data());  // recvmsg only writes where they point
  msg.msg_iovlen = pieces.size();
  for (;;) {
    const ssize_t n = ::recvmsg(fd, &msg, MSG_DONTWAIT);
    if (n > 0) return ReadOutcome{static_cast<size_t>(n), false, false};
    if (n == 0) return ReadOutcome{0, true, false};
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return ReadOutcome{0, false, true};
    return Error::from_errno("vsock: host socket read");
  }
}

}  // namespace hyper::virtio::vsock
