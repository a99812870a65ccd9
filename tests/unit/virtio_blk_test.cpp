#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "tests/unit/blk_disk.hpp"
#include "tests/unit/fake_driver.hpp"
#include "virtio/blk.hpp"

using namespace hyper;
using namespace hyper::virtio;
using hyper::virtio::testing::Disk;
using hyper::virtio::testing::Guest;
using hyper::virtio::testing::kData;
using hyper::virtio::testing::kHeader;
using hyper::virtio::testing::kStatus;
using hyper::virtio::testing::FakeDriver;

TEST_CASE("virtio-blk: reads land in the guest's buffers, split across them") {
  Disk d;
  Guest g;
  g.header(0, 3);
  DescriptorChain chain{0, {{kHeader, 16}}, {{kData, 512}, {kData + 0x1000, 512}, {kStatus, 1}}};
  CHECK(d.blk->serve(g.memory, chain) == 1025);
  CHECK(g.status() == 0);
  CHECK(g.memory.read_obj<uint8_t>(kData).value() == 3);
  CHECK(g.memory.read_obj<uint8_t>(kData + 0x1000).value() == 4);
}

TEST_CASE("virtio-blk: writes reach the image; a flush is honoured") {
  Disk d;
  Guest g;
  g.header(1, 10);
  REQUIRE(g.memory.fill(kData, 512, 0xee).ok());
  DescriptorChain write{0, {{kHeader, 16}, {kData, 512}}, {{kStatus, 1}}};
  CHECK(d.blk->serve(g.memory, write) == 1);
  CHECK(g.status() == 0);
  g.header(4, 0);
  DescriptorChain flush{0, {{kHeader, 16}}, {{kStatus, 1}}};
  d.blk->serve(g.memory, flush);
  CHECK(g.status() == 0);
  const int fd = ::open(d.path.c_str(), O_RDONLY);
  uint8_t byte = 0;
  REQUIRE(::pread(fd, &byte, 1, 10 * 512 + 100) == 1);
  ::close(fd);
  CHECK(byte == 0xee);
}

TEST_CASE("virtio-blk: GET_ID answers the serial; unknown requests are UNSUPP") {
  Disk d;
  Guest g;
  g.header(8, 0);
  DescriptorChain id{0, {{kHeader, 16}}, {{kData, 20}, {kStatus, 1}}};
  CHECK(d.blk->serve(g.memory, id) == 21);
  char serial[21] = {};
  REQUIRE(g.memory.read(kData, {reinterpret_cast<uint8_t*>(serial), 20}).ok());
  CHECK(std::string(serial) == "serial-7");
  g.header(99, 0);
  d.blk->serve(g.memory, id);
  CHECK(g.status() == 2);
}

TEST_CASE("virtio-blk: out-of-range, unaligned, oversized and read-only requests fail with IOERR") {
  Disk d;
  Guest g;
  DescriptorChain read_chain{0, {{kHeader, 16}}, {{kData, 1024}, {kStatus, 1}}};
  g.header(0, 63);  // 2 sectors from the last one: past the end
  d.blk->serve(g.memory, read_chain);
  CHECK(g.status() == 1);
  g.header(0, ~0ULL);  // a sector whose byte offset overflows
  d.blk->serve(g.memory, read_chain);
  CHECK(g.status() == 1);
  DescriptorChain unaligned{0, {{kHeader, 16}}, {{kData, 100}, {kStatus, 1}}};
  g.header(0, 0);
  d.blk->serve(g.memory, unaligned);
  CHECK(g.status() == 1);
  DescriptorChain huge{0, {{kHeader, 16}}, {{kData, Blk::kMaxRequestBytes + 512}, {kStatus, 1}}};
  d.blk->serve(g.memory, huge);
  CHECK(g.status() == 1);
  DescriptorChain short_header{0, {{kHeader, 8}}, {{kStatus, 1}}};
  d.blk->serve(g.memory, short_header);
  CHECK(g.status() == 1);
  DescriptorChain no_status{0, {{kHeader, 16}}, {}};
  CHECK(d.blk->serve(g.memory, no_status) == 0);  // nowhere to answer: dropped and counted
  CHECK(d.blk->rejected_requests() == 6);

  Disk ro(true);
  g.header(1, 0);
  DescriptorChain write{0, {{kHeader, 16}, {kData, 512}}, {{kStatus, 1}}};
  ro.blk->serve(g.memory, write);
  CHECK(g.status() == 1);
  CHECK((ro.blk->device_features() & (1ULL << 5)) != 0);  // VIRTIO_BLK_F_RO offered
}

TEST_CASE("virtio-blk: bad images and serials are refused when the disk is opened") {
  CHECK_FALSE(Blk::open({"/nonexistent/disk.img", false, ""}).ok());
  CHECK_FALSE(Blk::open({"/tmp", false, ""}).ok());  // a directory
  Disk d;
  CHECK_FALSE(Blk::open({d.path, false, std::string(21, 'x')}).ok());
  uint64_t capacity = 0;
  d.blk->read_config(0, {reinterpret_cast<uint8_t*>(&capacity), 8});
  CHECK(capacity == 64);
  uint32_t limits[2] = {};
  d.blk->read_config(8, {reinterpret_cast<uint8_t*>(limits), 8});
  CHECK(limits[0] == Blk::kMaxSegmentBytes);  // size_max
  CHECK(limits[1] == Blk::kMaxSegments);      // seg_max
  CHECK((d.blk->device_features() & 0x6) == 0x6);
}

TEST_CASE("virtio-blk: through its queue; a descriptor loop reports NEEDS_RESET and the device goes quiet") {
  Disk d;
  FakeDriver driver(1);
  REQUIRE(d.blk->activate(driver.activation(d.blk->device_features())).ok());
  std::string header(16, '\0');
  header[8] = 2;  // sector 2
  driver.post(0, {header}, {512, 1});
  d.blk->queue_notify(0);
  auto used = driver.take_used(0);
  REQUIRE(used.size() == 1);
  CHECK(used[0].len == 513);
  CHECK(used[0].data[0] == 2);
  CHECK(used[0].data[512] == 0);  // status OK
  CHECK(driver.interrupts == 1);

  driver.write_descriptor(0, 10, FakeDriver::kDataStart, 16, 1, 11);  // 10 -> 11 -> 10 ...
  driver.write_descriptor(0, 11, FakeDriver::kDataStart, 16, 1, 10);
  driver.publish_raw(0, 10);
  d.blk->queue_notify(0);
  CHECK(driver.needs_reset);
  CHECK(driver.take_used(0).empty());
  driver.post(0, {header}, {512, 1});
  d.blk->queue_notify(0);  // inactive until reset + DRIVER_OK
  CHECK(driver.take_used(0).empty());
}
