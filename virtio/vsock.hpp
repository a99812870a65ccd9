// virtio-vsock (device type 19) bridged to host Unix sockets, the way Firecracker does it:
//  - a host program connects to `socket_path` and writes "CONNECT <port>\n"; the device
//    connects it to the guest's port and answers "OK <host port>\n";
//  - a guest connecting to CID 2, port P reaches the Unix socket "<socket_path>_<P>".
// Stream sockets only. Every socket is non-blocking and served on the event loop; data
// moves between host sockets and guest buffers without an intermediate copy except for
// guest->host bytes a slow host socket has not taken yet (bounded by the credit we give).
// Whatever the guest or the host programs do, memory stays bounded and no connection
// can stall another.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "virtio/device.hpp"
#include "virtio/vsock_connection.hpp"
#include "virtio/vsock_packet.hpp"
#include "vmm/event_fd.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::virtio {

struct VsockOptions {
  uint64_t guest_cid = 0;
  std::string socket_path;
  // How long a host program may take to send its CONNECT line, and the guest to answer
  // the REQUEST that follows.
  uint32_t handshake_timeout_ms = 5000;
};

// Counters for tests and diagnostics.
struct VsockStats {
  uint64_t connections = 0;           // open now, in any state
  uint64_t dropped_packets = 0;       // malformed tx chains, unknown ops
  uint64_t misaddressed_packets = 0;  // wrong type, source or destination CID
  uint64_t credit_violations = 0;     // guest sent more than the credit we gave: reset
  uint64_t refused_connections = 0;   // over the connection limit, bad CONNECT lines, timeouts
  uint64_t resets_sent = 0;
  uint64_t small_rx_buffers = 0;      // rx chains too small for a packet: returned empty
  uint64_t broken_rings = 0;
};

class Vsock final : public VirtioDevice, public std::enable_shared_from_this<Vsock> {
 public:
  static constexpr uint32_t kDeviceType = 19;
  static constexpr uint16_t kQueueSize = 256;
  static constexpr uint32_t kBufAlloc = 256 * 1024;    // per-connection guest->host buffer we advertise
  static constexpr uint32_t kMaxPayload = 64 * 1024;   // per packet, either way
  static constexpr size_t kMaxConnections = 1024;
  static constexpr size_t kMaxOrphanResets = 64;       // RSTs to packets of no connection
  static constexpr uint32_t kFirstLocalPort = 1U << 30;

  // Validates the CID and binds and listens on `socket_path`, replacing a stale socket
  // (one nobody listens on) but nothing else.
  static Result<std::shared_ptr<Vsock>> create(const VsockOptions& options);
  // Unlinks the socket. Never touches the event loop: the machine destroys it first.
  ~Vsock() override;

  uint32_t device_type() const override { return kDeviceType; }
  uint64_t device_features() const override;
  std::vector<uint16_t> queue_max_sizes() const override { return {kQueueSize, kQueueSize, kQueueSize}; }
  void read_config(uint64_t offset, std::span<uint8_t> data) const override;
  void write_config(uint64_t, std::span<const uint8_t>) override {}
  Status activate(Activation activation) override;
  void queue_notify(uint32_t index) override;
  void reset() override;
  // Watches the listener; connections' sockets are added to `loop` as they come.
  Status attach(EventLoop& loop) override;
  std::string describe() const override;
  bool restored() override;
  std::vector<QueuePosition> queue_positions() const override { return slot_.positions(); }

  [[nodiscard]] VsockStats stats() const;

 private:
  enum Queues : size_t { kRxQueue = 0, kTxQueue = 1, kEventQueue = 2 };

  Vsock(VsockOptions options, UniqueFd listener, UniqueFd timer, EventFd resume, dev_t dev, ino_t ino);

  // Runs `work(active_or_null)` with the activation and device locks held, then erases
  // retired connections; `work` returns false when a ring broke.
  template <class Work>
  void run_locked(Work&& work);
  void finish_event_locked();

