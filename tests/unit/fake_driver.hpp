// Plays a virtio driver against a device, with no transport and no /dev/kvm: guest memory
// is a plain buffer, each queue's rings live at fixed addresses, and chains are built
// from byte strings. Unit tests and fuzz targets of devices share it.
#pragma once

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "virtio/device.hpp"

namespace hyper::virtio::testing {

class FakeDriver {
 public:
  static constexpr uint64_t kMemoryBytes = 16 << 20;
  static constexpr uint64_t kRingArea = 0x10000;  // each queue's rings: 64 KiB from here
  static constexpr uint64_t kDataStart = 0x200000;

  explicit FakeDriver(size_t queues, uint16_t size = 64)
      : memory_(make_memory()), size_(size), queues_(queues) {}

  [[nodiscard]] const GuestMemory& memory() const { return memory_; }
  [[nodiscard]] GuestMemory& memory() { return memory_; }

  // What the transport hands the device at DRIVER_OK.
  Activation activation(uint64_t features) {
    Activation a{&memory_, features, {}, [this] { ++interrupts; }, [this] { needs_reset = true; }};
    for (size_t q = 0; q < queues_.size(); ++q) {
      auto queue = Queue::create(memory_, layout(q, (features & kFeatureRingEventIdx) != 0));
      if (!queue) throw std::runtime_error(queue.error().message);
      a.queues.push_back(std::move(queue).value());
    }
    return a;
  }

  // Makes a chain available on queue `q`: one device-readable buffer per entry of
  // `readable`, then one device-writable buffer per entry of `writable` (its size).
  // Returns the head descriptor's index. Throws when the queue lacks free descriptors.
  uint16_t post(size_t q, const std::vector<std::string>& readable, const std::vector<uint32_t>& writable = {}) {
    QueueState& s = queues_.at(q);
    const size_t count = readable.size() + writable.size();
    if (count == 0 || count > free_descriptors(q)) throw std::runtime_error("FakeDriver: no room for the chain");
    std::vector<uint16_t> indices;
    for (uint16_t i = 0; indices.size() < count; ++i) {
      if (!s.in_use[i]) indices.push_back(i);
    }
    const uint16_t head = indices[0];
    s.chains[head] = indices;
    s.buffers[head].clear();
    for (size_t i = 0; i < count; ++i) {
      const bool is_readable = i < readable.size();
      const uint32_t len = is_readable ? static_cast<uint32_t>(readable[i].size()) : writable[i - readable.size()];
      const uint64_t gpa = allocate(len);
      if (is_readable) write_bytes(gpa, readable[i]);
      else s.buffers[head].push_back({gpa, len});
      const uint16_t flags = static_cast<uint16_t>((i + 1 < count ? 1 : 0) | (is_readable ? 0 : 2));
      write_descriptor(q, indices[i], gpa, len, flags, i + 1 < count ? indices[i + 1] : 0);
      s.in_use[indices[i]] = true;
    }
    publish_raw(q, head);
    return head;
  }

  // Descriptors not part of a chain the device still holds.
  [[nodiscard]] size_t free_descriptors(size_t q) const {
    size_t n = 0;
    for (uint16_t i = 0; i < size_; ++i) n += queues_.at(q).in_use[i] ? 0 : 1;
    return n;
  }

  struct Used {
    uint16_t head;
    uint32_t len;
    std::string data;  // the chain's writable buffers, concatenated, cut to `len`
  };
  // Chains the device returned on queue `q` since the last call.
  std::vector<Used> take_used(size_t q) {
    QueueState& s = queues_.at(q);
    std::vector<Used> out;
    const uint64_t used = used_ring(q);
    const uint16_t idx = read<uint16_t>(used + 2);
    while (s.used_seen != idx) {
      const uint64_t elem = used + 4 + 8ULL * (s.used_seen % size_);
      Used u{static_cast<uint16_t>(read<uint32_t>(elem)), read<uint32_t>(elem + 4), {}};
      if (u.head >= size_) throw std::runtime_error("FakeDriver: the device returned an impossible id");
      for (uint16_t i : s.chains[u.head]) s.in_use[i] = false;
      s.chains[u.head].clear();
      uint32_t left = u.len;
      for (const Buffer& b : s.buffers[u.head]) {
        const uint32_t n = std::min(left, b.len);
        u.data += read_bytes(b.gpa, n);
        left -= n;
      }
      out.push_back(std::move(u));
      ++s.used_seen;
    }
    return out;
  }

