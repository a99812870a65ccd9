#include "virtio/queue.hpp"

#include <atomic>
#include <string>

namespace hyper::virtio {
namespace {

struct RawDescriptor {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(RawDescriptor) == 16);

constexpr uint16_t kDescNext = 1, kDescWrite = 2, kDescIndirect = 4;
constexpr uint16_t kAvailNoInterrupt = 1;
constexpr uint64_t kRingHeader = 4;  // flags + idx
constexpr uint64_t kUsedElemSize = 8;

Error broken(const std::string& why) { return make_error(Errc::invalid_argument, "virtqueue: " + why); }

}  // namespace

uint64_t DescriptorChain::readable_bytes() const {
  uint64_t total = 0;
  for (const auto& b : readable) total += b.len;
  return total;
}

uint64_t DescriptorChain::writable_bytes() const {
  uint64_t total = 0;
  for (const auto& b : writable) total += b.len;
  return total;
}

Result<Queue> Queue::create(const GuestMemory& memory, const QueueLayout& layout) {
  const uint64_t n = layout.size;
  if (n == 0 || n > kMaxQueueSize || (n & (n - 1)))
    return broken("size " + std::to_string(n) + " is not a power of two up to " + std::to_string(kMaxQueueSize));
  if (layout.desc_table % 16 || layout.avail_ring % 2 || layout.used_ring % 4)
    return broken("ring addresses are misaligned");
  if (!memory.contains(layout.desc_table, n * sizeof(RawDescriptor)) ||
      !memory.contains(layout.avail_ring, kRingHeader + 2 * n + 2) ||
      !memory.contains(layout.used_ring, kRingHeader + kUsedElemSize * n + 2))
    return broken("rings lie outside guest memory");
  return Queue(memory, layout);
}

Result<DescriptorChain> Queue::walk(uint16_t head) const {
  DescriptorChain chain{head, {}, {}};
  uint64_t table = layout_.desc_table;
  uint32_t table_size = layout_.size;
  bool in_indirect = false;
  uint32_t index = head;
  // A chain visits each entry of its table at most once: a longer one contains a loop.
  uint32_t visited = 0;
  for (;;) {
    if (visited++ >= table_size) return broken("descriptor chain is longer than its table (a loop?)");
    if (index >= table_size) return broken("descriptor index " + std::to_string(index) + " is out of range");
    const auto d = HYPER_TRY(memory_->read_obj<RawDescriptor>(table + uint64_t{index} * sizeof(RawDescriptor)));
    if (d.flags & kDescIndirect) {
      if (in_indirect) return broken("an indirect table points to another one");
      if (visited != 1 || (d.flags & kDescNext)) return broken("an indirect descriptor must stand alone");
      if (d.len == 0 || d.len % sizeof(RawDescriptor) || d.len / sizeof(RawDescriptor) > kMaxQueueSize)
        return broken("indirect table length " + std::to_string(d.len) + " is invalid");
      if (!memory_->contains(d.addr, d.len)) return broken("indirect table lies outside guest memory");
      table = d.addr;
      table_size = d.len / sizeof(RawDescriptor);
      in_indirect = true;
      index = 0;
      visited = 0;
      continue;
    }
    if (!memory_->contains(d.addr, d.len)) return broken("a buffer lies outside guest memory");
    if (d.flags & kDescWrite) {
      chain.writable.push_back({d.addr, d.len});
    } else {
      if (!chain.writable.empty()) return broken("a device-readable buffer follows a writable one");
      chain.readable.push_back({d.addr, d.len});
    }
    if (!(d.flags & kDescNext)) return chain;
    index = d.next;
  }
}

Result<uint16_t> Queue::pending() const {
  const uint16_t avail_idx = HYPER_TRY(memory_->read_obj<uint16_t>(layout_.avail_ring + 2));
  std::atomic_thread_fence(std::memory_order_acquire);  // ring entries after the index
  return static_cast<uint16_t>(avail_idx - next_avail_);
}

Result<std::optional<DescriptorChain>> Queue::pop() {
  uint16_t pending = HYPER_TRY(this->pending());
  if (pending == 0 && layout_.event_idx) {
    // Only now ask for a kick at the next buffer (avail_event): while we are still
    // consuming, the driver need not exit to tell us. Then look again, since the driver
    // may have added a buffer before it could see the new avail_event.
    HYPER_CHECK(memory_->write_obj(layout_.used_ring + kRingHeader + kUsedElemSize * layout_.size, next_avail_));
    std::atomic_thread_fence(std::memory_order_seq_cst);
    pending = HYPER_TRY(this->pending());
  }
  if (pending == 0) return std::optional<DescriptorChain>();
  if (pending > layout_.size)
    return broken("available index jumped by " + std::to_string(pending) + " on a queue of " +
                  std::to_string(layout_.size));
  const uint64_t slot = layout_.avail_ring + kRingHeader + 2 * static_cast<uint64_t>(next_avail_ % layout_.size);
  const uint16_t head = HYPER_TRY(memory_->read_obj<uint16_t>(slot));
  auto chain = HYPER_TRY(walk(head));
  ++next_avail_;
  return std::optional<DescriptorChain>(std::move(chain));
}

Status Queue::push_used(uint16_t head, uint32_t written) {
  if (head >= layout_.size) return broken("used id " + std::to_string(head) + " is out of range");
  const uint64_t elem = layout_.used_ring + kRingHeader + kUsedElemSize * static_cast<uint64_t>(next_used_ % layout_.size);
  HYPER_CHECK(memory_->write_obj(elem, uint32_t{head}));
  HYPER_CHECK(memory_->write_obj(elem + 4, written));
  std::atomic_thread_fence(std::memory_order_release);  // the element before the index
  ++next_used_;
  return memory_->write_obj(layout_.used_ring + 2, next_used_);
}

std::string Queue::describe() const {
  const auto guest = [&](uint64_t gpa) {
    const auto value = memory_->read_obj<uint16_t>(gpa);
    return value ? std::to_string(*value) : std::string("?");
  };
  const uint64_t n = layout_.size;
  std::string text = "size " + std::to_string(n) + ", avail idx " + guest(layout_.avail_ring + 2) + " (consumed " +
                     std::to_string(next_avail_) + "), used idx " + std::to_string(next_used_) + " (in guest memory " +
                     guest(layout_.used_ring + 2) + "), interrupt checked at used " + std::to_string(last_notified_);
  if (layout_.event_idx) {
    text += ", used_event " + guest(layout_.avail_ring + kRingHeader + 2 * n) + ", avail_event " +
            guest(layout_.used_ring + kRingHeader + kUsedElemSize * n);
  } else {
    text += ", avail flags " + guest(layout_.avail_ring);
  }
  return text;
}

Result<bool> Queue::should_notify() {
  std::atomic_thread_fence(std::memory_order_seq_cst);  // our used idx before the driver's event
  const uint16_t old = last_notified_, now = next_used_;
  last_notified_ = now;
  if (old == now) return false;
  if (layout_.event_idx) {
    const uint64_t used_event_gpa = layout_.avail_ring + kRingHeader + 2 * uint64_t{layout_.size};
    const uint16_t used_event = HYPER_TRY(memory_->read_obj<uint16_t>(used_event_gpa));
    // Notify when used_event lies in (old, now]: the driver asked to hear about it.
    return static_cast<uint16_t>(now - used_event - 1) < static_cast<uint16_t>(now - old);
  }
  const uint16_t flags = HYPER_TRY(memory_->read_obj<uint16_t>(layout_.avail_ring));
  return !(flags & kAvailNoInterrupt);
}

}  // namespace hyper::virtio
