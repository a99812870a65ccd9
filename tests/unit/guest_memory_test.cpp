#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
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

namespace {

GuestMemory shared_regions() {
  const RegionSpec specs[] = {{0, 0x400000}, {0x1000000, 0x200000}};
  auto mem = GuestMemory::create(specs, false, MemoryBacking::shared_memfd);
  REQUIRE(mem.ok());
  return std::move(mem).value();
}

// A second mapping of a region's memfd, as a vhost-user back-end makes it.
struct OtherView {
  OtherView(int fd, size_t bytes) : size(bytes) {
    p = static_cast<uint8_t*>(::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    REQUIRE(p != MAP_FAILED);
  }
  ~OtherView() { ::munmap(p, size); }
  uint8_t* p;
  size_t size;
};

}  // namespace

TEST_CASE("guest memory: anonymous by default, with no fd to share") {
  auto mem = two_regions();
  CHECK_FALSE(mem.shareable());
  for (const auto& r : mem.regions()) CHECK_FALSE(r.fd.valid());
}

TEST_CASE("guest memory: shared mode backs each region with a sealed memfd another mapping sees") {
  auto mem = shared_regions();
  REQUIRE(mem.shareable());
  REQUIRE(mem.regions().size() == 2);
  for (const auto& r : mem.regions()) {
    REQUIRE(r.fd.valid());
    CHECK(r.fd_offset == 0);
    struct stat st {};
    REQUIRE(::fstat(r.fd.get(), &st) == 0);
    CHECK(static_cast<uint64_t>(st.st_size) == r.size());
    CHECK(reinterpret_cast<uintptr_t>(r.mapping.data()) % (2 << 20) == 0);  // room for huge pages
    const int seals = ::fcntl(r.fd.get(), F_GET_SEALS);
    CHECK((seals & F_SEAL_SHRINK));
    CHECK((seals & F_SEAL_GROW));
    CHECK((seals & F_SEAL_SEAL));
    CHECK(::ftruncate(r.fd.get(), 4096) == -1);  // a back-end cannot pull pages from under us
    CHECK((::fcntl(r.fd.get(), F_GETFD) & FD_CLOEXEC));
  }
  const auto& high = mem.regions()[1];
  OtherView view(high.fd.get(), high.size());
  REQUIRE(mem.write_obj<uint64_t>(0x1000010, 0x1122334455667788ULL).ok());
  uint64_t seen;
  std::memcpy(&seen, view.p + 0x10, sizeof seen);
  CHECK(seen == 0x1122334455667788ULL);
  view.p[0x1fffff] = 0x7e;
  CHECK(mem.read_obj<uint8_t>(0x11fffff).value() == 0x7e);
  // The bounds-checked API is the same in both modes.
  CHECK(mem.read_obj<uint32_t>(0x11ffffe).error().code == Errc::out_of_bounds);
  CHECK_FALSE(mem.contains(0x400000, 1));
}

TEST_CASE("guest memory: a file loaded into shared memory is copied, so the other mapping sees it too") {
  char path[] = "/tmp/hyper-guest-memory-test-XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  ::unlink(path);
  const std::string content(3 * 4096 + 100, 'k');
  REQUIRE(::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()));

  auto mem = shared_regions();
  REQUIRE(mem.load_from_fd(0x100000, fd, 0, content.size()).ok());
  OtherView view(mem.regions()[0].fd.get(), mem.regions()[0].size());
  CHECK(std::memcmp(view.p + 0x100000, content.data(), content.size()) == 0);
  // Changing the file afterwards changes nothing: the bytes were copied, not mapped.
  REQUIRE(::pwrite(fd, "X", 1, 0) == 1);
  CHECK(mem.read_obj<char>(0x100000).value() == 'k');

  // Anonymous memory still takes the file copy-on-write and clears the tail of its last page.
  auto anonymous = two_regions();
  REQUIRE(anonymous.fill(0, 0x4000, 0xee).ok());
  REQUIRE(anonymous.load_from_fd(0, fd, 0, content.size()).ok());
  CHECK(anonymous.read_obj<char>(0).value() == 'X');
  CHECK(anonymous.read_obj<uint8_t>(content.size()).value() == 0);
  ::close(fd);
}
