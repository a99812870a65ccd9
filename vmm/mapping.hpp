// Owning memory mapping (mmap/munmap).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

#include "vmm/result.hpp"

namespace hyper {

class Mapping {
 public:
  Mapping() = default;
  Mapping(Mapping&& other) noexcept
      : addr_(std::exchange(other.addr_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  Mapping& operator=(Mapping&& other) noexcept;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping();

  // Private anonymous memory, zero-filled; `hugepages` asks for 2 MiB pages (MAP_HUGETLB).
  static Result<Mapping> anonymous(size_t size, bool hugepages = false);
  // A shared mapping of an fd (used for the vCPU's kvm_run page).
  static Result<Mapping> shared_fd(int fd, size_t size, off_t offset = 0);
  // The first `size` bytes of `fd` (a memfd other processes may map too), shared and
  // 2 MiB-aligned as anonymous() is; `hugepages` when the fd is on hugetlbfs.
  static Result<Mapping> shared_ram(int fd, size_t size, bool hugepages);
  // A read-only private mapping of a whole file; an empty file gives an empty mapping.
  static Result<Mapping> read_only_file(int fd, size_t size);

  [[nodiscard]] uint8_t* data() const noexcept { return static_cast<uint8_t*>(addr_); }
  [[nodiscard]] size_t size() const noexcept { return size_; }
  [[nodiscard]] std::span<uint8_t> bytes() const noexcept { return {data(), size_}; }

 private:
  Mapping(void* addr, size_t size) : addr_(addr), size_(size) {}
  void* addr_ = nullptr;
  size_t size_ = 0;
};

}  // namespace hyper
