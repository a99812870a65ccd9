#include <doctest/doctest.h>

#include <string>

#include "virtio/queue.hpp"

using namespace hyper;
using namespace hyper::virtio;

namespace {

constexpr uint64_t kDesc = 0x1000, kAvail = 0x2000, kUsed = 0x3000, kIndirect = 0x4000, kData = 0x10000;
constexpr uint16_t kNext = 1, kWrite = 2, kIndirectFlag = 4;

// Plays the driver: writes descriptors and publishes chains in guest memory.
struct Driver {
  explicit Driver(uint16_t size = 8, bool event_idx = false)
      : memory(make_memory()), layout{size, kDesc, kAvail, kUsed, event_idx} {}
  static GuestMemory make_memory() {
    const RegionSpec spec[] = {{0, 0x100000}};
    return GuestMemory::create(spec).value();
  }
  void desc(uint64_t table, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next = 0) {
    REQUIRE(memory.write_obj(table + i * 16ULL, addr).ok());
    REQUIRE(memory.write_obj(table + i * 16ULL + 8, len).ok());
    REQUIRE(memory.write_obj(table + i * 16ULL + 12, flags).ok());
    REQUIRE(memory.write_obj(table + i * 16ULL + 14, next).ok());
  }
  void publish(uint16_t head) {
    REQUIRE(memory.write_obj(kAvail + 4 + 2ULL * (avail_idx % layout.size), head).ok());
    ++avail_idx;
    REQUIRE(memory.write_obj(kAvail + 2, avail_idx).ok());
  }
  Queue queue() { return Queue::create(memory, layout).value(); }
  uint16_t used_idx() { return memory.read_obj<uint16_t>(kUsed + 2).value(); }

  GuestMemory memory;
  QueueLayout layout;
  uint16_t avail_idx = 0;
};

std::string error_of(Result<std::optional<DescriptorChain>> r) { return r.ok() ? "" : r.error().message; }

}  // namespace

TEST_CASE("virtqueue: a readable+writable chain comes out in order and goes back used") {
  Driver d;
  d.desc(kDesc, 0, kData, 16, kNext, 3);
  d.desc(kDesc, 3, kData + 16, 512, kNext | kWrite, 5);
  d.desc(kDesc, 5, kData + 528, 1, kWrite);
  d.publish(0);
  auto q = d.queue();
  auto chain = q.pop();
  REQUIRE(chain.ok());
  REQUIRE(chain->has_value());
  const auto& c = **chain;
  CHECK(c.head == 0);
  REQUIRE(c.readable.size() == 1);
  CHECK(c.readable[0].gpa == kData);
  REQUIRE(c.writable.size() == 2);
  CHECK(c.writable_bytes() == 513);
  CHECK(q.pop().value() == std::nullopt);  // nothing more published

  REQUIRE(q.push_used(c.head, 513).ok());
  CHECK(d.used_idx() == 1);
  CHECK(d.memory.read_obj<uint32_t>(kUsed + 4).value() == 0);    // id
  CHECK(d.memory.read_obj<uint32_t>(kUsed + 8).value() == 513);  // len
  CHECK(q.should_notify().value());
  CHECK_FALSE(q.should_notify().value());  // nothing new since
}

TEST_CASE("virtqueue: an indirect table is followed, once") {
  Driver d;
  d.desc(kIndirect, 0, kData, 8, kNext, 1);
  d.desc(kIndirect, 1, kData + 8, 8, kWrite);
  d.desc(kDesc, 2, kIndirect, 32, kIndirectFlag);
  d.publish(2);
  auto q = d.queue();
  auto chain = q.pop();
  REQUIRE(chain.ok());
  CHECK((*chain)->head == 2);
  CHECK((*chain)->readable.size() == 1);
  CHECK((*chain)->writable.size() == 1);
}

