// The guest drives the virtio-mmio registers at will: any sequence of accesses (any
// offset, width and value) must keep the transport consistent and never crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "virtio/mmio.hpp"

namespace {

struct NullDevice : hyper::virtio::VirtioDevice {
  uint32_t device_type() const override { return 4; }
  uint64_t device_features() const override {
    return hyper::virtio::kFeatureVersion1 | hyper::virtio::kFeatureRingEventIdx;
  }
  std::vector<uint16_t> queue_max_sizes() const override { return {16, 8}; }
  void read_config(uint64_t, std::span<uint8_t> data) const override { std::memset(data.data(), 0, data.size()); }
  void write_config(uint64_t, std::span<const uint8_t>) override {}
  hyper::Status activate(hyper::virtio::Activation a) override {
    if (a.queues.size() != 2) std::abort();  // activation only with every queue set up
    a.notify_used();
    return {};
  }
  void queue_notify(uint32_t index) override {
    if (index >= 2) std::abort();
  }
  void reset() override {}
};

hyper::GuestMemory& memory() {
  static hyper::GuestMemory mem = [] {
    const hyper::RegionSpec spec[] = {{0, 0x10000}};
    return hyper::GuestMemory::create(spec).value();
  }();
  return mem;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto irq = hyper::EventFd::create();
  if (!irq) return 0;
  hyper::virtio::MmioTransport mmio(std::make_shared<NullDevice>(), memory(), std::move(irq).value());
  // Each access: 1 byte op/width, 2 bytes offset, 4 bytes value.
  for (size_t i = 0; i + 7 <= size; i += 7) {
    const uint8_t op = data[i];
    const uint64_t offset = (data[i + 1] | (data[i + 2] << 8)) % hyper::virtio::kMmioWindowSize;
    uint8_t value[4];
    std::memcpy(value, data + i + 3, 4);
    const size_t width = size_t{1} << (op & 3) > 4 ? 4 : size_t{1} << (op & 3);
    if (offset + width > hyper::virtio::kMmioWindowSize) continue;
    if (op & 0x80) {
      mmio.read(0xd0000000, offset, {value, width});
    } else {
      mmio.write(0xd0000000, offset, {value, width});
    }
  }
  const uint32_t status = mmio.status();
  if ((status & hyper::virtio::kStatusDriverOk) && !(status & hyper::virtio::kStatusFeaturesOk)) std::abort();
  return 0;
}
