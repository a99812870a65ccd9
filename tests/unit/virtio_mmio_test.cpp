#include <doctest/doctest.h>

#include <cstring>

#include "virtio/mmio.hpp"

using namespace hyper;
using namespace hyper::virtio;

namespace {

struct FakeDevice : VirtioDevice {
  uint32_t device_type() const override { return 4; }  // rng
  uint64_t device_features() const override { return kFeatureVersion1 | kFeatureRingEventIdx; }
  std::vector<uint16_t> queue_max_sizes() const override { return {256}; }
  void read_config(uint64_t offset, std::span<uint8_t> data) const override {
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(0xa0 + offset + i);
  }
  void write_config(uint64_t, std::span<const uint8_t>) override {}
  Status activate(Activation a) override {
    activations++;
    queues = a.queues.size();
    features = a.features;
    notify_used = a.notify_used;
    return {};
  }
  void queue_notify(uint32_t index) override { notified.push_back(index); }
  void reset() override { resets++; }

  int activations = 0, resets = 0;
  size_t queues = 0;
  uint64_t features = 0;
  std::vector<uint32_t> notified;
  std::function<void()> notify_used;
};

struct Fixture {
  Fixture()
      : memory(make_memory()),
        device(std::make_shared<FakeDevice>()),
        irq(EventFd::create().value()),
        irq_fd(irq.fd()),
        mmio(device, memory, std::move(irq)) {}
  static GuestMemory make_memory() {
    const RegionSpec spec[] = {{0, 0x100000}};
    return GuestMemory::create(spec).value();
  }
  uint32_t rd(uint64_t reg) {
    uint32_t v = 0;
    mmio.read(0xd0000000, reg, {reinterpret_cast<uint8_t*>(&v), 4});
    return v;
  }
  void wr(uint64_t reg, uint32_t v) { mmio.write(0xd0000000, reg, {reinterpret_cast<const uint8_t*>(&v), 4}); }
  uint64_t interrupts() const {
    uint64_t v = 0;
    return ::read(irq_fd, &v, sizeof v) == sizeof v ? v : 0;
  }
  // The Linux driver's sequence up to FEATURES_OK.
  void negotiate(uint64_t features) {
    wr(0x070, kStatusAcknowledge);
    wr(0x070, kStatusAcknowledge | kStatusDriver);
    wr(0x024, 0);
    wr(0x020, static_cast<uint32_t>(features));
    wr(0x024, 1);
    wr(0x020, static_cast<uint32_t>(features >> 32));
    wr(0x070, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
  }
  void setup_queue(uint64_t desc = 0x1000, uint64_t avail = 0x2000, uint64_t used = 0x3000, uint32_t size = 8) {
    wr(0x030, 0);
    wr(0x038, size);
    wr(0x080, static_cast<uint32_t>(desc));
    wr(0x084, static_cast<uint32_t>(desc >> 32));
    wr(0x090, static_cast<uint32_t>(avail));
    wr(0x0a0, static_cast<uint32_t>(used));
    wr(0x044, 1);
  }
  static constexpr uint32_t kAll = kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk;

  GuestMemory memory;
  std::shared_ptr<FakeDevice> device;
  EventFd irq;
  int irq_fd;
  MmioTransport mmio;
};

}  // namespace

TEST_CASE("virtio-mmio: identity registers and the kernel command-line entry") {
  Fixture f;
  CHECK(f.rd(0x000) == 0x74726976);
  CHECK(f.rd(0x004) == 2);
  CHECK(f.rd(0x008) == 4);
  CHECK(f.rd(0x034) == 256);  // QueueNumMax of queue 0
  f.wr(0x030, 1);
  CHECK(f.rd(0x034) == 0);  // no queue 1
  f.wr(0x014, 1);
  CHECK(f.rd(0x010) == 1);  // VERSION_1 is bit 32
  uint8_t config[3];
  f.mmio.read(0xd0000000, 0x102, config);
  CHECK(config[0] == 0xa2);
  CHECK(mmio_cmdline_entry(0xd0000000, 5) == "virtio_mmio.device=4K@0xd0000000:5");
}

TEST_CASE("virtio-mmio: the driver's sequence activates the device, kicks and interrupts flow") {
  Fixture f;
  f.negotiate(kFeatureVersion1 | kFeatureRingEventIdx);
  CHECK(f.rd(0x070) == (kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk));
  f.setup_queue();
  CHECK(f.rd(0x044) == 1);
  f.wr(0x050, 0);  // a kick before DRIVER_OK is not forwarded
  CHECK(f.device->notified.empty());
  f.wr(0x070, Fixture::kAll);
  CHECK(f.rd(0x070) == Fixture::kAll);
  CHECK(f.device->activations == 1);
  CHECK(f.device->queues == 1);
  CHECK(f.device->features == (kFeatureVersion1 | kFeatureRingEventIdx));
  f.wr(0x050, 0);
  f.wr(0x050, 7);  // no such queue
  CHECK(f.device->notified == std::vector<uint32_t>{0});
  f.device->notify_used();
  CHECK(f.interrupts() == 1);
  CHECK(f.rd(0x060) == 1);
  f.wr(0x064, 1);
  CHECK(f.rd(0x060) == 0);
  f.wr(0x070, 0);  // reset
  CHECK(f.device->resets == 1);
  CHECK(f.rd(0x070) == 0);
  CHECK(f.rd(0x044) == 0);
}

TEST_CASE("virtio-mmio: features without VERSION_1 or beyond the offer are not accepted") {
  Fixture legacy;
  legacy.negotiate(kFeatureRingEventIdx);
  CHECK((legacy.rd(0x070) & kStatusFeaturesOk) == 0);
  Fixture greedy;
  greedy.negotiate(kFeatureVersion1 | kFeatureRingIndirectDesc);  // indirect was not offered
  CHECK((greedy.rd(0x070) & kStatusFeaturesOk) == 0);
}

TEST_CASE("virtio-mmio: illegal status transitions and out-of-phase writes are refused") {
  Fixture f;
  f.wr(0x070, kStatusDriver);  // DRIVER without ACKNOWLEDGE
  CHECK(f.rd(0x070) == 0);
  f.wr(0x070, kStatusAcknowledge);
  f.wr(0x070, kStatusAcknowledge | kStatusDriverOk);  // DRIVER_OK before FEATURES_OK
  CHECK(f.rd(0x070) == kStatusAcknowledge);
  f.wr(0x038, 8);  // queue set-up before FEATURES_OK
  f.wr(0x044, 1);
  CHECK(f.rd(0x044) == 0);
  f.wr(0x070, kStatusAcknowledge | kStatusNeedsReset);  // only the device sets NEEDS_RESET
  CHECK(f.rd(0x070) == kStatusAcknowledge);
  f.wr(0x070, kStatusAcknowledge | kStatusDriver);
  f.wr(0x070, kStatusAcknowledge);  // clearing a bit
  CHECK(f.rd(0x070) == (kStatusAcknowledge | kStatusDriver));
  uint16_t half = 1;
  f.mmio.write(0xd0000000, 0x070, {reinterpret_cast<uint8_t*>(&half), 2});  // 16-bit register access
  CHECK(f.rd(0x070) == (kStatusAcknowledge | kStatusDriver));
  CHECK(f.mmio.rejected_writes() >= 6);
  CHECK(f.device->activations == 0);
}

TEST_CASE("virtio-mmio: bad queue sizes are refused; impossible rings put the device in NEEDS_RESET") {
  Fixture f;
  f.negotiate(kFeatureVersion1);
  f.wr(0x038, 6);  // not a power of two
  f.wr(0x038, 512);  // above QueueNumMax
  f.wr(0x044, 1);  // no size yet: stays not ready
  CHECK(f.rd(0x044) == 0);
  f.setup_queue(0xfffff000, 0x2000, 0x3000);  // descriptor table past guest memory
  f.wr(0x070, Fixture::kAll);
  CHECK((f.rd(0x070) & kStatusNeedsReset) != 0);
  CHECK(f.device->activations == 0);
  CHECK(f.rd(0x060) == 2);  // config-change interrupt
  CHECK(f.rd(0x0fc) == 1);  // config generation moved
}
