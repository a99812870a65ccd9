#include "virtio/vhost_user.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

#include "vmm/clock.hpp"

namespace hyper::virtio::vhost_user {
namespace {

// How long one blocking socket call may wait before the deadline is looked at again:
// short, so that a caller's deadline (and a vCPU thread's stop) is kept to within it.
constexpr long kWaitSliceUs = 50'000;
// Room for the file descriptors a hostile back-end might attach to a reply.
constexpr size_t kMaxReceivedFds = 16;

constexpr uint64_t kDescriptorBytes = 16;
constexpr uint64_t kRingHeaderBytes = 4;  // flags, idx
constexpr uint64_t kUsedElementBytes = 8;
constexpr uint64_t kEventWordBytes = 2;   // used_event / avail_event after each ring

template <class T>
std::span<const uint8_t> bytes_of(const T& value) {
  return {reinterpret_cast<const uint8_t*>(&value), sizeof value};
}

template <class T>
std::span<uint8_t> bytes_of(T& value) {
  return {reinterpret_cast<uint8_t*>(&value), sizeof value};
}

std::string describe_request(uint32_t request) {
  return std::string(request_name(request)) + " (" + std::to_string(request) + ")";
}

Status set_wait_slice(int fd) {
  const timeval slice{0, kWaitSliceUs};
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &slice, sizeof slice) < 0 ||
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &slice, sizeof slice) < 0)
    return Error::from_errno("vhost-user: setting the socket's timeouts");
  return {};
}

bool interrupted_or_slice_over(int err) { return err == EINTR || err == EAGAIN || err == EWOULDBLOCK; }

// Closes every descriptor that arrived in `msg`'s control data; returns how many.
size_t close_received_fds(msghdr& msg) {
  size_t closed = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0)) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      ::close(fd);
      ++closed;
    }
  }
  return closed;
}

}  // namespace

const char* request_name(uint32_t request) {
  switch (static_cast<Request>(request)) {
    case Request::get_features: return "GET_FEATURES";
    case Request::set_features: return "SET_FEATURES";
    case Request::set_owner: return "SET_OWNER";
    case Request::set_mem_table: return "SET_MEM_TABLE";
    case Request::set_vring_num: return "SET_VRING_NUM";
    case Request::set_vring_addr: return "SET_VRING_ADDR";
    case Request::set_vring_base: return "SET_VRING_BASE";
    case Request::get_vring_base: return "GET_VRING_BASE";
    case Request::set_vring_kick: return "SET_VRING_KICK";
    case Request::set_vring_call: return "SET_VRING_CALL";
    case Request::get_protocol_features: return "GET_PROTOCOL_FEATURES";
    case Request::set_protocol_features: return "SET_PROTOCOL_FEATURES";
    case Request::set_vring_enable: return "SET_VRING_ENABLE";
  }
  return "an unknown request";
}

Result<std::vector<SharedRegion>> memory_table(const GuestMemory& memory) {
  if (!memory.shareable())
    return make_error(Errc::invalid_argument, "vhost-user: guest memory is not shareable (it needs MemoryBacking::shared_memfd)");
  if (memory.regions().size() > kMaxMemoryRegions)
    return make_error(Errc::invalid_argument, "vhost-user: guest memory has more than " + std::to_string(kMaxMemoryRegions) + " regions");
  std::vector<SharedRegion> table;
  for (const auto& r : memory.regions()) {
    const auto address = reinterpret_cast<uint64_t>(r.mapping.data());
    table.push_back({{r.gpa, r.size(), address, r.fd_offset}, r.fd.get()});
  }
  return table;
}

