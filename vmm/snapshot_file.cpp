#include "vmm/snapshot_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <utility>

#include "vmm/file_io.hpp"

namespace hyper::snapshot {
namespace {

constexpr char kMagic[8] = {'H', 'Y', 'P', 'E', 'R', 'S', 'N', 'P'};
constexpr uint32_t kArchX86_64 = 1;
constexpr size_t kHeaderSize = 64;
constexpr size_t kEntrySize = 40;
constexpr uint32_t kMaxSections = 4096;
constexpr uint64_t kSectionAlignment = 8;

// Header fields.
constexpr size_t kVersionAt = 8, kArchAt = 12, kCountAt = 16, kTableAt = 24, kFileSizeAt = 32, kTableCrcAt = 40,
                 kHeaderCrcAt = 44;

Error bad(const std::string& what) { return make_error(Errc::bad_image, "snapshot: " + what); }

uint32_t crc_of(std::span<const uint8_t> bytes) {
  uLong crc = ::crc32(0L, Z_NULL, 0);
  // zlib takes a uInt length: feed it in pieces a uInt can count.
  constexpr size_t kPiece = 1u << 30;
  for (size_t at = 0; at < bytes.size(); at += kPiece)
    crc = ::crc32(crc, bytes.data() + at, static_cast<uInt>(std::min(kPiece, bytes.size() - at)));
  return static_cast<uint32_t>(crc);
}

template <class T>
T load(std::span<const uint8_t> bytes, size_t at) {
  T value;
  std::memcpy(&value, bytes.data() + at, sizeof value);
  return value;  // the format is little-endian, as every host this VMM runs on
}

template <class T>
void store(std::vector<uint8_t>& bytes, size_t at, T value) {
  std::memcpy(bytes.data() + at, &value, sizeof value);
}

uint64_t align_up(uint64_t value, uint64_t alignment) { return (value + alignment - 1) / alignment * alignment; }

bool known_kind(uint32_t kind) {
  return kind >= static_cast<uint32_t>(SectionKind::machine) && kind <= static_cast<uint32_t>(SectionKind::memory);
}

std::string describe(const SectionRef& ref) {
  return std::string(section_name(ref.kind)) + " section " + std::to_string(ref.index);
}

Status check_header(std::span<const uint8_t> head, uint64_t file_size) {
  if (head.size() < kHeaderSize || file_size < kHeaderSize) return bad("the file is too short for a header (truncated?)");
  if (std::memcmp(head.data(), kMagic, sizeof kMagic) != 0) return bad("not a hyper snapshot (bad magic)");
  std::vector<uint8_t> header(head.begin(), head.begin() + kHeaderSize);
  store<uint32_t>(header, kHeaderCrcAt, 0);
  if (crc_of(header) != load<uint32_t>(head, kHeaderCrcAt)) return bad("the header's checksum does not match");
  if (const auto version = load<uint32_t>(head, kVersionAt); version != kFormatVersion)
    return bad("format version " + std::to_string(version) + ", this VMM reads version " + std::to_string(kFormatVersion));
  if (load<uint32_t>(head, kArchAt) != kArchX86_64) return bad("saved on another architecture");
  if (load<uint64_t>(head, kFileSizeAt) != file_size)
    return bad("the file has " + std::to_string(file_size) + " bytes, its header says " +
               std::to_string(load<uint64_t>(head, kFileSizeAt)) + " (truncated or appended to)");
  if (load<uint32_t>(head, kCountAt) > kMaxSections) return bad("too many sections");
  if (load<uint64_t>(head, kTableAt) != kHeaderSize) return bad("the section table is not where it belongs");
  return {};
}

Result<SectionRef> parse_entry(std::span<const uint8_t> entry, uint64_t data_start, uint64_t file_size) {
  const uint32_t kind = load<uint32_t>(entry, 0);
  if (!known_kind(kind)) return bad("unknown section kind " + std::to_string(kind));
  SectionRef ref{static_cast<SectionKind>(kind), load<uint32_t>(entry, 4), load<uint64_t>(entry, 8),
                 load<uint64_t>(entry, 16), load<uint32_t>(entry, 24)};
  const uint64_t alignment = ref.kind == SectionKind::memory ? kMemoryAlignment : kSectionAlignment;
  if (ref.offset < data_start || ref.offset % alignment != 0 || ref.size > file_size || ref.offset > file_size - ref.size)
    return bad(describe(ref) + " lies outside the file (truncated?)");
  return ref;
}

uint64_t table_end(uint32_t count) { return kHeaderSize + uint64_t{count} * kEntrySize; }

}  // namespace

const char* section_name(SectionKind kind) {
  switch (kind) {
    case SectionKind::machine: return "machine";
    case SectionKind::vcpu: return "vcpu";
    case SectionKind::irqchip: return "irqchip";
    case SectionKind::pit: return "pit";
    case SectionKind::clock: return "clock";
    case SectionKind::device: return "device";
    case SectionKind::memory: return "memory";
  }
  return "unknown";
}

Result<std::vector<SectionRef>> parse_table(std::span<const uint8_t> head, uint64_t file_size) {
  HYPER_CHECK(check_header(head, file_size));
  const uint32_t count = load<uint32_t>(head, kCountAt);
  const uint64_t data_start = table_end(count);
  if (head.size() < data_start || file_size < data_start) return bad("the file is too short for its section table (truncated?)");
  if (crc_of(head.subspan(kHeaderSize, data_start - kHeaderSize)) != load<uint32_t>(head, kTableCrcAt))
    return bad("the section table's checksum does not match");
  std::vector<SectionRef> table;
  std::set<std::pair<SectionKind, uint32_t>> seen;
  uint64_t next = data_start;
  for (uint32_t i = 0; i < count; ++i) {
    const SectionRef ref = HYPER_TRY(parse_entry(head.subspan(kHeaderSize + i * kEntrySize, kEntrySize), data_start, file_size));
    if (ref.offset < next) return bad(describe(ref) + " overlaps the one before it");
    if (!seen.insert({ref.kind, ref.index}).second) return bad(describe(ref) + " appears twice");
    if (!table.empty() && table.back().kind == SectionKind::memory) return bad("memory must be the last section");
    next = ref.offset + ref.size;
    table.push_back(ref);
  }
  return table;
}

void Writer::add(SectionKind kind, uint32_t index, std::span<const uint8_t> bytes) {
  sections_.push_back({kind, index, std::vector<uint8_t>(bytes.begin(), bytes.end())});
}

std::vector<uint8_t> Writer::head() const {
  const uint64_t memory_bytes = memory_size();
  const auto count = static_cast<uint32_t>(sections_.size() + (memory_bytes ? 1 : 0));
  std::vector<uint8_t> out(table_end(count));
  std::vector<SectionRef> table;
  for (const auto& section : sections_) {
    const uint64_t offset = align_up(out.size(), kSectionAlignment);
    out.resize(offset);
    out.insert(out.end(), section.bytes.begin(), section.bytes.end());
    table.push_back({section.kind, section.index, offset, section.bytes.size(), crc_of(section.bytes)});
  }
  uint64_t file_size = out.size();
  if (memory_bytes) {
    const uint64_t offset = align_up(out.size(), kMemoryAlignment);
    table.push_back({SectionKind::memory, 0, offset, memory_bytes, 0});
    file_size = offset + memory_bytes;
  }
  for (size_t i = 0; i < table.size(); ++i) {
    const size_t at = kHeaderSize + i * kEntrySize;
    store<uint32_t>(out, at, static_cast<uint32_t>(table[i].kind));
    store<uint32_t>(out, at + 4, table[i].index);
    store<uint64_t>(out, at + 8, table[i].offset);
    store<uint64_t>(out, at + 16, table[i].size);
    store<uint32_t>(out, at + 24, table[i].crc);
  }
  std::memcpy(out.data(), kMagic, sizeof kMagic);
  store<uint32_t>(out, kVersionAt, kFormatVersion);
  store<uint32_t>(out, kArchAt, kArchX86_64);
  store<uint32_t>(out, kCountAt, count);
  store<uint64_t>(out, kTableAt, kHeaderSize);
  store<uint64_t>(out, kFileSizeAt, file_size);
  store<uint32_t>(out, kTableCrcAt, crc_of(std::span(out).subspan(kHeaderSize, table_end(count) - kHeaderSize)));
  store<uint32_t>(out, kHeaderCrcAt, crc_of(std::span(out).first(kHeaderSize)));
  return out;
}

uint64_t Writer::memory_size() const {
  uint64_t total = 0;
  for (const auto& region : memory_) total += region.size();
  return total;
}

std::vector<uint8_t> Writer::bytes() const {
  std::vector<uint8_t> out = head();
  if (memory_size()) out.resize(align_up(out.size(), kMemoryAlignment));
  for (const auto& region : memory_) out.insert(out.end(), region.begin(), region.end());
  return out;
}

namespace {

bool all_zero(std::span<const uint8_t> bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](uint8_t b) { return b == 0; });
}

