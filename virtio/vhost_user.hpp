// The front-end side of the vhost-user protocol (QEMU's docs/interop/vhost-user.rst): the
// VMM keeps a device's rings in guest memory and hands them, with the memory itself and
// one kick and one call eventfd per ring, to a back-end process over a Unix socket.
// A message is a 12-byte header (request, flags, payload size) and a payload, in native
// byte order; file descriptors travel with it as SCM_RIGHTS.
//
// Every reply comes from another process and is hostile input: its header is checked
// against the request before any payload is read, the payload must have exactly the
// size that request's reply has, file descriptors sent along are closed, and each
// request and its reply must complete within the reply timeout. A reply that fails any
// of this leaves the stream out of step, so the connection is shut down then and every
// later call fails at once (the back-end sees the hang-up and normally exits).
// No call allocates from what the back-end sends, blocks past its deadline, raises
// SIGPIPE or throws.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "virtio/queue.hpp"
#include "vmm/guest_memory.hpp"
#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::virtio::vhost_user {

// The requests this front-end sends (the ids of the spec's "Front-end message types").
enum class Request : uint32_t {
  get_features = 1,
  set_features = 2,
  set_owner = 3,
  set_mem_table = 5,
  set_vring_num = 8,
  set_vring_addr = 9,
  set_vring_base = 10,
  get_vring_base = 11,
  set_vring_kick = 12,
  set_vring_call = 13,
  get_protocol_features = 15,
  set_protocol_features = 16,
  set_vring_enable = 18,
};
[[nodiscard]] const char* request_name(uint32_t request);

inline constexpr uint32_t kVersion = 1;  // the header's flags, bits 0-1
inline constexpr uint32_t kVersionMask = 0x3;
inline constexpr uint32_t kFlagReply = 1U << 2;
inline constexpr uint32_t kFlagNeedReply = 1U << 3;
// A virtio feature bit the protocol borrows: the back-end speaks protocol features.
inline constexpr uint64_t kFeatureProtocolFeatures = 1ULL << 30;
// The one protocol feature negotiated: every request may ask for an acknowledgement, so
// a back-end that refuses a step says so at that step.
inline constexpr uint64_t kProtocolFeatureReplyAck = 1ULL << 3;
// SET_VRING_KICK/CALL payload: bits 0-7 the ring, bit 8 "no file descriptor".
inline constexpr uint64_t kVringIndexMask = 0xff;
inline constexpr uint64_t kVringNoFd = 1ULL << 8;
// SET_MEM_TABLE carries at most this many regions (and as many fds).
inline constexpr size_t kMaxMemoryRegions = 8;

struct Header {
  uint32_t request;
  uint32_t flags;
  uint32_t size;  // of the payload that follows
};
static_assert(sizeof(Header) == 12);

struct VringState {
  uint32_t index;
  uint32_t num;
};

// Addresses in the front-end's (our) address space: the back-end translates them through
// the memory table's userspace_addr.
struct VringAddress {
  uint32_t index;
  uint32_t flags;  // bit 0 would ask for dirty logging; always 0 here
  uint64_t desc;
  uint64_t used;
  uint64_t avail;
  uint64_t log;
};
static_assert(sizeof(VringAddress) == 40);

struct MemoryRegionEntry {
  uint64_t guest_phys_addr;
  uint64_t memory_size;
  uint64_t userspace_addr;
  uint64_t mmap_offset;  // where the region starts in its fd
};
static_assert(sizeof(MemoryRegionEntry) == 32);

// One region of the memory table and the fd the back-end maps it from (not owned).
struct SharedRegion {
  MemoryRegionEntry entry;
  int fd;
};

// The memory table for `memory`: every region with its memfd and our mapping's address.
// Fails unless the memory is shareable (MemoryBacking::shared_memfd).
[[nodiscard]] Result<std::vector<SharedRegion>> memory_table(const GuestMemory& memory);
// Ring `index`'s addresses in our address space, each ring checked to lie inside guest
// memory in full before its address is handed out.
[[nodiscard]] Result<VringAddress> vring_address(const GuestMemory& memory, uint32_t index, const QueueLayout& layout);

