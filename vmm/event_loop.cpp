#include "vmm/event_loop.hpp"

namespace hyper {

Result<EventLoop> EventLoop::create() {
  const int fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) return Error::from_errno("epoll_create1");
  return EventLoop(UniqueFd(fd));
}

EventLoop::EventLoop(EventLoop&& other) noexcept
    : epoll_(std::move(other.epoll_)),
      next_token_(other.next_token_),
      by_fd_(std::move(other.by_fd_)),
      by_token_(std::move(other.by_token_)) {}

Status EventLoop::add(int fd, std::function<void()> on_readable) {
  return add(fd, kReadable, [cb = std::move(on_readable)](uint32_t) { cb(); });
}

Status EventLoop::add(int fd, uint32_t events, Handler handler) {
  std::lock_guard lock(mutex_);
  if (by_fd_.count(fd)) return make_error(Errc::invalid_argument, "fd " + std::to_string(fd) + " is already watched");
  const uint64_t token = next_token_++;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = token;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) < 0) return Error::from_errno("epoll_ctl(ADD)");
  auto shared = std::make_shared<Handler>(std::move(handler));
  by_fd_[fd] = {token, shared};
  by_token_[token] = std::move(shared);
  return {};
}

Status EventLoop::modify(int fd, uint32_t events) {
  std::lock_guard lock(mutex_);
  auto it = by_fd_.find(fd);
  if (it == by_fd_.end()) return make_error(Errc::invalid_argument, "fd " + std::to_string(fd) + " is not watched");
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = it->second.token;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &ev) < 0) return Error::from_errno("epoll_ctl(MOD)");
  return {};
}

void EventLoop::remove(int fd) {
  std::lock_guard lock(mutex_);
  auto it = by_fd_.find(fd);
  if (it == by_fd_.end()) return;
  (void)::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  by_token_.erase(it->second.token);
  by_fd_.erase(it);
}

std::shared_ptr<EventLoop::Handler> EventLoop::handler_for(uint64_t token) {
  std::lock_guard lock(mutex_);
  auto it = by_token_.find(token);
  return it == by_token_.end() ? nullptr : it->second;
}

Status EventLoop::run_until(const std::function<bool()>& done, int timeout_ms) {
  epoll_event events[32];
  while (!done()) {
    const int n = ::epoll_wait(epoll_.get(), events, 32, timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno("epoll_wait");
    if (n == 0) return {};
    for (int i = 0; i < n; ++i) {
      // Looked up per event: an earlier handler of this batch may have removed it.
      if (auto handler = handler_for(events[i].data.u64)) (*handler)(events[i].events);
    }
  }
  return {};
}

}  // namespace hyper
