// Guest RAM and the one API through which every guest-physical access goes.
// Each access is checked against the region bounds (with overflow-safe arithmetic), so
// no caller ever computes a host pointer from a guest-controlled value itself.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "vmm/mapping.hpp"
#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper {

struct RegionSpec {
  uint64_t gpa;
  uint64_t size;
};

// How guest RAM is backed.
enum class MemoryBacking {
  // Private anonymous memory (the default): the kernel and initrd can be mapped into it
  // copy-on-write, and transparent huge pages back it.
  anonymous,
  // One sealed memfd per region (MFD_HUGETLB with hugepages), mapped shared, so that a
  // process outside the VMM (a vhost-user backend) can map the same pages.
  shared_memfd,
};

struct MemoryRegion {
  uint64_t gpa;
  Mapping mapping;
  // MemoryBacking::shared_memfd only: the memfd holding the region, and where in it the
  // region starts. Its size is sealed, so no one can shrink it under our mapping.
  UniqueFd fd;
  uint64_t fd_offset = 0;
  [[nodiscard]] uint64_t size() const { return mapping.size(); }
  [[nodiscard]] uint64_t end() const { return gpa + mapping.size(); }
};

class GuestMemory {
 public:
  // Regions must be page-aligned, non-empty and must not overlap (and 2 MiB-aligned with
  // hugepages and shared_memfd).
  static Result<GuestMemory> create(std::span<const RegionSpec> specs, bool hugepages = false,
                                    MemoryBacking backing = MemoryBacking::anonymous);
  // The standard x86 layout for `ram_bytes` of RAM: below the MMIO hole, then above 4 GiB.
  static std::vector<RegionSpec> x86_layout(uint64_t ram_bytes);

  [[nodiscard]] const std::vector<MemoryRegion>& regions() const { return regions_; }
  [[nodiscard]] uint64_t total_size() const;
  // Whether every region has a memfd another process can map (MemoryBacking::shared_memfd).
  [[nodiscard]] bool shareable() const { return backing_ == MemoryBacking::shared_memfd; }

  // A host view of [gpa, gpa+len) when it lies entirely inside one region.
  [[nodiscard]] Result<std::span<uint8_t>> slice(uint64_t gpa, uint64_t len) const;
  [[nodiscard]] bool contains(uint64_t gpa, uint64_t len) const;

  [[nodiscard]] Status read(uint64_t gpa, std::span<uint8_t> out) const;
  [[nodiscard]] Status write(uint64_t gpa, std::span<const uint8_t> in) const;
  [[nodiscard]] Status fill(uint64_t gpa, uint64_t len, uint8_t value) const;
  // Reads `len` bytes of file `fd` at `offset` straight into guest memory.
  [[nodiscard]] Status read_from_fd(uint64_t gpa, int fd, uint64_t offset, uint64_t len) const;
  // Puts `len` bytes of `fd` at `offset` into guest memory at `gpa` without copying: the
  // file is mapped copy-on-write over guest RAM, so pages are read on first guest access
  // and shared with the page cache (and with every other VM booting the same file).
  // Falls back to read_from_fd when the addresses are not page-aligned, RAM is hugetlbfs
  // or RAM is shareable (a private mapping would hide those pages from the other process,
  // which would go on seeing zeros). The file must not be modified in place while the VM
  // runs (replacing it by rename is fine). Call before vCPUs run.
  [[nodiscard]] Status load_from_fd(uint64_t gpa, int fd, uint64_t offset, uint64_t len) const;

  template <class T>
  [[nodiscard]] Result<T> read_obj(uint64_t gpa) const {
    static_assert(std::is_trivially_copyable_v<T>);
    T value;
    HYPER_CHECK(read(gpa, {reinterpret_cast<uint8_t*>(&value), sizeof(T)}));
    return value;
  }
  template <class T>
  [[nodiscard]] Status write_obj(uint64_t gpa, const T& value) const {
    static_assert(std::is_trivially_copyable_v<T>);
    return write(gpa, {reinterpret_cast<const uint8_t*>(&value), sizeof(T)});
  }

 private:
  GuestMemory(std::vector<MemoryRegion> regions, bool hugepages, MemoryBacking backing)
      : regions_(std::move(regions)), hugepages_(hugepages), backing_(backing) {}
  std::vector<MemoryRegion> regions_;
  bool hugepages_;
  MemoryBacking backing_;
};

}  // namespace hyper
