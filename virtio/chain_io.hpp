// Copies between host bytes and the guest buffers of a descriptor chain, through the
// bounds-checked guest-memory API. The walker already checked every buffer lies in guest
// memory; these still check, and report a short chain as failure.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "virtio/queue.hpp"

namespace hyper::virtio {

// Calls fn(span) on consecutive pieces of `buffers`, skipping `skip` bytes and covering
// exactly `len` bytes; false when the buffers run out or `fn` fails.
template <class Fn>
bool for_each_piece(const GuestMemory& memory, const std::vector<Buffer>& buffers, uint64_t skip, uint64_t len,
                    Fn&& fn) {
  for (const Buffer& b : buffers) {
    if (len == 0) break;
    if (skip >= b.len) {
      skip -= b.len;
      continue;
    }
    const uint64_t n = std::min<uint64_t>(b.len - skip, len);
    auto piece = memory.slice(b.gpa + skip, n);
    if (!piece || !fn(*piece)) return false;
    len -= n;
    skip = 0;
  }
  return len == 0;
}

// Guest buffers (from byte `skip` on) <- `bytes`.
inline bool copy_to_buffers(const GuestMemory& memory, const std::vector<Buffer>& buffers, uint64_t skip,
                            std::span<const uint8_t> bytes) {
  const uint8_t* src = bytes.data();
  return for_each_piece(memory, buffers, skip, bytes.size(), [&](std::span<uint8_t> piece) {
    std::memcpy(piece.data(), src, piece.size());
    src += piece.size();
    return true;
  });
}

// `bytes` <- guest buffers (from byte `skip` on).
inline bool copy_from_buffers(const GuestMemory& memory, const std::vector<Buffer>& buffers, uint64_t skip,
                              std::span<uint8_t> bytes) {
  uint8_t* dst = bytes.data();
  return for_each_piece(memory, buffers, skip, bytes.size(), [&](std::span<uint8_t> piece) {
    std::memcpy(dst, piece.data(), piece.size());
    dst += piece.size();
    return true;
  });
}

}  // namespace hyper::virtio
