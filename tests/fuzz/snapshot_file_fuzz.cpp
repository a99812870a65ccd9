// A snapshot file may be truncated, damaged or not a snapshot at all: parsing any bytes
// must end in a clear error or in sections that all lie inside the file. The seeds are
// Writer output: four state sections and a page of memory, and a clock section alone.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "vmm/snapshot_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> file(data, size);
  auto reader = hyper::snapshot::Reader::parse(file);
  if (!reader) return 0;
  for (const auto& ref : reader->sections()) {
    if (ref.offset > size || ref.size > size - ref.offset) std::abort();
    if (ref.kind != hyper::snapshot::SectionKind::memory && !reader->section(ref.kind, ref.index)) std::abort();
  }
  return 0;
}
