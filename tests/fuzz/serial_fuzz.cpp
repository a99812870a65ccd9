// The guest drives the UART's registers at will: any sequence of reads, writes and
// host input must keep the device consistent (bounded tail, no crash).
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "devices/serial.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto irq = hyper::EventFd::create();
  auto ready = hyper::EventFd::create();
  if (!irq || !ready) return 0;
  hyper::devices::Serial serial(std::move(irq).value(), std::move(ready).value(), -1);
  for (size_t i = 0; i + 2 < size; i += 3) {
    const uint8_t op = data[i], offset = data[i + 1] & 0x0f, value = data[i + 2];
    uint8_t byte = value;
    switch (op % 3) {
      case 0: serial.write(0x3f8, offset, {&byte, 1}); break;
      case 1: serial.read(0x3f8, offset, {&byte, 1}); break;
      default: serial.push_input({&byte, 1}); break;
    }
  }
  if (serial.tail().size() > hyper::devices::Serial::kTailBytes) std::abort();
  return 0;
}
