#include "vmm/mapping.hpp"

#include <sys/mman.h>

#include <string>

namespace hyper {

Mapping& Mapping::operator=(Mapping&& other) noexcept {
  if (this != &other) {
    if (addr_) ::munmap(addr_, size_);
    addr_ = std::exchange(other.addr_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

Mapping::~Mapping() {
  if (addr_) ::munmap(addr_, size_);
}

Result<Mapping> Mapping::anonymous(size_t size, bool hugepages) {
  constexpr size_t kHugePage = 2 << 20;
  if (hugepages) {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
    if (p == MAP_FAILED)
      return Error::from_errno("mmap of " + std::to_string(size >> 20) + " MiB of huge pages (is vm.nr_hugepages large enough?)");
    return Mapping(p, size);
  }
  // Map 2 MiB more than asked and trim, so the memory is 2 MiB-aligned and transparent
  // huge pages can back it: copying a kernel in then takes a few faults, not thousands.
  const size_t padded = size + kHugePage;
  void* raw = ::mmap(nullptr, padded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return Error::from_errno("mmap of " + std::to_string(size >> 20) + " MiB");
  const auto base = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (base + kHugePage - 1) & ~(kHugePage - 1);
  if (aligned > base) ::munmap(raw, aligned - base);
  const uintptr_t end = aligned + size;
  if (base + padded > end) ::munmap(reinterpret_cast<void*>(end), base + padded - end);
  ::madvise(reinterpret_cast<void*>(aligned), size, MADV_HUGEPAGE);  // advice only: fine if refused
  return Mapping(reinterpret_cast<void*>(aligned), size);
}

Result<Mapping> Mapping::shared_fd(int fd, size_t size, off_t offset) {
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, offset);
  if (p == MAP_FAILED) return Error::from_errno("mmap of fd " + std::to_string(fd));
  return Mapping(p, size);
}

Result<Mapping> Mapping::shared_ram(int fd, size_t size, bool hugepages) {
  constexpr size_t kHugePage = 2 << 20;
  // Huge pages are reserved at mmap (no MAP_NORESERVE), so too few fail here, not later
  // with a SIGBUS; hugetlbfs places the mapping at a huge-page boundary itself.
  if (hugepages) {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
      return Error::from_errno("mmap of " + std::to_string(size >> 20) + " MiB of shared huge pages (is vm.nr_hugepages large enough?)");
    return Mapping(p, size);
  }
  const int shared = MAP_SHARED | MAP_NORESERVE;
  // Reserve 2 MiB more address space than needed, put the file at the first 2 MiB
  // boundary in it and give the rest back.
  const size_t padded = size + kHugePage;
  void* raw = ::mmap(nullptr, padded, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return Error::from_errno("reserving " + std::to_string(size >> 20) + " MiB of address space");
  const auto base = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (base + kHugePage - 1) & ~(kHugePage - 1);
  void* p = ::mmap(reinterpret_cast<void*>(aligned), size, PROT_READ | PROT_WRITE, shared | MAP_FIXED, fd, 0);
  if (p == MAP_FAILED) {
    const int err = errno;
    ::munmap(raw, padded);
    return Error::from_errno("mmap of " + std::to_string(size >> 20) + " MiB of shared memory", err);
  }
  if (aligned > base) ::munmap(raw, aligned - base);
  const uintptr_t end = aligned + size;
  if (base + padded > end) ::munmap(reinterpret_cast<void*>(end), base + padded - end);
  ::madvise(p, size, MADV_HUGEPAGE);  // advice only: shmem uses huge pages only if the host allows
  return Mapping(p, size);
}

Result<Mapping> Mapping::read_only_file(int fd, size_t size) {
  if (size == 0) return Mapping();
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (p == MAP_FAILED) return Error::from_errno("mmap of file");
  return Mapping(p, size);
}

}  // namespace hyper
