// The completion path of virtio-blk under real concurrency: the device serves its queue on
// an I/O thread of its own (as the machine runs it), while the driver plays Linux's
// split-ring protocol with event-idx on another thread: kick only when avail_event asks
// for it, disable callbacks while draining, re-enable them and look once more. A kick
// or a completion interrupt lost anywhere between the two leaves the driver waiting with
// requests in flight, which this test reports with both sides' view of the ring.
#include <doctest/doctest.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>

#include "tests/unit/blk_disk.hpp"
#include "tests/unit/fake_driver.hpp"
#include "virtio/blk.hpp"
#include "virtio/mmio.hpp"

using namespace hyper;
using namespace hyper::virtio;
using hyper::virtio::testing::Disk;
using hyper::virtio::testing::FakeDriver;

namespace {

constexpr uint64_t kSectors = 64;  // Disk's default
constexpr uint32_t kRegQueueSel = 0x030, kRegQueueNum = 0x038, kRegQueueReady = 0x044, kRegInterruptStatus = 0x060,
                   kRegInterruptAck = 0x064, kRegStatus = 0x070, kRegDriverFeaturesSel = 0x024,
                   kRegDriverFeatures = 0x020;
constexpr int kLostAfterMs = 5000;

// vring_need_event (virtio 1.x, 2.7.10): whether moving an index from `old` to `now`
// crosses the event index the other side published.
bool need_event(uint16_t event, uint16_t now, uint16_t old) {
  return static_cast<uint16_t>(now - event - 1) < static_cast<uint16_t>(now - old);
}

// The device side as Machine runs it: an I/O thread that wakes on the queue's kick
// eventfd (the ioeventfd) and serves the queue.
class IoThread {
 public:
  IoThread(std::shared_ptr<Blk> blk, const EventFd& kick) : blk_(std::move(blk)), kick_(kick) {
    thread_ = std::thread([this] { run(); });
  }
  ~IoThread() {
    stopping_ = true;
    kick_.signal();
    thread_.join();
  }

