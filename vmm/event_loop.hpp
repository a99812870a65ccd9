// A small epoll loop: callbacks run on the thread that calls run(). Device work and
// the machine's housekeeping live here, never on vCPU threads.
#pragma once

#include <functional>
#include <map>
#include <memory>

#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper {

class EventLoop {
 public:
  static Result<EventLoop> create();

  // Calls `on_readable` whenever `fd` is readable. The callback must consume the event.
  [[nodiscard]] Status add(int fd, std::function<void()> on_readable);
  // Dispatches events until `done()` is true; a negative timeout waits forever.
  [[nodiscard]] Status run_until(const std::function<bool()>& done, int timeout_ms = -1);

 private:
  explicit EventLoop(UniqueFd epoll) : epoll_(std::move(epoll)) {}
  UniqueFd epoll_;
  // unique_ptr keeps each callback's address stable: epoll stores a pointer to it.
  std::map<int, std::unique_ptr<std::function<void()>>> handlers_;
};

}  // namespace hyper