Result<VringAddress> vring_address(const GuestMemory& memory, uint32_t index, const QueueLayout& layout) {
  const uint64_t n = layout.size;
  auto desc = memory.slice(layout.desc_table, kDescriptorBytes * n);
  auto avail = memory.slice(layout.avail_ring, kRingHeaderBytes + 2 * n + kEventWordBytes);
  auto used = memory.slice(layout.used_ring, kRingHeaderBytes + kUsedElementBytes * n + kEventWordBytes);
  if (n == 0 || !desc || !avail || !used)
    return make_error(Errc::out_of_bounds, "vhost-user: ring " + std::to_string(index) + " does not lie inside guest memory");
  return VringAddress{index, 0, reinterpret_cast<uint64_t>(desc->data()), reinterpret_cast<uint64_t>(used->data()),
                      reinterpret_cast<uint64_t>(avail->data()), 0};
}

Status check_reply_header(const Header& reply, Request request, uint32_t payload_size) {
  const auto expected = static_cast<uint32_t>(request);
  std::string why;
  if ((reply.flags & kVersionMask) != kVersion) {
    why = "protocol version " + std::to_string(reply.flags & kVersionMask) + ", not 1";
  } else if (!(reply.flags & kFlagReply)) {
    why = "a message without the reply flag";
  } else if (reply.request != expected) {
    why = "a reply to " + describe_request(reply.request);
  } else if (reply.size != payload_size) {
    why = "a " + std::to_string(reply.size) + "-byte payload, not " + std::to_string(payload_size);
  } else {
    return {};
  }
  return make_error(Errc::io, "vhost-user: the back-end answered " + describe_request(expected) + " with " + why);
}

Result<Frontend> Frontend::connect(const std::string& socket_path, uint32_t reply_timeout_ms) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path.empty() || socket_path.size() >= sizeof address.sun_path)
    return make_error(Errc::invalid_argument, "vhost-user socket path '" + socket_path + "' is empty or longer than " +
                                                  std::to_string(sizeof address.sun_path - 1) + " bytes");
  struct stat st {};
  if (::stat(socket_path.c_str(), &st) < 0) return Error::from_errno("vhost-user socket " + socket_path);
  if (!S_ISSOCK(st.st_mode))
    return make_error(Errc::invalid_argument, "vhost-user socket " + socket_path + " is not a socket");
  std::memcpy(address.sun_path, socket_path.data(), socket_path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Error::from_errno("vhost-user: socket");
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) < 0)
    return Error::from_errno("vhost-user: connecting to " + socket_path + " (is the back-end listening there?)");
  return adopt(std::move(fd), reply_timeout_ms);
}

Result<Frontend> Frontend::adopt(UniqueFd socket, uint32_t reply_timeout_ms) {
  const int flags = ::fcntl(socket.get(), F_GETFL);
  if (flags < 0 || ::fcntl(socket.get(), F_SETFL, flags & ~O_NONBLOCK) < 0)
    return Error::from_errno("vhost-user: the back-end's socket");
  HYPER_CHECK(set_wait_slice(socket.get()));
  return Frontend(std::move(socket), reply_timeout_ms);
}

Result<uint64_t> Frontend::open_session() {
  const uint64_t features = HYPER_TRY(get_features());
  if (features & kFeatureProtocolFeatures) {
    const uint64_t offered = HYPER_TRY(get_protocol_features());
    HYPER_CHECK(set_protocol_features(offered & kProtocolFeatureReplyAck));
  }
  HYPER_CHECK(set_owner());
  return features;
}

Result<uint64_t> Frontend::get_features() {
  uint64_t features = 0;
  HYPER_CHECK(query(Request::get_features, {}, bytes_of(features)));
  return features;
}

Status Frontend::set_features(uint64_t features) { return command(Request::set_features, bytes_of(features)); }

Result<uint64_t> Frontend::get_protocol_features() {
  uint64_t features = 0;
  HYPER_CHECK(query(Request::get_protocol_features, {}, bytes_of(features)));
  return features;
}

// Not acknowledged even when REPLY_ACK is among `features`: it takes effect with this
// very message, and a back-end may not expect to answer it yet.
Status Frontend::set_protocol_features(uint64_t features) {
  HYPER_CHECK(usable());
  HYPER_CHECK(send(Request::set_protocol_features, bytes_of(features), {}, false, deadline()));
  reply_ack_ = (features & kProtocolFeatureReplyAck) != 0;
  return {};
}

