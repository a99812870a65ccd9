#include "devices/i8042.hpp"

#include "vmm/layout.hpp"

namespace hyper::devices {

void I8042::write(uint64_t base, uint64_t offset, std::span<const uint8_t> data) {
  constexpr uint8_t kPulseResetLine = 0xfe;
  if (base + offset == layout::kI8042CommandPort && !data.empty() && data[0] == kPulseResetLine) on_reset_();
}

}  // namespace hyper::devices