  // Writes a raw descriptor (for malformed chains) and publishes `head` as-is.
  void write_descriptor(size_t q, uint16_t index, uint64_t gpa, uint32_t len, uint16_t flags, uint16_t next) {
    const uint64_t d = desc_table(q) + index * 16ULL;
    write<uint64_t>(d, gpa);
    write<uint32_t>(d + 8, len);
    write<uint16_t>(d + 12, flags);
    write<uint16_t>(d + 14, next);
  }
  void publish_raw(size_t q, uint16_t head) {
    QueueState& s = queues_.at(q);
    write<uint16_t>(avail_ring(q) + 4 + 2ULL * (s.avail_idx % size_), head);
    ++s.avail_idx;
    write<uint16_t>(avail_ring(q) + 2, s.avail_idx);
  }

  uint64_t allocate(uint64_t len) {
    if (next_data_ + len > kMemoryBytes) next_data_ = kDataStart;  // long tests wrap around
    const uint64_t gpa = next_data_;
    next_data_ = (next_data_ + len + 15) & ~uint64_t{15};
    return gpa;
  }
  void write_bytes(uint64_t gpa, const std::string& bytes) {
    if (!memory_.write(gpa, {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}).ok())
      throw std::runtime_error("FakeDriver: write outside memory");
  }
  std::string read_bytes(uint64_t gpa, uint64_t len) const {
    std::string out(len, '\0');
    if (!memory_.read(gpa, {reinterpret_cast<uint8_t*>(out.data()), out.size()}).ok())
      throw std::runtime_error("FakeDriver: read outside memory");
    return out;
  }

  // Where queue `q`'s rings are, for a transport's queue registers.
  [[nodiscard]] QueueLayout layout(size_t q, bool event_idx) const {
    return {size_, desc_table(q), avail_ring(q), used_ring(q), event_idx};
  }
  // The event-idx fields (virtio 1.x, 2.7.10): used_event is the driver's, avail_event
  // the device's.
  void set_used_event(size_t q, uint16_t value) { write<uint16_t>(avail_ring(q) + 4 + 2ULL * size_, value); }
  [[nodiscard]] uint16_t avail_event(size_t q) const { return read<uint16_t>(used_ring(q) + 4 + 8ULL * size_); }
  [[nodiscard]] uint16_t avail_idx(size_t q) const { return queues_.at(q).avail_idx; }
  // Used chains not yet taken with take_used().
  [[nodiscard]] bool has_used(size_t q) const { return read<uint16_t>(used_ring(q) + 2) != queues_.at(q).used_seen; }
  [[nodiscard]] uint16_t used_seen(size_t q) const { return queues_.at(q).used_seen; }

  int interrupts = 0;
  bool needs_reset = false;

 private:
  struct QueueState {
    uint16_t avail_idx = 0;
    uint16_t used_seen = 0;
    std::vector<bool> in_use = std::vector<bool>(kMaxQueueSize);
    std::vector<std::vector<uint16_t>> chains = std::vector<std::vector<uint16_t>>(kMaxQueueSize);
    std::vector<std::vector<Buffer>> buffers = std::vector<std::vector<Buffer>>(kMaxQueueSize);
  };

  static GuestMemory make_memory() {
    const RegionSpec spec[] = {{0, kMemoryBytes}};
    return GuestMemory::create(spec).value();
  }
  uint64_t desc_table(size_t q) const { return kRingArea * (q + 1); }
  uint64_t avail_ring(size_t q) const { return desc_table(q) + 16ULL * size_; }
  uint64_t used_ring(size_t q) const { return (avail_ring(q) + 6 + 2ULL * size_ + 4095) & ~uint64_t{4095}; }
  template <class T>
  T read(uint64_t gpa) const {
    return memory_.read_obj<T>(gpa).value();
  }
  template <class T>
  void write(uint64_t gpa, T value) {
    if (!memory_.write_obj(gpa, value).ok()) throw std::runtime_error("FakeDriver: write outside memory");
  }

  GuestMemory memory_;
  uint16_t size_;
  std::vector<QueueState> queues_;
  uint64_t next_data_ = kDataStart;
};

}  // namespace hyper::virtio::testing
