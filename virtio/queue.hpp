// A split virtqueue (virtio 1.x, section 2.7) read and written through GuestMemory.
// Everything in the rings is the guest's and hostile: indices, descriptor addresses,
// lengths, flags and chains are validated, chains are bounded by the queue size (or the
// indirect table's), and an impossible ring state is an error the device turns into
// NEEDS_RESET, never a crash, a hang or an unbounded allocation.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "vmm/guest_memory.hpp"
#include "vmm/result.hpp"

namespace hyper::virtio {

inline constexpr uint16_t kMaxQueueSize = 1024;

struct QueueLayout {
  uint16_t size = 0;  // a power of two, 1..kMaxQueueSize
  uint64_t desc_table = 0;
  uint64_t avail_ring = 0;
  uint64_t used_ring = 0;
  bool event_idx = false;  // VIRTIO_F_EVENT_IDX negotiated
};

// One guest buffer of a chain: device-readable ones come before device-writable ones.
struct Buffer {
  uint64_t gpa;
  uint32_t len;
};

struct DescriptorChain {
  uint16_t head;  // the id to return in the used ring
  std::vector<Buffer> readable;
  std::vector<Buffer> writable;
  [[nodiscard]] uint64_t readable_bytes() const;
  [[nodiscard]] uint64_t writable_bytes() const;
};

// Where the device is in a ring: all a snapshot needs besides the guest's memory.
struct QueuePosition {
  uint16_t next_avail = 0;
  uint16_t next_used = 0;
  uint16_t last_notified = 0;
};

class Queue {
 public:
  // Fails when the layout is impossible (size, alignment, rings outside guest memory).
  static Result<Queue> create(const GuestMemory& memory, const QueueLayout& layout);

  // The next chain the driver made available, or nullopt when there is none. With
  // event-idx, the driver is asked to kick only once the ring has been found empty.
  [[nodiscard]] Result<std::optional<DescriptorChain>> pop();
  // Returns chain `head` to the driver, `written` bytes filled in.
  [[nodiscard]] Status push_used(uint16_t head, uint32_t written);
  // Whether the driver wants an interrupt for what was pushed since the last call.
  [[nodiscard]] Result<bool> should_notify();

  [[nodiscard]] QueuePosition position() const { return {next_avail_, next_used_, last_notified_}; }
  // A restored device picks up where the snapshot left it.
  void set_position(const QueuePosition& p) {
    next_avail_ = p.next_avail;
    next_used_ = p.next_used;
    last_notified_ = p.last_notified;
  }

  [[nodiscard]] uint16_t size() const { return layout_.size; }
  // Where the rings are: a device served by another process (vhost-user) hands them over.
  [[nodiscard]] const QueueLayout& layout() const { return layout_; }
  // Both sides' view of the rings, for diagnosing a stalled guest: our indices next to
  // the driver's, and the event-idx fields each side last published.
  [[nodiscard]] std::string describe() const;

 private:
  Queue(const GuestMemory& memory, const QueueLayout& layout) : memory_(&memory), layout_(layout) {}
  [[nodiscard]] Result<DescriptorChain> walk(uint16_t head) const;
  // Chains the driver has made available that we have not popped.
  [[nodiscard]] Result<uint16_t> pending() const;

  const GuestMemory* memory_;
  QueueLayout layout_;
  uint16_t next_avail_ = 0;     // the driver's avail index we have consumed up to
  uint16_t next_used_ = 0;      // our used index
  uint16_t last_notified_ = 0;  // used index at the last should_notify()
};

}  // namespace hyper::virtio
