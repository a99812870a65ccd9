// One vsock stream between a guest port and a host Unix socket, and the bookkeeping of
// its two directions: guest->host bytes the host socket has not taken yet, the guest's
// credit for host->guest bytes, and the control packets owed to the guest.
#pragma once

#include <sys/uio.h>
#include <sys/un.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::virtio::vsock {

// Guest->host bytes waiting for the host socket. Bounded by the credit we advertise, which
// the caller enforces before append().
class OutboundBuffer {
 public:
  [[nodiscard]] size_t size() const { return data_.size() - head_; }
  [[nodiscard]] bool empty() const { return size() == 0; }
  [[nodiscard]] std::span<const uint8_t> front() const { return {data_.data() + head_, size()}; }
  void append(std::span<const uint8_t> bytes) { data_.insert(data_.end(), bytes.begin(), bytes.end()); }
  void consume(size_t n);
  void clear();

 private:
  std::vector<uint8_t> data_;
  size_t head_ = 0;
};

enum class ConnectionState {
  awaiting_line,  // host-initiated: reading "CONNECT <port>\n"
  connecting,     // host-initiated: REQUEST owed or sent, waiting for the guest's answer
  established,
  closing,        // the host socket is closed; only an RST to the guest is owed
};

// Control packets owed to the guest, sent in this order of precedence.
struct OwedControl {
  bool rst = false;
  bool request = false;
  bool response = false;
  uint32_t shutdown = 0;  // flags
  bool credit_update = false;
  [[nodiscard]] bool any() const { return rst || request || response || shutdown || credit_update; }
};

struct Connection {
  uint64_t key = 0;  // never reused, unlike fds and ports
  UniqueFd host;
  ConnectionState state = ConnectionState::awaiting_line;
  bool has_ports = false;
  uint32_t local_port = 0;  // the host side's port (CID 2)
  uint32_t peer_port = 0;   // the guest's port
  std::string line;         // the CONNECT line read so far
  uint64_t deadline_ns = 0;  // handshake deadline; 0 when none runs
  bool guest_knows = false;  // a REQUEST went to the guest or came from it

  // Guest -> host.
  OutboundBuffer outbound;
  uint32_t fwd_cnt = 0;           // guest bytes delivered to the host socket
  uint32_t reported_fwd_cnt = 0;  // fwd_cnt as last told to the guest
  bool guest_shut_send = false;
  bool host_write_shut = false;  // shutdown(SHUT_WR) done after the guest's SHUTDOWN(SEND)

  // Host -> guest.
  uint32_t tx_cnt = 0;  // bytes sent to the guest
  uint32_t peer_buf_alloc = 0;
  uint32_t peer_fwd_cnt = 0;
  bool host_eof = false;
  bool guest_shut_receive = false;
  bool host_hung_up = false;  // the host socket is no longer watched: drained by the rx pump

  OwedControl owed;
  bool in_control_queue = false;
  bool in_readable_queue = false;
  bool watched = false;
  uint32_t watched_events = 0;
  bool retired = false;  // closed; erased at the end of the current event

  // What the guest can still take, by its last buf_alloc/fwd_cnt: a peer whose counters
  // make no sense (fwd_cnt ahead of what we sent) gets nothing.
  [[nodiscard]] uint32_t peer_credit() const;
  // Whether reading the host socket could produce a packet for the guest now.
  [[nodiscard]] bool can_read_host() const;
  // Both directions are over: the connection ends with an RST.
  [[nodiscard]] bool finished() const;
};

inline constexpr size_t kMaxConnectLine = 32;  // "CONNECT <port>\n", newline included

// The port of a CONNECT line (without its newline; a trailing '\r' is tolerated).
[[nodiscard]] std::optional<uint32_t> parse_connect_line(std::string_view line);

// Non-blocking socket I/O that never raises SIGPIPE: bytes moved, 0 when the socket
// would block, an error otherwise. A read of 0 bytes at EOF is reported as `eof`.
struct ReadOutcome {
  size_t bytes = 0;
  bool eof = false;
  bool would_block = false;
};
[[nodiscard]] Result<sockaddr_un> unix_address(const std::string& path);
// A non-blocking, close-on-exec connection to the listening Unix socket at `path`; fails
// rather than waits when its backlog is full.
[[nodiscard]] Result<UniqueFd> connect_unix(const std::string& path);
[[nodiscard]] Result<size_t> send_some(int fd, std::span<const iovec> pieces);
[[nodiscard]] Result<ReadOutcome> read_some(int fd, std::span<const iovec> pieces);

}  // namespace hyper::virtio::vsock
