#include <doctest/doctest.h>

#include <vector>

#include "vmm/bus.hpp"

using namespace hyper;

namespace {
struct Recorder : BusDevice {
  std::vector<uint64_t> offsets;
  void read(uint64_t, uint64_t offset, std::span<uint8_t> data) override {
    offsets.push_back(offset);
    for (auto& b : data) b = 0xab;
  }
  void write(uint64_t, uint64_t offset, std::span<const uint8_t>) override { offsets.push_back(offset); }
};
}  // namespace

TEST_CASE("bus: dispatches by range with offsets relative to the range start") {
  Bus bus("test");
  auto a = std::make_shared<Recorder>();
  auto b = std::make_shared<Recorder>();
  REQUIRE(bus.insert(a, 0x100, 8).ok());
  REQUIRE(bus.insert(b, 0x10, 0x10).ok());
  uint8_t byte = 0;
  CHECK(bus.read(0x107, {&byte, 1}));
  CHECK(byte == 0xab);
  CHECK(bus.write(0x10, {&byte, 1}));
  CHECK(a->offsets == std::vector<uint64_t>{7});
  CHECK(b->offsets == std::vector<uint64_t>{0});
}

TEST_CASE("bus: unclaimed and straddling accesses are not dispatched") {
  Bus bus("test");
  auto a = std::make_shared<Recorder>();
  REQUIRE(bus.insert(a, 0x100, 8).ok());
  uint8_t data[4] = {};
  CHECK_FALSE(bus.read(0xff, {data, 1}));
  CHECK_FALSE(bus.read(0x108, {data, 1}));
  CHECK_FALSE(bus.read(0x106, {data, 4}));  // runs past the end of the range
  CHECK(a->offsets.empty());
}

TEST_CASE("bus: overlapping ranges are refused") {
  Bus bus("test");
  auto a = std::make_shared<Recorder>();
  REQUIRE(bus.insert(a, 0x100, 0x10).ok());
  CHECK_FALSE(bus.insert(a, 0xf8, 0x10).ok());
  CHECK_FALSE(bus.insert(a, 0x10f, 1).ok());
  CHECK_FALSE(bus.insert(a, 0x0, 0x1000).ok());
  CHECK_FALSE(bus.insert(a, 0x200, 0).ok());
  CHECK(bus.insert(a, 0x110, 1).ok());  // adjacent is fine
  CHECK(bus.insert(a, 0xff, 1).ok());
}