// Writes `bytes` at `offset`, leaving holes where whole pages are zero: a freshly booted
// guest's memory is mostly untouched, and holes cost neither disk nor write time.
Status write_sparse(int fd, uint64_t offset, std::span<const uint8_t> bytes, const std::string& name) {
  constexpr size_t kPage = 4096;
  size_t run_start = 0;
  const auto flush = [&](size_t end) -> Status {
    if (end == run_start) return {};
    const auto chunk = bytes.subspan(run_start, end - run_start);
    for (size_t done = 0; done < chunk.size();) {
      const ssize_t n = ::pwrite(fd, chunk.data() + done, chunk.size() - done, static_cast<off_t>(offset + run_start + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Error::from_errno("write " + name);
      done += static_cast<size_t>(n);
    }
    return {};
  };
  for (size_t at = 0; at < bytes.size(); at += kPage) {
    const auto page = bytes.subspan(at, std::min(kPage, bytes.size() - at));
    if (!all_zero(page)) continue;
    HYPER_CHECK(flush(at));
    run_start = at + page.size();
  }
  return flush(bytes.size());
}

}  // namespace

Status Writer::write(const std::filesystem::path& path) const {
  const std::filesystem::path partial = path.string() + ".partial";
  UniqueFd fd(::open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) return Error::from_errno("create " + partial.string());
  const std::vector<uint8_t> state = head();
  auto written = [&]() -> Status {
    HYPER_CHECK(write_all(fd.get(), state.data(), state.size(), partial.string()));
    if (memory_size()) {
      uint64_t offset = align_up(state.size(), kMemoryAlignment);
      for (const auto& region : memory_) {
        HYPER_CHECK(write_sparse(fd.get(), offset, region, partial.string()));
        offset += region.size();
      }
      // Trailing zero pages are a hole too, but the file must reach its full size.
      if (::ftruncate(fd.get(), static_cast<off_t>(offset)) != 0) return Error::from_errno("truncate " + partial.string());
    }
    if (::fsync(fd.get()) != 0) return Error::from_errno("fsync " + partial.string());
    if (::rename(partial.c_str(), path.c_str()) != 0) return Error::from_errno("rename to " + path.string());
    return {};
  }();
  if (!written.ok()) ::unlink(partial.c_str());
  return written;
}

Result<Reader> Reader::from_table(std::vector<SectionRef> table, std::span<const uint8_t> file, uint64_t state_end) {
  Reader reader;
  reader.state_.assign(file.begin(), file.begin() + static_cast<ptrdiff_t>(state_end));
  for (const auto& ref : table)
    if (ref.kind != SectionKind::memory &&
        crc_of(std::span(reader.state_).subspan(ref.offset, ref.size)) != ref.crc)
      return bad(describe(ref) + ": the checksum does not match (the file is damaged)");
  reader.table_ = std::move(table);
  return reader;
}

namespace {

// Where the state sections end: what a Reader keeps in memory.
uint64_t state_end_of(const std::vector<SectionRef>& table, uint32_t count) {
  uint64_t end = table_end(count);
  for (const auto& ref : table)
    if (ref.kind != SectionKind::memory) end = std::max(end, ref.offset + ref.size);
  return end;
}

Result<std::vector<uint8_t>> read_at_start(int fd, uint64_t size, const std::string& path) {
  std::vector<uint8_t> bytes(size);
  const ssize_t n = ::pread(fd, bytes.data(), bytes.size(), 0);
  if (n < 0) return Error::from_errno("read " + path);
  bytes.resize(static_cast<size_t>(n));
  return bytes;
}

}  // namespace

Result<Reader> Reader::parse(std::span<const uint8_t> file) {
  std::vector<SectionRef> table = HYPER_TRY(parse_table(file, file.size()));
  const uint64_t end = state_end_of(table, static_cast<uint32_t>(table.size()));
  return from_table(std::move(table), file, end);
}

Result<Reader> Reader::open(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Error::from_errno("open snapshot " + path.string());
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) return Error::from_errno("stat " + path.string());
  const auto file_size = static_cast<uint64_t>(st.st_size);
  const std::vector<uint8_t> header = HYPER_TRY(read_at_start(fd.get(), kHeaderSize, path.string()));
  HYPER_CHECK(check_header(header, file_size));
  const uint32_t count = load<uint32_t>(header, kCountAt);
  const std::vector<uint8_t> head = HYPER_TRY(read_at_start(fd.get(), table_end(count), path.string()));
  std::vector<SectionRef> table = HYPER_TRY(parse_table(head, file_size));
  const uint64_t end = state_end_of(table, count);
  const std::vector<uint8_t> state = HYPER_TRY(read_at_start(fd.get(), end, path.string()));
  if (state.size() != end) return bad("the file ended while reading its state (truncated?)");
  Reader reader = HYPER_TRY(from_table(std::move(table), state, end));
  reader.fd_ = std::move(fd);
  return reader;
}

Result<std::span<const uint8_t>> Reader::section(SectionKind kind, uint32_t index) const {
  for (const auto& ref : table_)
    if (ref.kind == kind && ref.index == index && kind != SectionKind::memory)
      return std::span<const uint8_t>(state_).subspan(ref.offset, ref.size);
  return bad(std::string("no ") + section_name(kind) + " section " + std::to_string(index));
}

std::optional<SectionRef> Reader::memory() const {
  if (!table_.empty() && table_.back().kind == SectionKind::memory) return table_.back();
  return std::nullopt;
}

}  // namespace hyper::snapshot
