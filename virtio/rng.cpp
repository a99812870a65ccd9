#include "virtio/rng.hpp"

#include <sys/random.h>

#include <algorithm>
#include <cstring>

namespace hyper::virtio {
namespace {

// Fills `out` from the host's CSPRNG; returns the bytes written.
size_t fill_random(std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::getrandom(out.data() + done, out.size() - done, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

}  // namespace

void Rng::read_config(uint64_t, std::span<uint8_t> data) const { std::memset(data.data(), 0, data.size()); }

Status Rng::activate(Activation activation) {
  if (activation.queues.size() != 1) return make_error(Errc::invalid_argument, "virtio-rng: expected one queue");
  std::lock_guard lock(mutex_);
  active_ = std::move(activation);
  return {};
}

void Rng::reset() {
  std::lock_guard lock(mutex_);
  active_.reset();
}

void Rng::queue_notify(uint32_t index) {
  std::lock_guard lock(mutex_);
  if (!active_ || index != 0) return;  // a kick before DRIVER_OK or after a reset
  const GuestMemory& memory = *active_->memory;
  const bool ok = serve_queue(*active_, 0, [&](const DescriptorChain& chain) {
    uint32_t written = 0;
    for (const Buffer& b : chain.writable) {
      const uint32_t want = std::min(b.len, kMaxBytesPerRequest - written);
      auto dst = memory.slice(b.gpa, want);
      if (!dst) break;  // cannot happen: the walker checked every buffer
      written += static_cast<uint32_t>(fill_random(*dst));
      if (written == kMaxBytesPerRequest) break;
    }
    bytes_served_ += written;
    return written;
  });
  if (!ok) {
    ++broken_;
    active_.reset();
  }
}

}  // namespace hyper::virtio
