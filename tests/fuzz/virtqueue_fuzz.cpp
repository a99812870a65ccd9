// The guest owns every byte of the rings: any contents must give chains inside guest
// memory, bounded in length, or an error; never a crash, a hang or a huge allocation.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "virtio/queue.hpp"

namespace {
constexpr uint64_t kRam = 64 * 1024;
constexpr uint16_t kQueueSize = 16;

hyper::GuestMemory& memory() {
  static hyper::GuestMemory mem = [] {
    const hyper::RegionSpec spec[] = {{0, kRam}};
    return hyper::GuestMemory::create(spec).value();
  }();
  return mem;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto& mem = memory();
  (void)mem.fill(0, kRam, 0);
  // Descriptors at 0, avail ring at 0x100, used ring at 0x200, indirect tables and
  // buffers anywhere: the input is written from address 0 on.
  (void)mem.write(0, {data, std::min<size_t>(size, kRam)});
  const bool event_idx = size > 0 && (data[0] & 1);
  auto queue = hyper::virtio::Queue::create(mem, {kQueueSize, 0x0, 0x100, 0x200, event_idx});
  if (!queue) std::abort();  // the layout itself is valid
  for (int i = 0; i < 2 * kQueueSize; ++i) {
    auto chain = queue->pop();
    if (!chain || !chain->has_value()) break;
    const auto& c = **chain;
    if (c.readable.size() + c.writable.size() > hyper::virtio::kMaxQueueSize) std::abort();
    for (const auto* list : {&c.readable, &c.writable})
      for (const auto& b : *list)
        if (!mem.contains(b.gpa, b.len)) std::abort();
    if (!queue->push_used(c.head, static_cast<uint32_t>(c.writable_bytes()))) std::abort();
    (void)queue->should_notify();
  }
  return 0;
}
