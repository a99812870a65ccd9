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

Status Rng::activate(Activation activation) { return slot_.set(std::move(activation), 1, "virtio-rng"); }

void Rng::reset() { slot_.clear(); }

void Rng::queue_notify(uint32_t index) {
  if (index != 0) return;
  slot_.run([&](Activation& active) {
    const GuestMemory& memory = *active.memory;
    return serve_queue(active, 0, [&](const DescriptorChain& chain) {
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
  });
}

}  // namespace hyper::virtio
