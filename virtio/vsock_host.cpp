// virtio-vsock: the host side of connections. A connection's state changes here, its
// socket's epoll interest follows the state, and it ends through retire() (silently) or
// reset_connection() (with an RST for the guest). All with the device lock held.
#include "virtio/vsock.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "vmm/clock.hpp"

namespace hyper::virtio {

using vsock::Connection;
using vsock::ConnectionState;

void Vsock::accept_connection(UniqueFd fd) {
  if (connections_.size() >= kMaxConnections) {
    ++stats_.refused_connections;
    return;  // closing it tells the host program
  }
  const uint64_t key = next_key_++;
  Connection& c = connections_[key];
  c.key = key;
  c.host = std::move(fd);
  c.deadline_ns = monotonic_ns() + uint64_t{options_.handshake_timeout_ms} * 1'000'000;
  arm_timer();
  if (!watch(c)) retire(c);
}

bool Vsock::watch(Connection& c) {
  const uint64_t key = c.key;
  const uint32_t events = wanted_events(c);
  auto handler = [weak = weak_from_this(), key](uint32_t fired) {
    if (auto self = weak.lock()) self->on_host_event(key, fired);
  };
  if (!loop_ || !loop_->add(c.host.get(), events, std::move(handler)).ok()) return false;
  c.watched = true;
  c.watched_events = events;
  return true;
}

uint32_t Vsock::wanted_events(const Connection& c) const {
  switch (c.state) {
    case ConnectionState::awaiting_line: return EventLoop::kReadable;
    case ConnectionState::established:
      return (c.can_read_host() && !c.in_readable_queue ? EventLoop::kReadable : 0) |
             (c.outbound.empty() ? 0 : EventLoop::kWritable);
    default: return 0;  // a connecting socket is only watched for hangups
  }
}

void Vsock::update_interest(Connection& c) {
  if (c.retired || c.state == ConnectionState::closing) return;
  if (!c.watched) {
    // A hung-up socket is no longer watched: the rx pump drains it while it can.
    if (c.host_hung_up && c.can_read_host() && !c.in_readable_queue) mark_readable(c);
    return;
  }
  const uint32_t events = wanted_events(c);
  if (events == c.watched_events) return;
  if (!loop_->modify(c.host.get(), events).ok()) {
    reset_connection(c);
    return;
  }
  c.watched_events = events;
}

void Vsock::mark_readable(Connection& c) {
  c.in_readable_queue = true;
  readable_queue_.push_back(c.key);
}

void Vsock::unwatch(Connection& c) {
  if (c.watched && loop_) loop_->remove(c.host.get());
  c.watched = false;
}

void Vsock::handle_host_event(Connection& c, uint32_t events) {
  if (events & EPOLLERR) {
    reset_connection(c);
    return;
  }
  if (c.state == ConnectionState::awaiting_line) {
    read_connect_line(c);  // also sees the EOF behind a hangup
    return;
  }
  if (events & EventLoop::kWritable) flush_outbound(c);
  if (c.retired || c.state == ConnectionState::closing) return;
  if ((events & EventLoop::kReadable) && c.can_read_host() && !c.in_readable_queue) mark_readable(c);
  if (events & EPOLLHUP) on_host_hangup(c);
  update_interest(c);
}

void Vsock::read_connect_line(Connection& c) {
  // Peek first and consume only through the newline: what the host program sent after
  // it stays in the socket for the guest.
  char buf[vsock::kMaxConnectLine];
  const size_t room = vsock::kMaxConnectLine - c.line.size();
  const ssize_t peeked = ::recv(c.host.get(), buf, room, MSG_PEEK | MSG_DONTWAIT);
  if (peeked < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (peeked <= 0) {
    retire(c);  // EOF or an error before a whole line
    return;
  }
  const auto* newline = static_cast<const char*>(std::memchr(buf, '\n', static_cast<size_t>(peeked)));
  const size_t take = newline ? static_cast<size_t>(newline - buf) + 1 : static_cast<size_t>(peeked);
  if (::recv(c.host.get(), buf, take, MSG_DONTWAIT) != static_cast<ssize_t>(take)) {
    retire(c);
    return;
  }
  c.line.append(buf, newline ? take - 1 : take);
  if (!newline) {
    if (c.line.size() >= vsock::kMaxConnectLine) refuse(c);
    return;
  }
  const auto port = vsock::parse_connect_line(c.line);
  if (!port) {
    refuse(c);
    return;
  }
  start_host_connection(c, *port);
}

void Vsock::refuse(Connection& c) {
  ++stats_.refused_connections;
  retire(c);
}

void Vsock::start_host_connection(Connection& c, uint32_t guest_port) {
  const auto local = allocate_local_port();
  if (!local) {
    refuse(c);
    return;
  }
  c.local_port = *local;
  c.peer_port = guest_port;
  c.has_ports = true;
  by_ports_[{c.local_port, c.peer_port}] = c.key;
  c.line = std::string();
  c.state = ConnectionState::connecting;
  c.owed.request = true;
  queue_control(c);
  // The CONNECT deadline runs on: it now bounds the guest's answer.
  c.deadline_ns = monotonic_ns() + uint64_t{options_.handshake_timeout_ms} * 1'000'000;
  update_interest(c);
}

std::optional<uint32_t> Vsock::allocate_local_port() {
  // At most kMaxConnections ports are taken, so this many steps find a free one.
  for (size_t step = 0; step <= kMaxConnections; ++step) {
    const uint32_t port = next_local_port_;
    next_local_port_ = port == UINT32_MAX ? kFirstLocalPort : port + 1;
    const auto it = by_ports_.lower_bound({port, 0});
    if (it == by_ports_.end() || it->first.first != port) return port;
  }
  return std::nullopt;
}

void Vsock::on_host_hangup(Connection& c) {
  // The host program is gone (or both sides shut down writing): what it wrote before is
  // still in the socket and goes to the guest; nothing can reach it any more. A hangup
  // cannot be masked, so the socket leaves the loop and the rx pump drains it.
  c.host_hung_up = true;
  unwatch(c);
  c.outbound.clear();
  finish_if_done(c);
}

void Vsock::on_host_eof(Connection& c) {
  c.host_eof = true;
  if (!c.guest_shut_receive) {
    c.owed.shutdown |= vsock::kShutdownSend;
    queue_control(c);
  }
  finish_if_done(c);
  update_interest(c);
}

void Vsock::flush_outbound(Connection& c) {
  while (!c.outbound.empty()) {
    const auto front = c.outbound.front();
    const iovec piece{const_cast<uint8_t*>(front.data()), front.size()};  // only read from
    auto sent = vsock::send_some(c.host.get(), {&piece, 1});
    if (!sent) {
      reset_connection(c);
      return;
    }
    if (*sent == 0) break;
    c.outbound.consume(*sent);
    c.fwd_cnt += static_cast<uint32_t>(*sent);
  }
  after_delivery(c);
}

void Vsock::after_delivery(Connection& c) {
  if (c.outbound.empty() && c.guest_shut_send && !c.host_write_shut && !c.host_hung_up) {
    ::shutdown(c.host.get(), SHUT_WR);
    c.host_write_shut = true;
  }
  owe_credit_update_if_due(c);
  finish_if_done(c);
}

void Vsock::owe_credit_update_if_due(Connection& c) {
  // The guest's credit view lags ours by the bytes delivered since our last report; a
  // quarter of the window keeps it from ever stalling without a packet per write.
  if (c.state != ConnectionState::established || c.guest_shut_send) return;
  if (c.fwd_cnt - c.reported_fwd_cnt < kBufAlloc / 4) return;
  c.owed.credit_update = true;
  queue_control(c);
}

void Vsock::finish_if_done(Connection& c) {
  if (c.finished()) reset_connection(c);
}

void Vsock::reset_connection(Connection& c) {
  if (c.retired || c.state == ConnectionState::closing) return;
  if (!c.guest_knows) {
    retire(c);
    return;
  }
  unwatch(c);
  c.host.reset();
  c.outbound.clear();
  c.state = ConnectionState::closing;
  c.deadline_ns = 0;
  c.owed = {};
  c.owed.rst = true;
  queue_control(c);
}

void Vsock::retire(Connection& c) {
  if (c.retired) return;
  unwatch(c);
  c.host.reset();
  c.outbound.clear();
  if (c.has_ports) by_ports_.erase({c.local_port, c.peer_port});  // free for reuse at once
  c.has_ports = false;
  c.retired = true;
  retired_.push_back(c.key);
}

void Vsock::queue_control(Connection& c) {
  if (c.in_control_queue) return;
  c.in_control_queue = true;
  control_queue_.push_back(c.key);
}

Connection* Vsock::find(uint64_t key) {
  auto it = connections_.find(key);
  return it == connections_.end() ? nullptr : &it->second;
}

Connection* Vsock::find(uint32_t local_port, uint32_t peer_port) {
  auto it = by_ports_.find({local_port, peer_port});
  return it == by_ports_.end() ? nullptr : find(it->second);
}

}  // namespace hyper::virtio
