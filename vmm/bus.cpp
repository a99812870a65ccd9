#include "vmm/bus.hpp"

#include <algorithm>

namespace hyper {

Status Bus::insert(std::shared_ptr<BusDevice> device, uint64_t base, uint64_t len) {
  if (len == 0 || base + len < base)
    return make_error(Errc::invalid_argument, name_ + " bus: empty or wrapping range");
  auto pos = std::lower_bound(ranges_.begin(), ranges_.end(), base,
                              [](const Range& r, uint64_t b) { return r.base < b; });
  const bool overlaps_next = pos != ranges_.end() && base + len > pos->base;
  const bool overlaps_prev = pos != ranges_.begin() && std::prev(pos)->base + std::prev(pos)->len > base;
  if (overlaps_next || overlaps_prev) {
    return make_error(Errc::invalid_argument, name_ + " bus: range [" + to_hex(base) + ", " + to_hex(base + len) +
                                                  ") overlaps an existing device");
  }
  ranges_.insert(pos, Range{base, len, std::move(device)});
  return {};
}

const Bus::Range* Bus::find(uint64_t addr, uint64_t len) const {
  auto pos = std::upper_bound(ranges_.begin(), ranges_.end(), addr,
                              [](uint64_t a, const Range& r) { return a < r.base; });
  if (pos == ranges_.begin()) return nullptr;
  const Range& r = *std::prev(pos);
  const uint64_t offset = addr - r.base;
  if (offset >= r.len || len > r.len - offset) return nullptr;
  return &r;
}

bool Bus::read(uint64_t addr, std::span<uint8_t> data) const {
  const Range* r = find(addr, data.size());
  if (!r) return false;
  r->device->read(r->base, addr - r->base, data);
  return true;
}

bool Bus::write(uint64_t addr, std::span<const uint8_t> data) const {
  const Range* r = find(addr, data.size());
  if (!r) return false;
  r->device->write(r->base, addr - r->base, data);
  return true;
}

}  // namespace hyper