TEST_CASE("virtqueue: hostile rings are refused with a reason, never followed") {
  SUBCASE("a loop") {
    Driver d;
    d.desc(kDesc, 0, kData, 8, kNext, 1);
    d.desc(kDesc, 1, kData, 8, kNext, 0);
    d.publish(0);
    CHECK(error_of(d.queue().pop()).find("loop") != std::string::npos);
  }
  SUBCASE("a self-loop in an indirect table") {
    Driver d;
    d.desc(kIndirect, 0, kData, 8, kNext, 0);
    d.desc(kDesc, 0, kIndirect, 16, kIndirectFlag);
    d.publish(0);
    CHECK(error_of(d.queue().pop()).find("loop") != std::string::npos);
  }
  SUBCASE("head out of range") {
    Driver d;
    d.publish(8);
    CHECK(error_of(d.queue().pop()).find("out of range") != std::string::npos);
  }
  SUBCASE("next out of range") {
    Driver d;
    d.desc(kDesc, 0, kData, 8, kNext, 200);
    d.publish(0);
    CHECK_FALSE(d.queue().pop().ok());
  }
  SUBCASE("an impossible jump of the available index") {
    Driver d;
    REQUIRE(d.memory.write_obj(kAvail + 2, uint16_t{9}).ok());
    CHECK(error_of(d.queue().pop()).find("jumped by 9") != std::string::npos);
  }
  SUBCASE("a readable buffer after a writable one") {
    Driver d;
    d.desc(kDesc, 0, kData, 8, kNext | kWrite, 1);
    d.desc(kDesc, 1, kData, 8, 0);
    d.publish(0);
    CHECK(error_of(d.queue().pop()).find("follows a writable") != std::string::npos);
  }
  SUBCASE("a buffer outside guest memory, or wrapping") {
    Driver d;
    d.desc(kDesc, 0, 0xfffff000, 0x2000, 0);
    d.desc(kDesc, 1, 0xfffffffffffff000ULL, 0x2000, 0);
    d.publish(0);
    d.publish(1);
    auto q = d.queue();
    CHECK(error_of(q.pop()).find("outside guest memory") != std::string::npos);
  }
  SUBCASE("nested indirect, indirect with NEXT, bad indirect length") {
    for (auto [flags, len] : {std::pair<uint16_t, uint32_t>{kIndirectFlag | kNext, 16}, {kIndirectFlag, 0},
                              {kIndirectFlag, 24}, {kIndirectFlag, 16 * 2048}}) {
      Driver d;
      d.desc(kDesc, 0, kIndirect, len, flags);
      d.publish(0);
      CHECK_FALSE(d.queue().pop().ok());
    }
    Driver d;
    d.desc(kIndirect, 0, kIndirect, 16, kIndirectFlag);  // points at itself
    d.desc(kDesc, 0, kIndirect, 16, kIndirectFlag);
    d.publish(0);
    CHECK(error_of(d.queue().pop()).find("another one") != std::string::npos);
  }
  SUBCASE("an indirect descriptor inside a chain") {
    Driver d;
    d.desc(kDesc, 0, kData, 8, kNext, 1);
    d.desc(kDesc, 1, kIndirect, 16, kIndirectFlag);
    d.publish(0);
    CHECK(error_of(d.queue().pop()).find("stand alone") != std::string::npos);
  }
  SUBCASE("a used id out of range") {
    Driver d;
    CHECK_FALSE(d.queue().push_used(8, 0).ok());
  }
}

TEST_CASE("virtqueue: impossible layouts are refused") {
  auto memory = Driver::make_memory();
  CHECK_FALSE(Queue::create(memory, {0, kDesc, kAvail, kUsed, false}).ok());
  CHECK_FALSE(Queue::create(memory, {6, kDesc, kAvail, kUsed, false}).ok());  // not a power of two
  CHECK_FALSE(Queue::create(memory, {2048, kDesc, kAvail, kUsed, false}).ok());
  CHECK_FALSE(Queue::create(memory, {8, kDesc + 8, kAvail, kUsed, false}).ok());  // misaligned
  CHECK_FALSE(Queue::create(memory, {8, kDesc, kAvail, 0xffff0, false}).ok());   // past the end
  CHECK(Queue::create(memory, {8, kDesc, kAvail, kUsed, false}).ok());
}

TEST_CASE("virtqueue: interrupt suppression, with and without event index") {
  SUBCASE("NO_INTERRUPT flag") {
    Driver d;
    d.desc(kDesc, 0, kData, 8, 0);
    d.publish(0);
    REQUIRE(d.memory.write_obj(kAvail, uint16_t{1}).ok());
    auto q = d.queue();
    REQUIRE(q.pop().ok());
    REQUIRE(q.push_used(0, 0).ok());
    CHECK_FALSE(q.should_notify().value());
  }
  SUBCASE("event index: notify only when used_event is crossed") {
    Driver d(8, true);
    for (uint16_t i = 0; i < 3; ++i) {
      d.desc(kDesc, i, kData, 8, 0);
      d.publish(i);
    }
    REQUIRE(d.memory.write_obj(kAvail + 4 + 2 * 8, uint16_t{1}).ok());  // used_event: after 2 used
    auto q = d.queue();
    REQUIRE(q.pop().ok());
    CHECK(d.memory.read_obj<uint16_t>(kUsed + 4 + 8 * 8).value() == 0);  // no kick asked for while chains wait
    REQUIRE(q.push_used(0, 0).ok());
    CHECK_FALSE(q.should_notify().value());  // used idx 1: not past used_event 1 yet
    REQUIRE(q.pop().ok());
    REQUIRE(q.push_used(1, 0).ok());
    CHECK(q.should_notify().value());  // used idx 2 crossed used_event 1
    REQUIRE(q.pop().ok());
    CHECK(q.pop().value() == std::nullopt);
    CHECK(d.memory.read_obj<uint16_t>(kUsed + 4 + 8 * 8).value() == 3);  // empty: kick at the next one
  }
}
