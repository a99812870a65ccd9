// The virtio-vsock wire format (virtio 1.2, section 5.10.6) and the moves of its bytes
// between packets and guest buffer chains. A header may be split across buffers anywhere;
// every access goes through GuestMemory, so hostile addresses and lengths are contained.
#pragma once

#include <sys/uio.h>

#include <array>
#include <bit>
#include <cstdint>
#include <span>
#include <vector>

#include "virtio/queue.hpp"
#include "vmm/guest_memory.hpp"

namespace hyper::virtio::vsock {

// The header is little-endian on the wire and KVM here is x86: fields are copied as is.
static_assert(std::endian::native == std::endian::little);

inline constexpr uint64_t kHostCid = 2;
inline constexpr uint16_t kTypeStream = 1;

enum class Op : uint16_t {
  request = 1,
  response = 2,
  rst = 3,
  shutdown = 4,
  rw = 5,
  credit_update = 6,
  credit_request = 7,
};

// SHUTDOWN flags, from the sender's point of view.
inline constexpr uint32_t kShutdownReceive = 1;  // the sender will receive no more
inline constexpr uint32_t kShutdownSend = 2;     // the sender will send no more

struct PacketHeader {
  static constexpr size_t kSize = 44;

  uint64_t src_cid = 0;
  uint64_t dst_cid = 0;
  uint32_t src_port = 0;
  uint32_t dst_port = 0;
  uint32_t len = 0;
  uint16_t type = kTypeStream;
  uint16_t op = 0;
  uint32_t flags = 0;
  uint32_t buf_alloc = 0;
  uint32_t fwd_cnt = 0;

  [[nodiscard]] std::array<uint8_t, kSize> encode() const;
  [[nodiscard]] static PacketHeader decode(std::span<const uint8_t, kSize> bytes);
};

// Host views of bytes [offset, offset + len) of a chain, for readv/sendmsg straight from
// and into guest memory; false when the chain is shorter.
[[nodiscard]] bool chain_iovecs(const GuestMemory& memory, const std::vector<Buffer>& buffers, uint64_t offset,
                                uint64_t len, std::vector<iovec>& out);

}  // namespace hyper::virtio::vsock
