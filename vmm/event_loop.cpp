#include "vmm/event_loop.hpp"

#include <sys/epoll.h>

namespace hyper {

Result<EventLoop> EventLoop::create() {
  const int fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) return Error::from_errno("epoll_create1");
  return EventLoop(UniqueFd(fd));
}

Status EventLoop::add(int fd, std::function<void()> on_readable) {
  auto handler = std::make_unique<std::function<void()>>(std::move(on_readable));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = handler.get();
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) < 0) return Error::from_errno("epoll_ctl(ADD)");
  handlers_[fd] = std::move(handler);
  return {};
}

Status EventLoop::run_until(const std::function<bool()>& done, int timeout_ms) {
  epoll_event events[16];
  while (!done()) {
    const int n = ::epoll_wait(epoll_.get(), events, 16, timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno("epoll_wait");
    if (n == 0) return {};
    for (int i = 0; i < n; ++i) (*static_cast<std::function<void()>*>(events[i].data.ptr))();
  }
  return {};
}

}  // namespace hyper