  // Host side (vsock.cpp: events; vsock_host.cpp: connections).
  void on_listener_ready();
  void accept_connection(UniqueFd fd);
  void on_host_event(uint64_t key, uint32_t events);
  void handle_host_event(vsock::Connection& c, uint32_t events);
  void on_timer();
  void read_connect_line(vsock::Connection& c);
  void refuse(vsock::Connection& c);
  void start_host_connection(vsock::Connection& c, uint32_t guest_port);
  void on_host_hangup(vsock::Connection& c);
  void on_host_eof(vsock::Connection& c);
  void flush_outbound(vsock::Connection& c);
  void after_delivery(vsock::Connection& c);
  void owe_credit_update_if_due(vsock::Connection& c);
  void finish_if_done(vsock::Connection& c);
  [[nodiscard]] bool watch(vsock::Connection& c);
  [[nodiscard]] uint32_t wanted_events(const vsock::Connection& c) const;
  void update_interest(vsock::Connection& c);
  void mark_readable(vsock::Connection& c);
  void unwatch(vsock::Connection& c);
  // Ends a connection: with an RST to the guest when it knows of it.
  void reset_connection(vsock::Connection& c);
  // Ends a connection without telling the guest.
  void retire(vsock::Connection& c);
  void queue_control(vsock::Connection& c);
  void arm_timer();
  void drop_all_connections_locked();
  [[nodiscard]] vsock::Connection* find(uint64_t key);
  [[nodiscard]] vsock::Connection* find(uint32_t local_port, uint32_t peer_port);
  [[nodiscard]] std::optional<uint32_t> allocate_local_port();

  // Guest side (vsock_guest.cpp).
  [[nodiscard]] bool serve_queues(Activation& active);
  [[nodiscard]] bool process_tx(Activation& active);
  [[nodiscard]] bool pump_rx(Activation& active);
  void handle_tx_packet(const GuestMemory& memory, const DescriptorChain& chain);
  void handle_packet(const GuestMemory& memory, const DescriptorChain& chain, const vsock::PacketHeader& h);
  void accept_guest_request(const vsock::PacketHeader& h);
  void on_guest_response(vsock::Connection& c);
  void on_guest_shutdown(vsock::Connection& c, uint32_t flags);
  void on_guest_data(vsock::Connection& c, const GuestMemory& memory, const DescriptorChain& chain, uint32_t len);
  void queue_orphan_reset(const vsock::PacketHeader& h);
  [[nodiscard]] bool has_guest_bound_work() const;
  // Each returns the bytes written into the chain, or nullopt when it had nothing to send.
  [[nodiscard]] std::optional<uint32_t> fill_rx_chain(const GuestMemory& memory, const DescriptorChain& chain);
  [[nodiscard]] std::optional<uint32_t> fill_control(const GuestMemory& memory, const DescriptorChain& chain);
  [[nodiscard]] std::optional<uint32_t> fill_data(const GuestMemory& memory, const DescriptorChain& chain);
  // Reads up to `space` bytes (and the guest's credit) of the host socket into the chain.
  [[nodiscard]] std::optional<uint32_t> read_host_into(vsock::Connection& c, const GuestMemory& memory,
                                                       const DescriptorChain& chain, uint64_t space);
  [[nodiscard]] std::optional<vsock::PacketHeader> next_control_packet(vsock::Connection& c);
  [[nodiscard]] vsock::PacketHeader header_for(vsock::Connection& c, vsock::Op op);

  const VsockOptions options_;
  const UniqueFd listener_;
  const UniqueFd timer_;   // handshake deadlines; runs only while one is pending
  const EventFd resume_;   // more queue work than one turn's budget: come back soon
  const dev_t socket_dev_;  // the socket file we bound, so we unlink only ours
  const ino_t socket_ino_;
  ActivationSlot slot_;    // locked before mutex_

  mutable std::mutex mutex_;  // everything below
  EventLoop* loop_ = nullptr;
  std::map<uint64_t, vsock::Connection> connections_;
  std::map<std::pair<uint32_t, uint32_t>, uint64_t> by_ports_;  // (local, peer) -> key
  std::deque<uint64_t> control_queue_;   // connections owing control packets
  std::deque<uint64_t> readable_queue_;  // connections whose host socket may have data, round-robin
  std::deque<vsock::PacketHeader> orphan_resets_;
  std::optional<DescriptorChain> spare_rx_;  // popped but not filled (nothing to read after all)
  std::vector<uint64_t> retired_;            // erased at the end of the current event
  std::vector<iovec> iov_;                   // scratch for scatter/gather I/O
  uint64_t next_key_ = 1;
  uint32_t next_local_port_ = kFirstLocalPort;
  bool timer_armed_ = false;
  bool listener_paused_ = false;
  bool more_work_ = false;  // a queue had more than one turn's budget
  bool tx_held_ = false;    // tx stopped until rx drains the replies it owes
  VsockStats stats_;
};

}  // namespace hyper::virtio
