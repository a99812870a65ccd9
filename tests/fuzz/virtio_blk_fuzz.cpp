// A guest controls every byte of a block request and every buffer's place and size:
// any request must get a status byte (or be dropped) and never touch the image outside
// its bounds or crash.
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "virtio/blk.hpp"

namespace {
constexpr uint64_t kRam = 0x20000;

struct World {
  World() : memory(hyper::GuestMemory::create(std::array{hyper::RegionSpec{0, kRam}}).value()) {
    char name[] = "/tmp/hyper-blk-fuzz-XXXXXX";
    const int fd = ::mkstemp(name);
    if (fd < 0 || ::ftruncate(fd, 64 * 512) != 0) std::abort();
    ::close(fd);
    blk = hyper::virtio::Blk::open({name, false, "fuzz"}).value();
    ::unlink(name);  // the open fd keeps it alive
  }
  hyper::GuestMemory memory;
  std::shared_ptr<hyper::virtio::Blk> blk;
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World world;
  if (size < 2) return 0;
  // Byte 0: readable count, byte 1: writable count (up to 4 each), then per buffer a
  // 2-byte page offset and a 2-byte length; the rest is written at guest address 0.
  const size_t readable = data[0] % 5, writable = data[1] % 5;
  size_t pos = 2;
  hyper::virtio::DescriptorChain chain{0, {}, {}};
  for (size_t i = 0; i < readable + writable && pos + 4 <= size; ++i, pos += 4) {
    const uint64_t gpa = (data[pos] | (data[pos + 1] << 8)) % kRam;
    const uint32_t len = static_cast<uint32_t>(data[pos + 2] | (data[pos + 3] << 8));
    if (!world.memory.contains(gpa, len)) continue;  // the walker never yields these
    (i < readable ? chain.readable : chain.writable).push_back({gpa, len});
  }
  (void)world.memory.fill(0, 0x1000, 0);
  (void)world.memory.write(0, {data + pos, std::min<size_t>(size - pos, 0x1000)});
  const uint32_t written = world.blk->serve(world.memory, chain);
  if (written > chain.writable_bytes()) std::abort();
  return 0;
}
