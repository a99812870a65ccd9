// A guest controls every transmit chain and the shape of every receive chain, and the
// host network the frames that arrive: whatever they are, the device must never crash,
// hang, or report more bytes used than a chain can hold.
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "tests/unit/fake_driver.hpp"
#include "virtio/net.hpp"
#include "virtio/net_features.hpp"

using hyper::virtio::testing::FakeDriver;

namespace {

struct Input {
  const uint8_t* data;
  size_t size;
  size_t pos = 0;
  bool empty() const { return pos >= size; }
  uint8_t byte() { return pos < size ? data[pos++] : 0; }
  uint16_t u16() { return static_cast<uint16_t>(byte() | (byte() << 8)); }
  std::string bytes(size_t n) {
    n = std::min(n, size - std::min(pos, size));
    std::string out(reinterpret_cast<const char*>(data + pos), n);
    pos += n;
    return out;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in{data, size};
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) std::abort();
  hyper::UniqueFd host(fds[1]);
  auto net = hyper::virtio::Net::over_fd(hyper::UniqueFd(fds[0]), {2, 0, 0, 0, 0, 1}, false);
  FakeDriver driver(2, 16);
  const uint64_t features = (in.byte() & 1) ? net->device_features()
                                            : hyper::virtio::kFeatureVersion1 | hyper::virtio::net::kGuestCsum;
  if (!net->activate(driver.activation(features)).ok()) std::abort();

  // Once the input writes raw descriptors, chains the harness posted may be clobbered,
  // so only the device's survival is checked from then on.
  bool raw = false;
  std::vector<uint32_t> rx_room(1024, 0);
  while (!in.empty() && !driver.needs_reset) {
    switch (in.byte() % 6) {
      case 0: {  // a transmit chain of up to 4 readable pieces
        std::vector<std::string> pieces(1 + in.byte() % 4);
        for (auto& p : pieces) p = in.bytes(in.u16() % 2048);
        if (!raw && driver.free_descriptors(1) >= pieces.size()) driver.post(1, pieces);
        break;
      }
      case 1: {  // a receive chain of up to 3 writable buffers
        std::vector<uint32_t> sizes(1 + in.byte() % 3);
        uint32_t room = 0;
        for (auto& s : sizes) room += (s = in.u16() % 4096);
        if (!raw && driver.free_descriptors(0) >= sizes.size()) rx_room[driver.post(0, {}, sizes)] = room;
        break;
      }
      case 2: {  // a frame from the host network
        const std::string frame = in.bytes(in.u16() % 9000);
        (void)!::send(host.get(), frame.data(), frame.size(), MSG_DONTWAIT);
        break;
      }
      case 3: {  // a raw (possibly malformed) descriptor, published as a chain head
        const size_t q = in.byte() & 1;
        const uint16_t index = in.byte() % 16;
        driver.write_descriptor(q, index, in.u16() * 64ULL, in.u16(), in.byte() & 7, in.byte() % 16);
        driver.publish_raw(q, index);
        raw = true;
        break;
      }
      case 4:
        net->queue_notify(in.byte() % 3);
        break;
      case 5:
        if (raw) break;
        for (const auto& used : driver.take_used(0)) {
          if (used.len > rx_room[used.head]) std::abort();
        }
        (void)driver.take_used(1);
        break;
    }
  }
  net->reset();
  return 0;
}
