// Issue 18's window sequence, replayed against the real virtio-mmio transport and
// virtio-rng over guest memory in a buffer (no /dev/kvm): rings outside RAM with size
// 0xffff, then a valid 8-entry ring at 0x300000 whose descriptors loop, leave RAM (one
// with addr_hi 0xffffffff) and have length 0xffffffff, the available index far ahead, a
// notify, then seeded random register traffic of every width. No byte outside the
// rings may change, and a reset must bring the device back. (The e2e twin is
// e2e.hostile.issue18.)
#include <doctest/doctest.h>

#include <cstring>
#include <vector>

#include "virtio/mmio.hpp"
#include "virtio/rng.hpp"

using namespace hyper;
using namespace hyper::virtio;

namespace {

constexpr uint64_t kRam = 8 << 20;
constexpr uint64_t kRings = 0x300000, kRingsEnd = 0x303000;
constexpr uint64_t kOutsideRam = 0x7fff0000;
constexpr uint8_t kCanary = 0xa5;

enum : uint64_t {
  kFeaturesSel = 0x024, kFeatures = 0x020, kQueueSel = 0x030, kQueueNum = 0x038, kQueueReady = 0x044,
  kNotify = 0x050, kStatus = 0x070, kDescLo = 0x080, kDescHi = 0x084, kDriverLo = 0x090, kDriverHi = 0x094,
  kDeviceLo = 0x0a0, kDeviceHi = 0x0a4,
};

struct Replay {
  GuestMemory memory = make_memory();
  std::shared_ptr<Rng> rng = std::make_shared<Rng>();
  MmioTransport mmio{rng, memory, EventFd::create().value()};
  uint32_t prng = 18;

  static GuestMemory make_memory() {
    const RegionSpec spec[] = {{0, kRam}};
    auto m = GuestMemory::create(spec).value();
    REQUIRE(m.fill(0, kRam, kCanary).ok());
    return m;
  }
  uint32_t next() {
    prng ^= prng << 13;
    prng ^= prng >> 17;
    prng ^= prng << 5;
    return prng;
  }
  void wr(uint64_t reg, uint32_t v) { mmio.write(0xd0000000, reg, {reinterpret_cast<const uint8_t*>(&v), 4}); }
  uint32_t rd(uint64_t reg) {
    uint32_t v = 0;
    mmio.read(0xd0000000, reg, {reinterpret_cast<uint8_t*>(&v), 4});
    return v;
  }
  void negotiate() {
    wr(kStatus, 0);
    wr(kStatus, kStatusAcknowledge);
    wr(kStatus, kStatusAcknowledge | kStatusDriver);
    wr(kFeaturesSel, 1);
    wr(kFeatures, 1);  // VIRTIO_F_VERSION_1
    wr(kStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
    REQUIRE(rd(kStatus) == (kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk));
  }
  void queue(uint32_t size, uint64_t desc, uint64_t avail, uint64_t used) {
    wr(kQueueSel, 0);
    wr(kQueueNum, size);
    wr(kDescLo, static_cast<uint32_t>(desc));
    wr(kDescHi, static_cast<uint32_t>(desc >> 32));
    wr(kDriverLo, static_cast<uint32_t>(avail));
    wr(kDriverHi, static_cast<uint32_t>(avail >> 32));
    wr(kDeviceLo, static_cast<uint32_t>(used));
    wr(kDeviceHi, static_cast<uint32_t>(used >> 32));
    wr(kQueueReady, 1);
  }
  void descriptor(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    uint8_t d[16];
    std::memcpy(d, &addr, 8);
    std::memcpy(d + 8, &len, 4);
    std::memcpy(d + 12, &flags, 2);
    std::memcpy(d + 14, &next, 2);
    REQUIRE(memory.write(kRings + 16 * i, d).ok());
  }
  // The first byte outside the rings that is no longer the canary, or kRam.
  uint64_t first_changed() const {
    auto all = memory.slice(0, kRam).value();
    for (uint64_t a = 0; a < kRam; ++a) {
      if (a == kRings) a = kRingsEnd;
      if (all[a] != kCanary) return a;
    }
    return kRam;
  }
};

}  // namespace

TEST_CASE("issue 18's hostile window sequence touches only the rings and a reset recovers") {
  for (uint32_t seed = 1; seed <= 16; ++seed) {
    Replay r;
    r.prng = seed;
    r.negotiate();
    r.queue(0xffff, kOutsideRam, kOutsideRam + 0x1000, kOutsideRam + 0x2000);
    REQUIRE(r.memory.fill(kRings, kRingsEnd - kRings, 0).ok());
    r.descriptor(0, kRings + 0x2800, 0xffffffffu, 1, 1);
    r.descriptor(1, 0xffffffff00001000ULL, 512, 3, 2);
    r.descriptor(2, kOutsideRam, 0xffffffffu, 3, 0);
    for (uint16_t k = 3; k < 8; ++k) r.descriptor(k, kRings + 0x2800, 0xffffffffu, 1, k == 7 ? 3 : k + 1);
    for (uint16_t k = 0; k < 8; ++k) REQUIRE(r.memory.write_obj<uint16_t>(kRings + 0x1000 + 4 + 2 * k, k).ok());
    REQUIRE(r.memory.write_obj<uint16_t>(kRings + 0x1002, 0x9000).ok());  // avail idx far ahead
    r.queue(8, kRings, kRings + 0x1000, kRings + 0x2000);
    r.wr(kStatus, r.rd(kStatus) | kStatusDriverOk);
    r.wr(kNotify, 0);
    CHECK((r.rd(kStatus) & kStatusNeedsReset) != 0);

    for (int n = 0; n < 20000; ++n) {
      const uint64_t offset = r.next() % kMmioWindowSize;
      uint8_t bytes[8];
      const uint32_t v = r.next(), w = r.next();
      std::memcpy(bytes, &v, 4);
      std::memcpy(bytes + 4, &w, 4);
      const size_t width = size_t{1} << (r.next() % 4);
      if (offset + width > kMmioWindowSize) continue;  // the bus gives such accesses to nobody
      if (r.next() % 2) r.mmio.write(0xd0000000, offset, {bytes, width});
      else r.mmio.read(0xd0000000, offset, {bytes, width});
    }
    INFO("seed " << seed);
    CHECK(r.first_changed() == kRam);

    // A proper driver: reset, a valid ring, one 64-byte request.
    r.negotiate();
    REQUIRE(r.memory.fill(kRings, kRingsEnd - kRings, 0).ok());
    r.descriptor(0, kRings + 0x2800, 64, 2, 0);
    REQUIRE(r.memory.write_obj<uint16_t>(kRings + 0x1002, 1).ok());
    r.queue(8, kRings, kRings + 0x1000, kRings + 0x2000);
    r.wr(kStatus, r.rd(kStatus) | kStatusDriverOk);
    CHECK(r.rd(kStatus) == (kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk));
    r.wr(kNotify, 0);
    CHECK(r.memory.read_obj<uint16_t>(kRings + 0x2002).value() == 1);
    CHECK(r.memory.read_obj<uint32_t>(kRings + 0x2008).value() == 64);
    CHECK(r.first_changed() == kRam);
  }
}
