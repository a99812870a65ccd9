// The file a paused microVM is saved to and restored from: a header, a table of sections
// and the sections. Each state section (a vCPU's registers, the irqchip, a device) is
// checksummed; guest memory is one page-aligned section that a restore maps MAP_PRIVATE
// straight from the file, so VMs restored from one snapshot share its pages, and it is
// not checksummed (reading gigabytes would cost the milliseconds a restore is for).
//
// Layout (little-endian):
//   header   magic "HYPERSNP", version, arch, section count, table offset, file size,
//            header CRC-32
//   table    per section: kind, index, offset, size, CRC-32 (0 for memory), flags
//   sections in table order, each 8-byte aligned; memory 4 KiB-aligned
// A snapshot of another version or architecture, a truncated file, a section out of
// bounds or overlapping another, or a checksum that does not match is an error naming it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vmm/mapping.hpp"
#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::snapshot {

inline constexpr uint32_t kFormatVersion = 1;
inline constexpr uint64_t kMemoryAlignment = 4096;

enum class SectionKind : uint32_t {
  machine = 1,  // the machine's shape: memory size, vCPU count, devices
  vcpu = 2,     // one vCPU (index: its id)
  irqchip = 3,  // PIC, IOAPIC
  pit = 4,
  clock = 5,
  device = 6,   // one device (index: its slot)
  memory = 7,   // guest RAM, mapped on restore
};

const char* section_name(SectionKind kind);

struct SectionRef {
  SectionKind kind;
  uint32_t index;
  uint64_t offset, size;
  uint32_t crc;
};

// Builds a snapshot in memory, then writes it (state sections, then memory) to a file.
class Writer {
 public:
  void add(SectionKind kind, uint32_t index, std::span<const uint8_t> bytes);
  // Guest memory is written from `regions`, one after the other, as they are when write()
  // runs. Pages of zeros are left as holes in the file.
  void set_memory(std::vector<std::span<const uint8_t>> regions) { memory_ = std::move(regions); }
  // Writes to a temporary name beside `path`, fsyncs, renames: a crash leaves the old
  // file or none, never half a snapshot under the name.
  Status write(const std::filesystem::path& path) const;
  // The whole file in memory (tests, fuzz seeds).
  [[nodiscard]] std::vector<uint8_t> bytes() const;

 private:
  struct Pending {
    SectionKind kind;
    uint32_t index;
    std::vector<uint8_t> bytes;
  };
  [[nodiscard]] std::vector<uint8_t> head() const;  // header, table and state sections
  std::vector<Pending> sections_;
  [[nodiscard]] uint64_t memory_size() const;
  std::vector<std::span<const uint8_t>> memory_;
};

// The header and table of a snapshot, checked against the file's size. Parses bytes
// from anywhere (a file, a fuzzer); the state sections' checksums are checked by
// Reader, which has their bytes.
Result<std::vector<SectionRef>> parse_table(std::span<const uint8_t> head, uint64_t file_size);

// An opened snapshot: the table checked, the state sections read and checksummed.
class Reader {
 public:
  static Result<Reader> open(const std::filesystem::path& path);
  // From bytes (tests, fuzzing): the same checks, the memory section included in `file`.
  static Result<Reader> parse(std::span<const uint8_t> file);

  [[nodiscard]] const std::vector<SectionRef>& sections() const { return table_; }
  // The bytes of the state section (kind, index); an error naming it when absent.
  Result<std::span<const uint8_t>> section(SectionKind kind, uint32_t index = 0) const;
  // Where guest memory is in the file, to map it MAP_PRIVATE; nothing when none was saved.
  [[nodiscard]] std::optional<SectionRef> memory() const;
  // The file, for mapping memory (invalid for a Reader made by parse()).
  [[nodiscard]] int fd() const { return fd_.get(); }

 private:
  Reader() = default;
  static Result<Reader> from_table(std::vector<SectionRef> table, std::span<const uint8_t> file, uint64_t state_end);
  std::vector<SectionRef> table_;
  std::vector<uint8_t> state_;  // the file's first state_end bytes
  UniqueFd fd_;
};

}  // namespace hyper::snapshot
