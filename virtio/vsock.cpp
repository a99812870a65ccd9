// virtio-vsock: lifecycle, configuration, and the event-loop entry points (listener,
// host sockets, timer, kicks). Connections live in vsock_host.cpp, the guest's queues in
// vsock_guest.cpp.
#include "virtio/vsock.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "vmm/clock.hpp"

namespace hyper::virtio {

using vsock::Connection;

namespace {

constexpr int kListenBacklog = 128;
constexpr int kAcceptsPerEvent = 16;  // then other events get their turn
// "_4294967295": guest-initiated connections append the port to the socket path.
constexpr size_t kPortSuffixBytes = 11;

// Whether `path` is a socket nobody listens on (left behind by a VMM that died), which we
// may replace; anything else there is an error worth telling the user.
Status check_stale_socket(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) < 0) return Error::from_errno("vsock: " + path);
  if (!S_ISSOCK(st.st_mode))
    return make_error(Errc::invalid_argument, "vsock: " + path + " exists and is not a socket; not replacing it");
  const sockaddr_un addr = HYPER_TRY(vsock::unix_address(path));
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!probe.valid()) return Error::from_errno("vsock: socket");
  if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) < 0) {
    if (errno == ECONNREFUSED) return {};
    if (errno != EAGAIN) return Error::from_errno("vsock: probing " + path);
  }
  return make_error(Errc::invalid_argument, "vsock: " + path + " is in use (something listens on it)");
}

Result<UniqueFd> listen_unix(const std::string& path) {
  const sockaddr_un addr = HYPER_TRY(vsock::unix_address(path));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Error::from_errno("vsock: socket");
  const auto* sa = reinterpret_cast<const sockaddr*>(&addr);
  if (::bind(fd.get(), sa, sizeof addr) < 0) {
    if (errno != EADDRINUSE) return Error::from_errno("vsock: bind " + path);
    HYPER_CHECK(check_stale_socket(path));
    if (::unlink(path.c_str()) < 0 && errno != ENOENT) return Error::from_errno("vsock: unlink stale " + path);
    if (::bind(fd.get(), sa, sizeof addr) < 0) return Error::from_errno("vsock: bind " + path);
  }
  if (::listen(fd.get(), kListenBacklog) < 0) return Error::from_errno("vsock: listen " + path);
  return fd;
}