// Checks a reply's header against the request it answers and the payload size that
// request's reply has: version 1, the reply flag, the same request, exactly that size.
[[nodiscard]] Status check_reply_header(const Header& reply, Request request, uint32_t payload_size);

class Frontend {
 public:
  static constexpr uint32_t kDefaultReplyTimeoutMs = 3000;

  // Connects to a back-end listening at `socket_path` (virtiofsd --socket-path=...).
  static Result<Frontend> connect(const std::string& socket_path, uint32_t reply_timeout_ms = kDefaultReplyTimeoutMs);
  // Takes a connected stream socket (a socketpair's end, an accepted connection). Its
  // O_NONBLOCK is cleared and timeouts are set on it, which the socket's other fds share.
  static Result<Frontend> adopt(UniqueFd socket, uint32_t reply_timeout_ms = kDefaultReplyTimeoutMs);

  // The opening: GET_FEATURES; when the back-end has protocol features,
  // GET_PROTOCOL_FEATURES and SET_PROTOCOL_FEATURES with REPLY_ACK if offered; SET_OWNER.
  // Returns the back-end's virtio features.
  [[nodiscard]] Result<uint64_t> open_session();

  [[nodiscard]] Result<uint64_t> get_features();
  [[nodiscard]] Status set_features(uint64_t features);
  [[nodiscard]] Result<uint64_t> get_protocol_features();
  [[nodiscard]] Status set_protocol_features(uint64_t features);
  [[nodiscard]] Status set_owner();
  [[nodiscard]] Status set_mem_table(std::span<const SharedRegion> regions);
  [[nodiscard]] Status set_vring_num(uint32_t index, uint32_t size);
  [[nodiscard]] Status set_vring_addr(const VringAddress& address);
  [[nodiscard]] Status set_vring_base(uint32_t index, uint32_t next_avail);
  // Stops ring `index`; returns the next available index the back-end would have served.
  [[nodiscard]] Result<uint32_t> get_vring_base(uint32_t index);
  [[nodiscard]] Status set_vring_kick(uint32_t index, int eventfd);
  [[nodiscard]] Status set_vring_call(uint32_t index, int eventfd);
  [[nodiscard]] Status set_vring_enable(uint32_t index, bool enable);

  // The socket, for seccomp rules and for watching it for a hang-up.
  [[nodiscard]] int socket_fd() const { return socket_.get(); }
  [[nodiscard]] bool reply_ack() const { return reply_ack_; }
  // Why the connection was given up, or empty while it is usable.
  [[nodiscard]] const std::string& broken() const { return broken_; }

 private:
  Frontend(UniqueFd socket, uint32_t reply_timeout_ms) : socket_(std::move(socket)), reply_timeout_ms_(reply_timeout_ms) {}

  // A request without a reply body; acknowledged when REPLY_ACK was negotiated.
  [[nodiscard]] Status command(Request request, std::span<const uint8_t> payload, std::span<const int> fds = {});
  // A request whose reply carries a payload of exactly `reply.size()` bytes.
  [[nodiscard]] Status query(Request request, std::span<const uint8_t> payload, std::span<uint8_t> reply);
  [[nodiscard]] Status send(Request request, std::span<const uint8_t> payload, std::span<const int> fds, bool need_reply,
                            uint64_t deadline_ns);
  [[nodiscard]] Status receive(Request request, std::span<uint8_t> payload, uint64_t deadline_ns);
  [[nodiscard]] Status receive_exact(std::span<uint8_t> out, uint64_t deadline_ns, const char* what);
  [[nodiscard]] Status usable() const;
  // Gives the connection up: records why, shuts the socket down, returns the error.
  Error fail(Request request, const std::string& why);
  [[nodiscard]] uint64_t deadline() const;

  UniqueFd socket_;
  uint32_t reply_timeout_ms_;
  bool reply_ack_ = false;
  std::string broken_;
};

}  // namespace hyper::virtio::vhost_user
