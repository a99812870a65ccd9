#include "virtio/vsock_packet.hpp"

#include <cstring>

#include "virtio/chain_io.hpp"

namespace hyper::virtio::vsock {

namespace {

template <class T>
void put(uint8_t* out, size_t offset, T value) {
  std::memcpy(out + offset, &value, sizeof value);
}

template <class T>
T get(const uint8_t* in, size_t offset) {
  T value;
  std::memcpy(&value, in + offset, sizeof value);
  return value;
}

}  // namespace

std::array<uint8_t, PacketHeader::kSize> PacketHeader::encode() const {
  std::array<uint8_t, kSize> out{};
  put(out.data(), 0, src_cid);
  put(out.data(), 8, dst_cid);
  put(out.data(), 16, src_port);
  put(out.data(), 20, dst_port);
  put(out.data(), 24, len);
  put(out.data(), 28, type);
  put(out.data(), 30, op);
  put(out.data(), 32, flags);
  put(out.data(), 36, buf_alloc);
  put(out.data(), 40, fwd_cnt);
  return out;
}

PacketHeader PacketHeader::decode(std::span<const uint8_t, kSize> bytes) {
  const uint8_t* in = bytes.data();
  PacketHeader h;
  h.src_cid = get<uint64_t>(in, 0);
  h.dst_cid = get<uint64_t>(in, 8);
  h.src_port = get<uint32_t>(in, 16);
  h.dst_port = get<uint32_t>(in, 20);
  h.len = get<uint32_t>(in, 24);
  h.type = get<uint16_t>(in, 28);
  h.op = get<uint16_t>(in, 30);
  h.flags = get<uint32_t>(in, 32);
  h.buf_alloc = get<uint32_t>(in, 36);
  h.fwd_cnt = get<uint32_t>(in, 40);
  return h;
}

bool chain_iovecs(const GuestMemory& memory, const std::vector<Buffer>& buffers, uint64_t offset, uint64_t len,
                  std::vector<iovec>& out) {
  out.clear();
  return for_each_piece(memory, buffers, offset, len, [&](std::span<uint8_t> piece) {
    if (!piece.empty()) out.push_back({piece.data(), piece.size()});
    return true;
  });
}

}  // namespace hyper::virtio::vsock
