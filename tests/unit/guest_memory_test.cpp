#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <vector>

#include "vmm/guest_memory.hpp"
#include "vmm/layout.hpp"

using namespace hyper;

namespace {
GuestMemory two_regions() {
  const RegionSpec specs[] = {{0x10000, 0x2000}, {0, 0x4000}};  // unsorted on purpose
  auto mem = GuestMemory::create(specs);
  REQUIRE(mem.ok());
  return std::move(mem).value();
}
}  // namespace

TEST_CASE("guest memory: reads back what was written, inside each region") {
  auto mem = two_regions();
  CHECK(mem.total_size() == 0x6000);
  REQUIRE(mem.write_obj<uint32_t>(0x3ffc, 0xdeadbeef).ok());
  CHECK(mem.read_obj<uint32_t>(0x3ffc).value() == 0xdeadbeef);
  REQUIRE(mem.write_obj<uint64_t>(0x10000, 42).ok());
  CHECK(mem.read_obj<uint64_t>(0x10000).value() == 42);
}

TEST_CASE("guest memory: rejects accesses outside, across and wrapping around regions") {
  auto mem = two_regions();
  CHECK(mem.read_obj<uint32_t>(0x3ffe).error().code == Errc::out_of_bounds);  // crosses the end
  CHECK_FALSE(mem.contains(0x4000, 1));                                        // the gap
  CHECK_FALSE(mem.contains(0x11ff0, 0x20));                                    // past region 2
  CHECK_FALSE(mem.contains(0x10000, std::numeric_limits<uint64_t>::max()));    // huge length
  CHECK_FALSE(mem.contains(std::numeric_limits<uint64_t>::max(), 2));          // wraps
  CHECK(mem.contains(0x3fff, 1));
  CHECK(mem.contains(0x4000, 0));  // an empty range at the very end (a segment with no .bss)
  CHECK(mem.fill(0x12000, 0, 0).ok());
  CHECK_FALSE(mem.contains(0x4001, 0));
  CHECK(mem.contains(0x4000 - 0x10, 0x10));
  CHECK(mem.fill(0x11000, 0x1001, 0).error().code == Errc::out_of_bounds);
}

TEST_CASE("guest memory: rejects overlapping, empty and unaligned regions") {
  const RegionSpec overlap[] = {{0, 0x2000}, {0x1000, 0x1000}};
  CHECK(GuestMemory::create(overlap).error().code == Errc::invalid_argument);
  const RegionSpec empty[] = {{0, 0}};
  CHECK_FALSE(GuestMemory::create(empty).ok());
  const RegionSpec unaligned[] = {{0x800, 0x1000}};
  CHECK_FALSE(GuestMemory::create(unaligned).ok());
  const RegionSpec wrapping[] = {{0xfffffffffffff000ULL, 0x2000}};
  CHECK_FALSE(GuestMemory::create(wrapping).ok());
}

TEST_CASE("guest memory: x86 layout splits RAM around the MMIO hole") {
  auto small = GuestMemory::x86_layout(128ULL << 20);
  REQUIRE(small.size() == 1);
  CHECK(small[0].size == 128ULL << 20);
  auto big = GuestMemory::x86_layout(6ULL << 30);
  REQUIRE(big.size() == 2);
  CHECK(big[0].size == layout::kMmioHoleStart);
  CHECK(big[1].gpa == layout::kRamAbove4gStart);
  CHECK(big[0].size + big[1].size == 6ULL << 30);
}
