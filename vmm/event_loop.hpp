// A small epoll loop: callbacks run on the thread that calls run_until(). Device work and
// the machine's housekeeping live here, never on vCPU threads. Registration is
// thread-safe, and a handler may remove itself (or any other) while it runs.
#pragma once

#include <sys/epoll.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>

#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper {

class EventLoop {
 public:
  static constexpr uint32_t kReadable = EPOLLIN;
  static constexpr uint32_t kWritable = EPOLLOUT;
  // Receives the epoll events that fired (EPOLLHUP/EPOLLERR are always reported).
  using Handler = std::function<void(uint32_t events)>;

  static Result<EventLoop> create();
  EventLoop(EventLoop&& other) noexcept;

  // Calls `on_readable` whenever `fd` is readable. The callback must consume the event.
  [[nodiscard]] Status add(int fd, std::function<void()> on_readable);
  // Calls `handler` whenever one of `events` (level-triggered) fires on `fd`.
  [[nodiscard]] Status add(int fd, uint32_t events, Handler handler);
  // Changes which events `fd` is watched for.
  [[nodiscard]] Status modify(int fd, uint32_t events);
  // Stops watching `fd` (before it is closed); no handler call for it follows.
  void remove(int fd);
  // Dispatches events until `done()` is true; a negative timeout waits forever.
  [[nodiscard]] Status run_until(const std::function<bool()>& done, int timeout_ms = -1);

 private:
  struct Entry {
    uint64_t token;  // what epoll hands back: fd numbers are reused, tokens never
    std::shared_ptr<Handler> handler;
  };
  explicit EventLoop(UniqueFd epoll) : epoll_(std::move(epoll)) {}
  std::shared_ptr<Handler> handler_for(uint64_t token);

  UniqueFd epoll_;
  std::mutex mutex_;
  uint64_t next_token_ = 1;
  std::map<int, Entry> by_fd_;
  std::map<uint64_t, std::shared_ptr<Handler>> by_token_;
};

}  // namespace hyper