Status Frontend::set_owner() { return command(Request::set_owner, {}); }

Status Frontend::set_mem_table(std::span<const SharedRegion> regions) {
  if (regions.empty() || regions.size() > kMaxMemoryRegions)
    return make_error(Errc::invalid_argument, "vhost-user: a memory table needs 1 to 8 regions");
  struct {
    uint32_t count;
    uint32_t padding;
    MemoryRegionEntry entries[kMaxMemoryRegions];
  } table{};
  int fds[kMaxMemoryRegions];
  table.count = static_cast<uint32_t>(regions.size());
  for (size_t i = 0; i < regions.size(); ++i) {
    table.entries[i] = regions[i].entry;
    fds[i] = regions[i].fd;
  }
  const size_t bytes = 8 + regions.size() * sizeof(MemoryRegionEntry);
  return command(Request::set_mem_table, bytes_of(table).first(bytes), std::span<const int>(fds, regions.size()));
}

Status Frontend::set_vring_num(uint32_t index, uint32_t size) {
  return command(Request::set_vring_num, bytes_of(VringState{index, size}));
}

Status Frontend::set_vring_addr(const VringAddress& address) { return command(Request::set_vring_addr, bytes_of(address)); }

Status Frontend::set_vring_base(uint32_t index, uint32_t next_avail) {
  return command(Request::set_vring_base, bytes_of(VringState{index, next_avail}));
}

Result<uint32_t> Frontend::get_vring_base(uint32_t index) {
  VringState state{};
  HYPER_CHECK(query(Request::get_vring_base, bytes_of(VringState{index, 0}), bytes_of(state)));
  if (state.index != index)
    return fail(Request::get_vring_base, "the state of ring " + std::to_string(state.index) + ", not " + std::to_string(index));
  return state.num;
}

Status Frontend::set_vring_kick(uint32_t index, int eventfd) {
  const uint64_t payload = index & kVringIndexMask;
  return command(Request::set_vring_kick, bytes_of(payload), std::span<const int>(&eventfd, 1));
}

Status Frontend::set_vring_call(uint32_t index, int eventfd) {
  const uint64_t payload = index & kVringIndexMask;
  return command(Request::set_vring_call, bytes_of(payload), std::span<const int>(&eventfd, 1));
}

Status Frontend::set_vring_enable(uint32_t index, bool enable) {
  return command(Request::set_vring_enable, bytes_of(VringState{index, enable ? 1U : 0U}));
}

Status Frontend::command(Request request, std::span<const uint8_t> payload, std::span<const int> fds) {
  HYPER_CHECK(usable());
  const uint64_t until = deadline();
  HYPER_CHECK(send(request, payload, fds, reply_ack_, until));
  if (!reply_ack_) return {};
  uint64_t status = 0;
  HYPER_CHECK(receive(request, bytes_of(status), until));
  if (status != 0)  // the back-end refused, in step: the connection stays usable
    return make_error(Errc::io, std::string("vhost-user: the back-end refused ") + request_name(static_cast<uint32_t>(request)) +
                                    " (status " + std::to_string(status) + ")");
  return {};
}

Status Frontend::query(Request request, std::span<const uint8_t> payload, std::span<uint8_t> reply) {
  HYPER_CHECK(usable());
  const uint64_t until = deadline();
  HYPER_CHECK(send(request, payload, {}, false, until));
  return receive(request, reply, until);
}

Status Frontend::usable() const {
  if (broken_.empty()) return {};
  return make_error(Errc::io, "vhost-user: the connection to the back-end was given up: " + broken_);
}

uint64_t Frontend::deadline() const { return monotonic_ns() + uint64_t{reply_timeout_ms_} * 1'000'000; }

