// virtio-vsock: the guest's side. Packets the guest sends (tx) are handled at once and
// their chains returned; packets for the guest wait until it gives rx buffers: control
// packets first, then data read straight from host sockets, round-robin. Both are called
// with the activation and device locks held.
#include "virtio/vsock.hpp"

#include <sys/socket.h>

#include <algorithm>

#include "virtio/chain_io.hpp"

namespace hyper::virtio {

using vsock::Connection;
using vsock::ConnectionState;
using vsock::Op;
using vsock::PacketHeader;

namespace {

// Chains served per queue and turn: a guest that refills as fast as we drain must not
// keep the loop from its other fds. The rest comes on the next turn (resume_).
constexpr uint32_t kChainsPerTurn = Vsock::kQueueSize;

}  // namespace

bool Vsock::serve_queues(Activation& active) {
  if (!process_tx(active) || !pump_rx(active)) return false;
  // Replies to tx packets hold tx back while they wait for rx buffers; the pump may just
  // have sent them, so tx gets another turn.
  if (tx_held_ && orphan_resets_.size() < kMaxOrphanResets) {
    if (!process_tx(active) || !pump_rx(active)) return false;
    if (tx_held_ && orphan_resets_.size() < kMaxOrphanResets) more_work_ = true;
  }
  return true;
}

bool Vsock::process_tx(Activation& active) {
  Queue& tx = active.queues[kTxQueue];
  bool healthy = true, used_any = false;
  tx_held_ = false;
  for (uint32_t served = 0;; ++served) {
    // Each packet may need one reply: with no room for it, the guest waits.
    if (orphan_resets_.size() >= kMaxOrphanResets) {
      tx_held_ = true;
      break;
    }
    if (served == kChainsPerTurn) {
      more_work_ = true;
      break;
    }
    auto chain = tx.pop();
    if (!chain) {
      healthy = false;
      break;
    }
    if (!chain->has_value()) break;
    handle_tx_packet(*active.memory, **chain);
    if (!tx.push_used((*chain)->head, 0)) {
      healthy = false;
      break;
    }
    used_any = true;
  }
  if (used_any) notify_if_wanted(active, tx);
  return healthy;
}

void Vsock::handle_tx_packet(const GuestMemory& memory, const DescriptorChain& chain) {
  std::array<uint8_t, PacketHeader::kSize> bytes{};
  const uint64_t total = chain.readable_bytes();
  if (total < PacketHeader::kSize || !copy_from_buffers(memory, chain.readable, 0, bytes)) {
    ++stats_.dropped_packets;
    return;
  }
  const PacketHeader h = PacketHeader::decode(bytes);
  if (h.len > kMaxPayload || h.len != total - PacketHeader::kSize) {
    ++stats_.dropped_packets;
    return;
  }
  if (h.type != vsock::kTypeStream || h.src_cid != options_.guest_cid || h.dst_cid != vsock::kHostCid) {
    ++stats_.misaddressed_packets;
    return;
  }
  handle_packet(memory, chain, h);
}

void Vsock::handle_packet(const GuestMemory& memory, const DescriptorChain& chain, const PacketHeader& h) {
  const auto op = static_cast<Op>(h.op);
  Connection* c = find(h.dst_port, h.src_port);
  if (!c) {
    if (op == Op::request) {
      accept_guest_request(h);
    } else if (op != Op::rst) {  // never answer an RST with one
      queue_orphan_reset(h);
    }
    return;
  }
  if (op == Op::rst) {
    retire(*c);
    return;
  }
  if (c->state == ConnectionState::closing) return;  // our RST is on its way
  c->peer_buf_alloc = h.buf_alloc;
  c->peer_fwd_cnt = h.fwd_cnt;
  switch (op) {
    case Op::request: reset_connection(*c); break;  // a live port pair reused
    case Op::response: on_guest_response(*c); break;
    case Op::shutdown: on_guest_shutdown(*c, h.flags); break;
    case Op::rw: on_guest_data(*c, memory, chain, h.len); break;
    case Op::credit_update: break;  // the counters above are the news
    case Op::credit_request:
      c->owed.credit_update = true;
      queue_control(*c);
      break;
    default: ++stats_.dropped_packets; break;
  }
  update_interest(*c);  // the guest's credit may have reopened
}

void Vsock::accept_guest_request(const PacketHeader& h) {
  if (!loop_ || connections_.size() >= kMaxConnections) {
    ++stats_.refused_connections;
    queue_orphan_reset(h);
    return;
  }
  auto fd = vsock::connect_unix(options_.socket_path + "_" + std::to_string(h.dst_port));
  if (!fd) {
    queue_orphan_reset(h);  // nobody listens there
    return;
  }
  const uint64_t key = next_key_++;
  Connection& c = connections_[key];
  c.key = key;
  c.host = std::move(fd).value();
  c.state = ConnectionState::established;
  c.guest_knows = true;
  c.has_ports = true;
  c.local_port = h.dst_port;
  c.peer_port = h.src_port;
  c.peer_buf_alloc = h.buf_alloc;
  c.peer_fwd_cnt = h.fwd_cnt;
  by_ports_[{c.local_port, c.peer_port}] = key;
  c.owed.response = true;
  queue_control(c);
  if (!watch(c)) reset_connection(c);
}

void Vsock::on_guest_response(Connection& c) {
  if (c.state != ConnectionState::connecting || !c.guest_knows) {
    reset_connection(c);
    return;
  }
  if (!c.host_hung_up) {
    const std::string ok = "OK " + std::to_string(c.local_port) + "\n";
    const iovec piece{const_cast<char*>(ok.data()), ok.size()};  // only read from
    auto sent = vsock::send_some(c.host.get(), {&piece, 1});
    // Nothing was written to this socket before: a short write means its reader is gone.
    if (!sent || *sent != ok.size()) {
      reset_connection(c);
      return;
    }
  }
  c.state = ConnectionState::established;
  c.deadline_ns = 0;
}

void Vsock::on_guest_shutdown(Connection& c, uint32_t flags) {
  if (c.state != ConnectionState::established) {
    reset_connection(c);
    return;
  }
  if (flags & vsock::kShutdownReceive) c.guest_shut_receive = true;
  if (flags & vsock::kShutdownSend) c.guest_shut_send = true;
  after_delivery(c);  // shuts the host socket's writing once the buffer is flushed
}

void Vsock::on_guest_data(Connection& c, const GuestMemory& memory, const DescriptorChain& chain, uint32_t len) {
  if (c.state != ConnectionState::established || c.guest_shut_send || c.host_hung_up) {
    reset_connection(c);  // data out of place, or nobody left to take it
    return;
  }
  if (len == 0) return;
  if (c.outbound.size() + len > kBufAlloc) {
    ++stats_.credit_violations;
    reset_connection(c);
    return;
  }
  if (!vsock::chain_iovecs(memory, chain.readable, PacketHeader::kSize, len, iov_)) {
    ++stats_.dropped_packets;  // cannot happen: the walker checked every buffer
    return;
  }
  size_t sent = 0;
  if (c.outbound.empty()) {  // otherwise the order of bytes says: after the buffer
    auto result = vsock::send_some(c.host.get(), iov_);
    if (!result) {
      reset_connection(c);
      return;
    }
    sent = *result;
  }
  size_t skip = sent;
  for (const iovec& piece : iov_) {
    const size_t n = std::min(skip, piece.iov_len);
    skip -= n;
    c.outbound.append({static_cast<const uint8_t*>(piece.iov_base) + n, piece.iov_len - n});
  }
  c.fwd_cnt += static_cast<uint32_t>(sent);
  after_delivery(c);
}

void Vsock::queue_orphan_reset(const PacketHeader& h) {
  if (orphan_resets_.size() >= kMaxOrphanResets) return;  // process_tx keeps room: cannot happen
  PacketHeader rst;
  rst.src_cid = vsock::kHostCid;
  rst.dst_cid = options_.guest_cid;
  rst.src_port = h.dst_port;
  rst.dst_port = h.src_port;
  rst.op = static_cast<uint16_t>(Op::rst);
  rst.buf_alloc = kBufAlloc;
  orphan_resets_.push_back(rst);
}

bool Vsock::has_guest_bound_work() const {
  return !orphan_resets_.empty() || !control_queue_.empty() || !readable_queue_.empty();
}

bool Vsock::pump_rx(Activation& active) {
  Queue& rx = active.queues[kRxQueue];
  bool healthy = true, used_any = false;
  for (uint32_t filled = 0; has_guest_bound_work();) {
    if (filled == kChainsPerTurn) {
      more_work_ = true;
      break;
    }
    std::optional<DescriptorChain> chain = std::exchange(spare_rx_, std::nullopt);
    if (!chain) {
      auto next = rx.pop();
      if (!next) {
        healthy = false;
        break;
      }
      if (!next->has_value()) break;  // the guest has no buffer: it kicks when it adds one
      chain = std::move(*next);
    }
    const auto written = fill_rx_chain(*active.memory, *chain);
    if (!written) {
      spare_rx_ = std::move(chain);  // nothing to send after all: keep it for next time
      continue;
    }
    if (!rx.push_used(chain->head, *written)) {
      healthy = false;
      break;
    }
    used_any = true;
    ++filled;
  }
  if (used_any) notify_if_wanted(active, rx);
  return healthy;
}

std::optional<uint32_t> Vsock::fill_rx_chain(const GuestMemory& memory, const DescriptorChain& chain) {
  if (chain.writable_bytes() < PacketHeader::kSize) {
    ++stats_.small_rx_buffers;
    return 0;
  }
  if (auto written = fill_control(memory, chain)) return written;
  return fill_data(memory, chain);
}

std::optional<uint32_t> Vsock::fill_control(const GuestMemory& memory, const DescriptorChain& chain) {
  std::optional<PacketHeader> packet;
  if (!orphan_resets_.empty()) {
    packet = orphan_resets_.front();
    orphan_resets_.pop_front();
  }
  while (!packet && !control_queue_.empty()) {
    Connection* c = find(control_queue_.front());
    control_queue_.pop_front();
    if (!c) continue;
    c->in_control_queue = false;
    if (c->retired) continue;
    packet = next_control_packet(*c);
    if (!packet) continue;
    if (packet->op == static_cast<uint16_t>(Op::rst)) {
      retire(*c);
    } else if (c->owed.any()) {
      queue_control(*c);
    }
  }
  if (!packet) return std::nullopt;
  if (packet->op == static_cast<uint16_t>(Op::rst)) ++stats_.resets_sent;
  (void)copy_to_buffers(memory, chain.writable, 0, packet->encode());  // the walker checked the buffers
  return static_cast<uint32_t>(PacketHeader::kSize);
}

std::optional<PacketHeader> Vsock::next_control_packet(Connection& c) {
  vsock::OwedControl& owed = c.owed;
  if (owed.rst) {
    owed = {};
    return header_for(c, Op::rst);
  }
  if (owed.request) {
    owed.request = false;
    c.guest_knows = true;
    return header_for(c, Op::request);
  }
  if (owed.response) {
    owed.response = false;
    return header_for(c, Op::response);
  }
  if (owed.shutdown) {
    PacketHeader h = header_for(c, Op::shutdown);
    h.flags = std::exchange(owed.shutdown, 0);
    return h;
  }
  if (owed.credit_update) {
    owed.credit_update = false;
    return header_for(c, Op::credit_update);
  }
  return std::nullopt;
}

PacketHeader Vsock::header_for(Connection& c, Op op) {
  PacketHeader h;
  h.src_cid = vsock::kHostCid;
  h.dst_cid = options_.guest_cid;
  h.src_port = c.local_port;
  h.dst_port = c.peer_port;
  h.op = static_cast<uint16_t>(op);
  h.buf_alloc = kBufAlloc;
  h.fwd_cnt = c.fwd_cnt;
  c.reported_fwd_cnt = c.fwd_cnt;  // every packet tells the guest our credit
  return h;
}

std::optional<uint32_t> Vsock::fill_data(const GuestMemory& memory, const DescriptorChain& chain) {
  const uint64_t space = std::min<uint64_t>(chain.writable_bytes() - PacketHeader::kSize, kMaxPayload);
  while (!readable_queue_.empty()) {
    if (space == 0) {  // a header-only buffer cannot carry data
      ++stats_.small_rx_buffers;
      return 0;
    }
    Connection* c = find(readable_queue_.front());
    readable_queue_.pop_front();
    if (!c) continue;
    c->in_readable_queue = false;
    if (auto written = read_host_into(*c, memory, chain, space)) return written;
  }
  return std::nullopt;
}

std::optional<uint32_t> Vsock::read_host_into(Connection& c, const GuestMemory& memory, const DescriptorChain& chain,
                                              uint64_t space) {
  if (c.retired || !c.can_read_host()) {
    update_interest(c);
    return std::nullopt;
  }
  const uint64_t want = std::min<uint64_t>(space, c.peer_credit());
  if (!vsock::chain_iovecs(memory, chain.writable, PacketHeader::kSize, want, iov_)) {
    update_interest(c);  // cannot happen (the walker checked the buffers); the socket waits again
    return 0;
  }
  auto outcome = vsock::read_some(c.host.get(), iov_);
  if (!outcome) {
    reset_connection(c);
    return std::nullopt;
  }
  if (outcome->would_block && !c.host_hung_up) {
    update_interest(c);  // back to waiting for EPOLLIN
    return std::nullopt;
  }
  if (outcome->eof || outcome->would_block) {  // a hung-up socket that is empty is at its end
    on_host_eof(c);
    return std::nullopt;
  }
  const auto bytes = static_cast<uint32_t>(outcome->bytes);
  PacketHeader h = header_for(c, Op::rw);
  h.len = bytes;
  c.tx_cnt += bytes;
  (void)copy_to_buffers(memory, chain.writable, 0, h.encode());
  if (c.can_read_host()) {
    mark_readable(c);  // more may wait: its turn comes after the others'
  } else {
    update_interest(c);
  }
  return static_cast<uint32_t>(PacketHeader::kSize) + bytes;
}

}  // namespace hyper::virtio
