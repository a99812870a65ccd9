// An eventfd: the doorbell between threads, and (through KVM irqfd) an interrupt line.
#pragma once

#include <sys/eventfd.h>

#include <cstdint>

#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper {

class EventFd {
 public:
  static Result<EventFd> create(int flags = EFD_CLOEXEC | EFD_NONBLOCK) {
    const int fd = ::eventfd(0, flags);
    if (fd < 0) return Error::from_errno("eventfd");
    return EventFd(UniqueFd(fd));
  }
  [[nodiscard]] int fd() const { return fd_.get(); }
  // Async-signal-safe and callable from any thread; a full counter is as good as a write.
  void signal() const {
    const uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(fd_.get(), &one, sizeof one);
  }
  // Returns the accumulated count (0 when nothing was signalled).
  uint64_t drain() const {
    uint64_t value = 0;
    return ::read(fd_.get(), &value, sizeof value) == sizeof value ? value : 0;
  }

 private:
  explicit EventFd(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace hyper