Error Frontend::fail(Request request, const std::string& why) {
  broken_ = std::string(request_name(static_cast<uint32_t>(request))) + ": " + why;
  // The peer sees end-of-file; our own fd stays open (and its number taken) until we
  // are destroyed, so nobody watching it can be handed a recycled descriptor.
  (void)::shutdown(socket_.get(), SHUT_RDWR);
  return make_error(Errc::io, "vhost-user: " + broken_);
}

// Header and payload go out in one sendmsg, the fds attached to its first byte: the
// back-end may read the header with the fds and then the whole payload in one read.
Status Frontend::send(Request request, std::span<const uint8_t> payload, std::span<const int> fds, bool need_reply,
                      uint64_t deadline_ns) {
  if (fds.size() > kMaxMemoryRegions) return make_error(Errc::invalid_argument, "vhost-user: too many fds for one message");
  Header header{static_cast<uint32_t>(request), kVersion | (need_reply ? kFlagNeedReply : 0U),
                static_cast<uint32_t>(payload.size())};
  uint8_t message[sizeof(Header) + 512];
  if (payload.size() > sizeof message - sizeof header) return make_error(Errc::invalid_argument, "vhost-user: payload too large");
  std::memcpy(message, &header, sizeof header);
  if (!payload.empty()) std::memcpy(message + sizeof header, payload.data(), payload.size());
  const size_t total = sizeof header + payload.size();

  alignas(cmsghdr) char control[CMSG_SPACE(kMaxMemoryRegions * sizeof(int))] = {};
  size_t sent = 0;
  while (sent < total) {
    iovec iov{message + sent, total - sent};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (sent == 0 && !fds.empty()) {
      msg.msg_control = control;
      msg.msg_controllen = CMSG_SPACE(fds.size() * sizeof(int));
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
      std::memcpy(CMSG_DATA(c), fds.data(), fds.size() * sizeof(int));
    }
    const ssize_t n = ::sendmsg(socket_.get(), &msg, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && interrupted_or_slice_over(errno) && monotonic_ns() < deadline_ns) continue;
    if (n < 0 && interrupted_or_slice_over(errno)) return fail(request, "the back-end took no message within the timeout");
    return fail(request, std::string("sending: ") + std::strerror(n < 0 ? errno : EPIPE));
  }
  return {};
}

Status Frontend::receive(Request request, std::span<uint8_t> payload, uint64_t deadline_ns) {
  Header header{};
  if (Status s = receive_exact(bytes_of(header), deadline_ns, "reply header"); !s) return fail(request, s.error().message);
  if (Status s = check_reply_header(header, request, static_cast<uint32_t>(payload.size())); !s)
    return fail(request, s.error().message);
  if (Status s = receive_exact(payload, deadline_ns, "reply payload"); !s) return fail(request, s.error().message);
  return {};
}

Status Frontend::receive_exact(std::span<uint8_t> out, uint64_t deadline_ns, const char* what) {
  size_t got = 0;
  while (got < out.size()) {
    alignas(cmsghdr) char control[CMSG_SPACE(kMaxReceivedFds * sizeof(int))];
    iovec iov{out.data() + got, out.size() - got};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t n = ::recvmsg(socket_.get(), &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && interrupted_or_slice_over(errno)) {
      if (monotonic_ns() >= deadline_ns) return make_error(Errc::io, std::string("no ") + what + " within the timeout");
      continue;
    }
    if (n < 0) return Error::from_errno(std::string("receiving the ") + what);
    const bool sent_fds = close_received_fds(msg) > 0 || (msg.msg_flags & MSG_CTRUNC);
    if (sent_fds) return make_error(Errc::io, std::string("file descriptors came with the ") + what);
    if (n == 0) return make_error(Errc::io, std::string("the back-end closed the connection before the ") + what + " was complete");
    got += static_cast<size_t>(n);
  }
  return {};
}

}  // namespace hyper::virtio::vhost_user
