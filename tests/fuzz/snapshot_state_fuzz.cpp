// A snapshot's state sections are checksummed, but a hostile file can carry any bytes
// with a matching checksum: each decoder must end in a clear error or a state it can
// use, never read out of bounds. The first byte picks the decoder: a vCPU, the UART, or
// a virtio-mmio transport (whose restore may activate its device on the fuzzer's rings).
#include <cstddef>
#include <cstdint>
#include <memory>

#include "devices/serial.hpp"
#include "virtio/mmio.hpp"
#include "virtio/rng.hpp"
#include "vmm/vcpu_state.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hyper;
  if (size < 1) return 0;
  const std::span<const uint8_t> section(data + 1, size - 1);
  switch (data[0] % 3) {
    case 0: (void)VcpuState::decode(section, 0); break;
    case 1: {
      devices::Serial serial(EventFd::create().value(), EventFd::create().value(), -1);
      (void)serial.restore(section);
      break;
    }
    default: {
      static const GuestMemory memory = [] {
        const RegionSpec spec[] = {{0, 0x100000}};
        return GuestMemory::create(spec).value();
      }();
      virtio::MmioTransport transport(std::make_shared<virtio::Rng>(), memory, EventFd::create().value());
      (void)transport.restore(section, "fuzzed device");
      break;
    }
  }
  return 0;
}