void set_timer(int fd, uint64_t interval_ns) {
  itimerspec spec{};
  spec.it_interval.tv_sec = static_cast<time_t>(interval_ns / 1'000'000'000);
  spec.it_interval.tv_nsec = static_cast<long>(interval_ns % 1'000'000'000);
  spec.it_value = spec.it_interval;  // all zero disarms
  (void)::timerfd_settime(fd, 0, &spec, nullptr);
}

}  // namespace

Result<std::shared_ptr<Vsock>> Vsock::create(const VsockOptions& options) {
  if (options.guest_cid < 3 || options.guest_cid >= 0xffffffffULL)
    return make_error(Errc::invalid_argument, "vsock: guest CID " + std::to_string(options.guest_cid) +
                                                  " is reserved or too large (use 3 to 4294967294)");
  if (options.socket_path.size() + kPortSuffixBytes >= sizeof(sockaddr_un::sun_path))
    return make_error(Errc::invalid_argument, "vsock: socket path '" + options.socket_path + "' is longer than " +
                                                  std::to_string(sizeof(sockaddr_un::sun_path) - 1 - kPortSuffixBytes) +
                                                  " bytes (room is kept for the _<port> suffix)");
  if (options.handshake_timeout_ms == 0)
    return make_error(Errc::invalid_argument, "vsock: the handshake timeout must be positive");
  auto listener = HYPER_TRY(listen_unix(options.socket_path));
  struct stat st {};
  if (::stat(options.socket_path.c_str(), &st) < 0) return Error::from_errno("vsock: " + options.socket_path);
  UniqueFd timer(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!timer.valid()) {
    ::unlink(options.socket_path.c_str());
    return Error::from_errno("vsock: timerfd_create");
  }
  auto resume = EventFd::create();
  if (!resume) {
    ::unlink(options.socket_path.c_str());
    return std::move(resume).error();
  }
  return std::shared_ptr<Vsock>(new Vsock(options, std::move(listener), std::move(timer), std::move(resume).value(),
                                          st.st_dev, st.st_ino));
}

Vsock::Vsock(VsockOptions options, UniqueFd listener, UniqueFd timer, EventFd resume, dev_t dev, ino_t ino)
    : options_(std::move(options)),
      listener_(std::move(listener)),
      timer_(std::move(timer)),
      resume_(std::move(resume)),
      socket_dev_(dev),
      socket_ino_(ino) {}

Vsock::~Vsock() {
  // Another VMM may have replaced a socket we were told to give up: unlink only ours.
  struct stat st {};
  if (::lstat(options_.socket_path.c_str(), &st) == 0 && st.st_dev == socket_dev_ && st.st_ino == socket_ino_)
    ::unlink(options_.socket_path.c_str());
}

uint64_t Vsock::device_features() const {
  // Stream sockets need no feature bit: they are implied without NO_IMPLIED_STREAM.
  return kFeatureVersion1 | kFeatureRingEventIdx | kFeatureRingIndirectDesc;
}

void Vsock::read_config(uint64_t offset, std::span<uint8_t> data) const {
  uint8_t config[8];
  std::memcpy(config, &options_.guest_cid, sizeof config);
  read_config_window(config, offset, data);
}

Status Vsock::activate(Activation activation) {
  {
    std::lock_guard lock(mutex_);
    spare_rx_.reset();  // a chain of the previous rings
  }
  HYPER_CHECK(slot_.set(std::move(activation), 3, "virtio-vsock"));
  // A driver may post rx buffers before DRIVER_OK, when its kick is not delivered: look
  // at the queues once now.
  resume_.signal();
  return {};
}

void Vsock::reset() {
  slot_.clear();
  std::lock_guard lock(mutex_);
  drop_all_connections_locked();
}

// A restored guest's connections were to a host that is gone: VIRTIO_VSOCK_EVENT_
// TRANSPORT_RESET makes its driver drop them all and read the guest CID again, which is
// how a VM restored from a template learns its own.
bool Vsock::restored() {
  constexpr uint32_t kTransportReset = 0;
  run_locked([&](Activation* active) {
    if (!active) return true;
    Queue& events = active->queues[kEventQueue];
    auto chain = events.pop();
    if (!chain) return false;
    if (!chain->has_value() || (*chain)->writable.empty() || (*chain)->writable[0].len < sizeof kTransportReset)
      return true;  // no event buffer posted: nothing to tell
    const auto& chain_value = **chain;
    if (!active->memory->write_obj(chain_value.writable[0].gpa, kTransportReset)) return false;
    if (!events.push_used(chain_value.head, sizeof kTransportReset)) return false;
    notify_if_wanted(*active, events);
    return true;
  });
  return false;
}

std::string Vsock::describe() const {
  std::string text = slot_.describe();
  std::unique_lock lock(mutex_, std::try_to_lock);
  if (lock.owns_lock()) text += "\n  " + std::to_string(connections_.size()) + " connection(s)";
  return text;
}

void Vsock::queue_notify(uint32_t index) {
  if (index != kRxQueue && index != kTxQueue) return;  // we never send events
  run_locked([&](Activation* active) { return active ? serve_queues(*active) : true; });
}

Status Vsock::attach(EventLoop& loop) {
  std::lock_guard lock(mutex_);
  if (loop_) return make_error(Errc::invalid_argument, "vsock: attached twice");
  const auto weak = weak_from_this();
  HYPER_CHECK(loop.add(listener_.get(), EventLoop::kReadable, [weak](uint32_t) {
    if (auto self = weak.lock()) self->on_listener_ready();
  }));
  HYPER_CHECK(loop.add(timer_.get(), EventLoop::kReadable, [weak](uint32_t) {
    if (auto self = weak.lock()) self->on_timer();
  }));
  HYPER_CHECK(loop.add(resume_.fd(), EventLoop::kReadable, [weak](uint32_t) {
    auto self = weak.lock();
    if (!self) return;
    (void)self->resume_.drain();
    self->queue_notify(kRxQueue);
  }));
  loop_ = &loop;
  return {};
}

VsockStats Vsock::stats() const {
  const uint64_t broken = slot_.broken();  // before mutex_: the slot's lock comes first
  std::lock_guard lock(mutex_);
  VsockStats s = stats_;
  s.connections = connections_.size();
  s.broken_rings = broken;
  return s;
}

template <class Work>
void Vsock::run_locked(Work&& work) {
  bool ran = false;
  slot_.run([&](Activation& active) {
    ran = true;
    std::lock_guard lock(mutex_);
    const bool healthy = work(&active);
    if (!healthy) spare_rx_.reset();
    finish_event_locked();
    return healthy;
  });
  if (ran) return;
  std::lock_guard lock(mutex_);
  (void)work(nullptr);
  finish_event_locked();
}

void Vsock::finish_event_locked() {
  for (const uint64_t key : retired_) {
    auto it = connections_.find(key);
    if (it == connections_.end()) continue;
    if (it->second.in_control_queue) std::erase(control_queue_, key);
    if (it->second.in_readable_queue) std::erase(readable_queue_, key);
    connections_.erase(it);
  }
  retired_.clear();
  if (more_work_) resume_.signal();
  more_work_ = false;
}

void Vsock::on_listener_ready() {
  run_locked([&](Activation*) {
    for (int i = 0; i < kAcceptsPerEvent; ++i) {
      const int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) {
        accept_connection(UniqueFd(fd));
        continue;
      }
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        // Out of fds, say: the listener would stay readable and spin the loop, so it
        // rests until the next timer tick.
        listener_paused_ = true;
        (void)loop_->modify(listener_.get(), 0);
        arm_timer();
      }
      break;
    }
    return true;  // nothing for the guest yet
  });
}

