// For the virtio-blk unit tests: a raw disk image in /tmp whose sector n holds the byte
// n with the device over it, and a guest's memory with a request header, data buffers
// and a status byte at fixed addresses.
#pragma once

#include <doctest/doctest.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <memory>
#include <string>

#include "virtio/blk.hpp"

namespace hyper::virtio::testing {

struct Disk {
  explicit Disk(bool read_only = false, uint64_t sectors = 64) {
    char name[] = "/tmp/hyper-blk-test-XXXXXX";
    const int fd = ::mkstemp(name);
    REQUIRE(fd >= 0);
    path = name;
    std::string content(sectors * 512, '\0');
    for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>(i / 512);
    REQUIRE(::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()));
    ::close(fd);
    blk = Blk::open({path, read_only, "serial-7"}).value();
  }
  ~Disk() { ::unlink(path.c_str()); }
  Disk(const Disk&) = delete;
  Disk& operator=(const Disk&) = delete;
  std::string path;
  std::shared_ptr<Blk> blk;
};

inline constexpr uint64_t kHeader = 0x1000, kData = 0x2000, kStatus = 0x9000;

struct Guest {
  Guest() : memory(GuestMemory::create(std::array{RegionSpec{0, 0x100000}}).value()) {}
  void header(uint32_t type, uint64_t sector) {
    REQUIRE(memory.write_obj(kHeader, type).ok());
    REQUIRE(memory.write_obj(kHeader + 4, uint32_t{0}).ok());
    REQUIRE(memory.write_obj(kHeader + 8, sector).ok());
  }
  uint8_t status() { return memory.read_obj<uint8_t>(kStatus).value(); }
  GuestMemory memory;
};

}  // namespace hyper::virtio::testing
