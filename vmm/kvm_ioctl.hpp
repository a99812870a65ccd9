// The ioctl calls of vmm/kvm*.cpp: errors named after the operation, EINTR retried.
#pragma once

#include <sys/ioctl.h>

#include <cerrno>
#include <cstdint>
#include <memory>

#include "vmm/result.hpp"

namespace hyper::kvm_ioctl {

// ioctl with a request-number argument of any pointer or integer type; retries EINTR
// except for KVM_RUN, whose EINTR is meaningful.
template <class Arg>
Result<int> checked_ioctl(int fd, unsigned long request, Arg arg, const char* what) {
  int rc;
  do {
    rc = ::ioctl(fd, request, arg);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) return Error::from_errno(what);
  return rc;
}

template <class Arg>
Status ioctl_status(int fd, unsigned long request, Arg arg, const char* what) {
  auto rc = checked_ioctl(fd, request, arg, what);
  if (!rc) return std::move(rc).error();
  return {};
}

template <class T>
Result<T> get_state(int fd, unsigned long request, const char* what) {
  T value{};
  HYPER_CHECK(ioctl_status(fd, request, &value, what));
  return value;
}

// A zeroed buffer for ioctls that take a header followed by a flexible array.
template <class Header, class Entry>
struct FlexBuffer {
  explicit FlexBuffer(size_t n)
      : storage(std::make_unique<uint64_t[]>((sizeof(Header) + n * sizeof(Entry) + 7) / 8)) {}
  Header* header() { return reinterpret_cast<Header*>(storage.get()); }
  Entry* entries() { return reinterpret_cast<Entry*>(reinterpret_cast<uint8_t*>(storage.get()) + sizeof(Header)); }
  std::unique_ptr<uint64_t[]> storage;
};

}  // namespace hyper::kvm_ioctl
