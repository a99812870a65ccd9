// A raw disk image in /tmp whose sector n holds the byte n, and the virtio-blk device
// over it, for the virtio-blk unit tests.
#pragma once

#include <doctest/doctest.h>
#include <unistd.h>

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

}  // namespace hyper::virtio::testing