void Vsock::on_host_event(uint64_t key, uint32_t events) {
  run_locked([&](Activation* active) {
    Connection* c = find(key);
    if (c && !c->retired) handle_host_event(*c, events);
    return active ? serve_queues(*active) : true;
  });
}

void Vsock::on_timer() {
  run_locked([&](Activation* active) {
    uint64_t ticks;
    (void)!::read(timer_.get(), &ticks, sizeof ticks);
    const uint64_t now = monotonic_ns();
    bool pending = false;
    for (auto& [key, c] : connections_) {
      if (c.retired || c.deadline_ns == 0) continue;
      if (now < c.deadline_ns) {
        pending = true;
        continue;
      }
      ++stats_.refused_connections;
      c.deadline_ns = 0;
      reset_connection(c);
    }
    if (listener_paused_ && loop_ && loop_->modify(listener_.get(), EventLoop::kReadable).ok())
      listener_paused_ = false;
    if (!pending && !listener_paused_) {
      set_timer(timer_.get(), 0);
      timer_armed_ = false;
    }
    return active ? serve_queues(*active) : true;
  });
}

void Vsock::arm_timer() {
  if (timer_armed_) return;
  // Deadlines are coarse: a tick a quarter of the timeout (at most 500 ms) catches them.
  const uint64_t timeout_ns = uint64_t{options_.handshake_timeout_ms} * 1'000'000;
  set_timer(timer_.get(), std::clamp<uint64_t>(timeout_ns / 4, 10'000'000, 500'000'000));
  timer_armed_ = true;
}

void Vsock::drop_all_connections_locked() {
  for (auto& [key, c] : connections_) unwatch(c);
  connections_.clear();  // closes every host socket
  by_ports_.clear();
  control_queue_.clear();
  readable_queue_.clear();
  orphan_resets_.clear();
  retired_.clear();
  spare_rx_.reset();
  tx_held_ = false;
  next_local_port_ = kFirstLocalPort;  // the driver forgot every connection too
}

}  // namespace hyper::virtio