 private:
  void run() {
    while (!stopping_) {
      pollfd p{kick_.fd(), POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      (void)kick_.drain();
      blk_->queue_notify(0);
    }
  }
  std::shared_ptr<Blk> blk_;
  const EventFd& kick_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// Linux's virtio-mmio + virtio_blk driver, reduced to what the completion path does.
struct Driver {
  Driver(std::shared_ptr<Blk> blk, uint16_t queue_size)
      : fake(1, queue_size),
        irq(EventFd::create().value()),
        irq_fd(irq.fd()),
        kick(EventFd::create().value()),
        transport(blk, fake.memory(), std::move(irq)) {}

  void wr(uint64_t reg, uint32_t v) { transport.write(0xd0000000, reg, {reinterpret_cast<const uint8_t*>(&v), 4}); }
  uint32_t rd(uint64_t reg) {
    uint32_t v = 0;
    transport.read(0xd0000000, reg, {reinterpret_cast<uint8_t*>(&v), 4});
    return v;
  }

  void bring_up() {
    const uint64_t features = kFeatureVersion1 | kFeatureRingEventIdx;
    wr(kRegStatus, kStatusAcknowledge);
    wr(kRegStatus, kStatusAcknowledge | kStatusDriver);
    wr(kRegDriverFeaturesSel, 0);
    wr(kRegDriverFeatures, static_cast<uint32_t>(features));
    wr(kRegDriverFeaturesSel, 1);
    wr(kRegDriverFeatures, static_cast<uint32_t>(features >> 32));
    wr(kRegStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
    const QueueLayout l = fake.layout(0, true);
    wr(kRegQueueSel, 0);
    wr(kRegQueueNum, l.size);
    const uint64_t addrs[3] = {l.desc_table, l.avail_ring, l.used_ring};
    for (uint32_t i = 0; i < 3; ++i) {
      wr(0x080 + 0x10 * i, static_cast<uint32_t>(addrs[i]));
      wr(0x084 + 0x10 * i, static_cast<uint32_t>(addrs[i] >> 32));
    }
    wr(kRegQueueReady, 1);
    wr(kRegStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk);
    REQUIRE(rd(kRegStatus) == (kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk));
  }

  // A 512-byte read of `sector`: header, data buffer, status byte.
  void post_read(uint64_t sector) {
    std::string header(16, '\0');
    header[8] = static_cast<char>(sector);  // type 0 (IN), sector little-endian
    fake.post(0, {header}, {512, 1});
    ++added_since_kick;
    ++in_flight;
  }

  // virtqueue_kick_prepare + notify: the index store must be visible before avail_event
  // is read, or both sides can decide that the other will act.
  void kick_if_asked() {
    if (added_since_kick == 0) return;
    std::atomic_thread_fence(std::memory_order_seq_cst);
    const uint16_t now = fake.avail_idx(0);
    if (need_event(fake.avail_event(0), now, static_cast<uint16_t>(now - added_since_kick))) {
      kick.signal();
      ++kicks;
    }
    added_since_kick = 0;
  }

  // vm_interrupt, then virtblk_done: acknowledge, then drain with callbacks disabled
  // (used_event parked), re-enable at the last seen index and drain again if the device
  // added more in between.
  // Returns false when `timeout_ms` passed without an interrupt.
  bool take_interrupt(int timeout_ms) {
    pollfd p{irq_fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return false;
    uint64_t count;
    (void)!::read(irq_fd, &count, sizeof count);
    ++interrupts;
    const uint32_t status = rd(kRegInterruptStatus);
    wr(kRegInterruptAck, status);
    if (!(status & 1)) return true;  // a stale edge: the handler already saw its work
    do {
      fake.set_used_event(0, 0);  // what Linux writes to disable callbacks
      for (const auto& used : fake.take_used(0)) {
        CHECK(used.len == 513);
        CHECK(used.data.size() == 513);
        CHECK(used.data.back() == '\0');  // VIRTIO_BLK_S_OK
        --in_flight;
        ++completed;
      }
      fake.set_used_event(0, fake.used_seen(0));
      std::atomic_thread_fence(std::memory_order_seq_cst);
    } while (fake.has_used(0));
    return true;
  }

  FakeDriver fake;
  EventFd irq;
  int irq_fd;
  EventFd kick;
  MmioTransport transport;
  uint32_t added_since_kick = 0;
  uint32_t in_flight = 0;
  uint64_t completed = 0, kicks = 0, interrupts = 0;
};

}  // namespace

TEST_CASE("virtio-blk: with event-idx, no kick and no completion interrupt is lost between driver and I/O thread") {
  Disk disk;
  const auto& blk = disk.blk;
  for (const uint16_t queue_size : {uint16_t{8}, uint16_t{64}}) {
    CAPTURE(queue_size);
    Driver driver(blk, queue_size);
    driver.bring_up();
    IoThread io(blk, driver.kick);
    std::mt19937 random(queue_size);
    const uint32_t max_depth = queue_size / 3;  // three descriptors per request
    constexpr uint64_t kRequests = 40'000;
    uint64_t issued = 0;
    bool lost = false;
    while (driver.completed < kRequests && !lost) {
      // Like several submitters and the interrupt handler on other CPUs: requests go in
      // while others are being served, in bursts, and completions are looked for at any
      // time; only with nothing more to submit does the driver sleep on the interrupt.
      const bool can_submit = issued < kRequests && driver.in_flight < max_depth;
      if (can_submit && random() % 2) {
        const uint32_t burst = 1 + random() % max_depth;
        for (uint32_t i = 0; i < burst && issued < kRequests && driver.in_flight < max_depth; ++i)
          driver.post_read(issued++ % kSectors);
        driver.kick_if_asked();
      } else if (driver.in_flight > 0) {
        const bool must_wait = !can_submit || random() % 4 == 0;
        lost = !driver.take_interrupt(must_wait ? kLostAfterMs : 0) && must_wait;
      }
    }
    INFO("driver: ", driver.completed, " completed, ", driver.in_flight, " in flight, ", driver.kicks, " kicks, ",
         driver.interrupts, " interrupts; device: ", driver.transport.describe());
    CHECK_FALSE(lost);
    CHECK(driver.completed == kRequests);
    CHECK(blk->rejected_requests() == 0);
    blk->reset();
  }
}
