#include "vmm/guest_memory.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "vmm/file_io.hpp"
#include "vmm/layout.hpp"

namespace hyper {
namespace {

Error out_of_bounds(uint64_t gpa, uint64_t len) {
  return make_error(Errc::out_of_bounds, "guest-physical range [" + to_hex(gpa) + ", +" + to_hex(len) +
                                             ") is not inside guest memory");
}

// A memfd of `size` bytes whose size is sealed: a backend that could shrink it would turn
// our own accesses to the lost pages (and KVM's) into SIGBUS.
Result<UniqueFd> sealed_memfd(uint64_t size, bool hugepages) {
  unsigned flags = MFD_CLOEXEC | MFD_ALLOW_SEALING;
  if (hugepages) flags |= MFD_HUGETLB;  // the default huge page size, as MAP_HUGETLB for anonymous RAM
  UniqueFd fd(::memfd_create("hyper-guest-ram", flags));
  if (!fd.valid()) return Error::from_errno(hugepages ? "memfd_create(MFD_HUGETLB) for guest RAM" : "memfd_create for guest RAM");
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) < 0) return Error::from_errno("sizing the guest RAM memfd");
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
    return Error::from_errno("sealing the guest RAM memfd");
  return fd;
}

Result<MemoryRegion> create_region(const RegionSpec& spec, bool hugepages, MemoryBacking backing) {
  if (backing == MemoryBacking::anonymous) return MemoryRegion{spec.gpa, HYPER_TRY(Mapping::anonymous(spec.size, hugepages)), UniqueFd(), 0};
  auto fd = HYPER_TRY(sealed_memfd(spec.size, hugepages));
  auto mapping = HYPER_TRY(Mapping::shared_ram(fd.get(), spec.size, hugepages));
  return MemoryRegion{spec.gpa, std::move(mapping), std::move(fd), 0};
}

}  // namespace

Result<GuestMemory> GuestMemory::create(std::span<const RegionSpec> specs, bool hugepages, MemoryBacking backing) {
  std::vector<RegionSpec> sorted(specs.begin(), specs.end());
  std::sort(sorted.begin(), sorted.end(), [](auto& a, auto& b) { return a.gpa < b.gpa; });
  for (size_t i = 0; i < sorted.size(); ++i) {
    const auto& s = sorted[i];
    if (s.size == 0 || s.gpa % layout::kPageSize || s.size % layout::kPageSize)
      return make_error(Errc::invalid_argument, "memory region at " + to_hex(s.gpa) + " is empty or not page-aligned");
    if (s.gpa + s.size < s.gpa)
      return make_error(Errc::invalid_argument, "memory region at " + to_hex(s.gpa) + " wraps around");
    if (i > 0 && sorted[i - 1].gpa + sorted[i - 1].size > s.gpa)
      return make_error(Errc::invalid_argument, "memory regions overlap at " + to_hex(s.gpa));
  }
  std::vector<MemoryRegion> regions;
  for (const auto& s : sorted) regions.push_back(HYPER_TRY(create_region(s, hugepages, backing)));
  return GuestMemory(std::move(regions), hugepages, backing);
}

std::vector<RegionSpec> GuestMemory::x86_layout(uint64_t ram_bytes) {
  const uint64_t below_hole = std::min(ram_bytes, layout::kMmioHoleStart);
  std::vector<RegionSpec> specs{{0, below_hole}};
  if (ram_bytes > below_hole) specs.push_back({layout::kRamAbove4gStart, ram_bytes - below_hole});
  return specs;
}

uint64_t GuestMemory::total_size() const {
  uint64_t total = 0;
  for (const auto& r : regions_) total += r.size();
  return total;
}

Result<std::span<uint8_t>> GuestMemory::slice(uint64_t gpa, uint64_t len) const {
  for (const auto& r : regions_) {
    if (gpa < r.gpa || gpa > r.end() || (gpa == r.end() && len > 0)) continue;
    const uint64_t offset = gpa - r.gpa;
    if (len > r.size() - offset) break;  // crosses the end of the region
    return std::span<uint8_t>(r.mapping.data() + offset, len);
  }
  return out_of_bounds(gpa, len);
}

bool GuestMemory::contains(uint64_t gpa, uint64_t len) const { return slice(gpa, len).ok(); }

Status GuestMemory::read(uint64_t gpa, std::span<uint8_t> out) const {
  auto src = HYPER_TRY(slice(gpa, out.size()));
  std::memcpy(out.data(), src.data(), out.size());
  return {};
}

Status GuestMemory::write(uint64_t gpa, std::span<const uint8_t> in) const {
  auto dst = HYPER_TRY(slice(gpa, in.size()));
  std::memcpy(dst.data(), in.data(), in.size());
  return {};
}

Status GuestMemory::fill(uint64_t gpa, uint64_t len, uint8_t value) const {
  auto dst = HYPER_TRY(slice(gpa, len));
  std::memset(dst.data(), value, len);
  return {};
}

Status GuestMemory::read_from_fd(uint64_t gpa, int fd, uint64_t offset, uint64_t len) const {
  auto dst = HYPER_TRY(slice(gpa, len));
  return read_exact_at(fd, dst, offset);
}

Status GuestMemory::load_from_fd(uint64_t gpa, int fd, uint64_t offset, uint64_t len) const {
  const uint64_t page = layout::kPageSize;
  if (hugepages_ || shareable() || gpa % page || offset % page || len == 0) return read_from_fd(gpa, fd, offset, len);
  const uint64_t mapped = (len + page - 1) & ~(page - 1);
  auto dst = HYPER_TRY(slice(gpa, mapped));
  void* p = ::mmap(dst.data(), mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, static_cast<off_t>(offset));
  if (p == MAP_FAILED) return Error::from_errno("mapping a file into guest memory");
  // Bytes past the end of what was asked for are guest RAM, and RAM starts zeroed.
  // (Past the end of the file, the mapping reads zeros anyway.)
  if (mapped > len) std::memset(dst.data() + len, 0, mapped - len);
  return {};
}

}  // namespace hyper
