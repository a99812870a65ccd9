#include "virtio/net.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "virtio/chain_io.hpp"
#include "virtio/net_features.hpp"
#include "virtio/tap.hpp"

namespace hyper::virtio {
namespace {

constexpr size_t kNumBuffersOffset = 10;  // le16 in virtio_net_hdr_v1
constexpr int kFramesPerWake = 256;       // then let the loop serve others
constexpr uint64_t kOffered = kFeatureVersion1 | kFeatureRingEventIdx | kFeatureRingIndirectDesc | net::kCsum |
                              net::kGuestCsum | net::kMac | net::kGuestTso4 | net::kGuestTso6 | net::kGuestEcn |
                              net::kHostTso4 | net::kHostTso6 | net::kHostEcn | net::kMrgRxbuf | net::kStatus;

}  // namespace

MacAddress random_mac() {
  MacAddress mac{};
  if (::getrandom(mac.data(), mac.size(), 0) != static_cast<ssize_t>(mac.size())) mac = {0, 0x16, 0x3e, 0, 0, 1};
  mac[0] = static_cast<uint8_t>((mac[0] & 0xfc) | 0x02);  // unicast, locally administered
  return mac;
}

Result<std::shared_ptr<Net>> Net::open(const NetOptions& options) {
  UniqueFd fd;
  if (options.tap_fd >= 0) {
    fd = UniqueFd(::fcntl(options.tap_fd, F_DUPFD_CLOEXEC, 0));
    if (!fd.valid()) return Error::from_errno("tap " + options.tap + ": duplicating fd " + std::to_string(options.tap_fd));
  } else {
    fd = HYPER_TRY(open_tap(options.tap));
  }
  return over_fd(std::move(fd), options.mac.value_or(random_mac()), true);
}

std::shared_ptr<Net> Net::over_fd(UniqueFd packets, MacAddress mac, bool is_tap) {
  return std::shared_ptr<Net>(new Net(std::move(packets), mac, is_tap));
}

Net::Net(UniqueFd fd, MacAddress mac, bool is_tap)
    : fd_(std::move(fd)), mac_(mac), is_tap_(is_tap), frame_(kVirtioNetHeaderSize + kMaxFrame) {}

uint64_t Net::device_features() const { return kOffered; }

void Net::read_config(uint64_t offset, std::span<uint8_t> data) const {
  // mac[6], status (le16); max_virtqueue_pairs and later fields need features we do not offer.
  uint8_t config[8];
  std::memcpy(config, mac_.data(), 6);
  config[6] = static_cast<uint8_t>(net::kStatusLinkUp);
  config[7] = 0;
  read_config_window(config, offset, data);
}

Status Net::activate(Activation activation) {
  if (is_tap_) HYPER_CHECK(set_tap_offloads(fd_.get(), activation.features));
  HYPER_CHECK(slot_.set(std::move(activation), 2, "virtio-net"));
  update_watch([this] { active_ = true; });
  return {};
}

void Net::reset() {
  slot_.clear();
  frame_len_ = frame_done_ = 0;  // the loop thread cannot be inside receive(): the slot is empty
  held_.clear();
  held_len_.clear();
  update_watch([this] {
    active_ = false;
    stalled_ = false;
  });
}

Status Net::attach(EventLoop& loop) {
  std::lock_guard lock(watch_mutex_);
  const bool want = active_ && !stalled_;
  HYPER_CHECK(loop.add(fd_.get(), want ? EventLoop::kReadable : 0, [this](uint32_t) { on_backend_readable(); }));
  loop_ = &loop;
  watching_ = want;
  return {};
}

void Net::on_backend_readable() {
  bool ran = false, stalled = false;
  slot_.run([&](Activation& active) {
    ran = true;
    return receive(active, stalled);
  });
  if (ran) update_watch([&] { stalled_ = stalled; });
}

void Net::queue_notify(uint32_t index) {
  if (index == 0) {  // new receive buffers: a stalled frame can go on
    update_watch([this] { stalled_ = false; });
    on_backend_readable();
  } else if (index == 1) {
    slot_.run([&](Activation& active) { return transmit(active); });
  }
}

template <class Change>
void Net::update_watch(Change&& change) {
  std::lock_guard lock(watch_mutex_);
  change();
  const bool want = active_ && !stalled_;
  if (loop_ && want != watching_) {
    if (loop_->modify(fd_.get(), want ? EventLoop::kReadable : 0)) watching_ = want;
  }
}

Net::Stats Net::stats() const { return {rx_frames_.load(), tx_frames_.load(), rx_dropped_.load(), tx_dropped_.load()}; }

bool Net::transmit(Activation& active) {
  const GuestMemory& memory = *active.memory;
  return serve_queue(active, 1, [&](const DescriptorChain& chain) -> uint32_t {
    const uint64_t bytes = chain.readable_bytes();
    if (bytes < kVirtioNetHeaderSize || bytes > kVirtioNetHeaderSize + kMaxFrame) {
      ++tx_dropped_;
      return 0;
    }
    iov_.clear();
    for (const Buffer& b : chain.readable) {
      auto piece = memory.slice(b.gpa, b.len);
      if (!piece) {
        ++tx_dropped_;
        return 0;
      }
      iov_.push_back({piece->data(), piece->size()});
    }
    const ssize_t n = ::writev(fd_.get(), iov_.data(), static_cast<int>(iov_.size()));
    if (n == static_cast<ssize_t>(bytes)) {
      ++tx_frames_;
    } else {
      ++tx_dropped_;  // a full or gone host queue drops the frame, as a NIC would
    }
    return 0;
  });
}

// Reads the next frame from the backend into frame_; false when there is none.
bool Net::read_frame() {
  for (;;) {
    const ssize_t n = ::read(fd_.get(), frame_.data(), frame_.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;  // EAGAIN: drained; other errors: the level-triggered loop retries
    if (n <= kVirtioNetHeaderSize) {
      ++rx_dropped_;
      if (n == 0) return false;  // a closed socket backend
      continue;
    }
    frame_len_ = static_cast<size_t>(n);
    frame_done_ = 0;
    return true;
  }
}

bool Net::receive(Activation& active, bool& stalled) {
  stalled = false;
  bool healthy = true;
  for (int frames = 0; frames < kFramesPerWake; ++frames) {
    if (frame_len_ == 0 && !read_frame()) break;
    const Delivery delivery = deliver_frame(active);
    if (delivery == Delivery::broken) healthy = false;
    if (delivery != Delivery::done) {
      stalled = delivery == Delivery::stalled;
      break;
    }
  }
  notify_if_wanted(active, active.queues[0]);
  return healthy;
}

// Copies frame_ into as many receive chains as it takes (one without MRG_RXBUF), then
// returns them used. Without enough chains the frame waits, its filled chains held.
Net::Delivery Net::deliver_frame(Activation& active) {
  const GuestMemory& memory = *active.memory;
  Queue& rx = active.queues[0];
  const bool mergeable = active.features & net::kMrgRxbuf;
  while (frame_done_ < frame_len_) {
    auto popped = rx.pop();
    if (!popped) return Delivery::broken;
    if (!popped->has_value()) return Delivery::stalled;
    DescriptorChain chain = std::move(**popped);
    const uint64_t room = chain.writable_bytes();
    const size_t n = static_cast<size_t>(std::min<uint64_t>(room, frame_len_ - frame_done_));
    const bool too_small = held_.empty() ? room < kVirtioNetHeaderSize : !mergeable;
    if (too_small || !copy_to_buffers(memory, chain.writable, 0, {frame_.data() + frame_done_, n})) {
      held_.push_back(std::move(chain));
      held_len_.push_back(0);
      break;  // the driver counts a zero-length buffer as a receive error
    }
    held_.push_back(std::move(chain));
    held_len_.push_back(static_cast<uint32_t>(n));
    frame_done_ += n;
    if (!mergeable && frame_done_ < frame_len_) {
      held_len_.back() = 0;  // the frame does not fit one buffer: drop it
      break;
    }
  }
  const bool whole = frame_done_ == frame_len_ && held_len_.back() != 0;
  if (whole) {
    const auto count = static_cast<uint16_t>(held_.size());
    (void)copy_to_buffers(memory, held_.front().writable, kNumBuffersOffset,
                          {reinterpret_cast<const uint8_t*>(&count), sizeof count});
    ++rx_frames_;
  } else {
    ++rx_dropped_;
  }
  bool healthy = true;
  for (size_t i = 0; i < held_.size(); ++i) {
    // A dropped frame returns all its chains empty.
    healthy = healthy && rx.push_used(held_[i].head, whole ? held_len_[i] : 0).ok();
  }
  held_.clear();
  held_len_.clear();
  frame_len_ = frame_done_ = 0;
  return healthy ? Delivery::done : Delivery::broken;
}

}  // namespace hyper::virtio
