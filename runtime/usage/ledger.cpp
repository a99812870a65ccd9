#include "runtime/usage/ledger.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <optional>
#include <string_view>

#include "runtime/container_store.hpp"
#include "runtime/image_blobs.hpp"

namespace hyper::runtime::usage {
namespace {

namespace fs = std::filesystem;

constexpr size_t kRunIdDigits = 16;
constexpr size_t kContainerIdDigits = 64;
constexpr size_t kCrcDigits = 8;
constexpr size_t kSlotBytes = 32;
constexpr size_t kSecondsDigits = kSlotBytes - 1 - kCrcDigits - 1;  // "<digits> <crc>\n"
constexpr size_t kReadChunk = 64 * 1024;

// CRC-32 (IEEE 802.3), bit by bit: lines are short and written once a run or a second.
uint32_t crc32(std::string_view bytes) {
  uint32_t crc = 0xffffffffu;
  for (const char c : bytes) {
    crc ^= static_cast<unsigned char>(c);
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

std::string crc_text(std::string_view bytes) {
  char text[kCrcDigits + 1];
  std::snprintf(text, sizeof text, "%08" PRIx32, crc32(bytes));
  return text;
}

std::string with_crc(const std::string& body) { return body + " " + crc_text(body) + "\n"; }

bool is_hex_of(std::string_view text, size_t digits) { return text.size() == digits && blobs::is_lower_hex(text); }

// Decimal digits only: no sign, no spaces, the whole field.
template <class T>
std::optional<T> number(std::string_view text) {
  T value{};
  if (text.empty() || text[0] < '0' || text[0] > '9') return std::nullopt;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// What `line` without its checksum says, when the checksum matches.
std::optional<std::string_view> checked_body(std::string_view line) {
  if (line.size() < kCrcDigits + 2 || line[line.size() - kCrcDigits - 1] != ' ') return std::nullopt;
  const std::string_view body = line.substr(0, line.size() - kCrcDigits - 1);
  if (line.substr(line.size() - kCrcDigits) != crc_text(body)) return std::nullopt;
  return body;
}

struct Record {
  char kind;  // 'S' (the whole run), 'E' (run.run and run.seconds)
  Run run;
};

std::optional<Record> parse_record(std::string_view line) {
  const auto body = checked_body(line);
  if (!body) return std::nullopt;
  const auto fields = blobs::split(*body, ' ');
  if (fields[0] == "S" && fields.size() == 7) {
    Record record{'S', Run{}};
    Run& run = record.run;
    const auto start = number<int64_t>(fields[2]);
    const auto vcpus = number<uint32_t>(fields[4]);
    const auto memory = number<uint64_t>(fields[5]);
    if (!is_hex_of(fields[1], kRunIdDigits) || !start || !is_hex_of(fields[3], kContainerIdDigits) || !vcpus ||
        !memory || fields[6].empty())
      return std::nullopt;
    run.run = fields[1], run.start = *start, run.container_id = fields[3], run.name = fields[6];
    run.vcpus = *vcpus, run.memory_mib = *memory;
    return record;
  }
  if (fields[0] == "E" && fields.size() == 3) {
    const auto seconds = number<uint64_t>(fields[2]);
    if (!is_hex_of(fields[1], kRunIdDigits) || !seconds) return std::nullopt;
    Record record{'E', Run{}};
    record.run.run = fields[1], record.run.seconds = *seconds;
    return record;
  }
  return std::nullopt;
}

// A writer killed mid-line leaves no newline, so the next writer's record may follow
// the torn one on the same line: it is the line's valid tail.
std::optional<Record> parse_line(std::string_view line) {
  if (auto record = parse_record(line)) return record;
  for (size_t at = line.find_first_of("SE", 1); at != std::string_view::npos; at = line.find_first_of("SE", at + 1)) {
    if (at + 1 < line.size() && line[at + 1] == ' ')
      if (auto record = parse_record(line.substr(at))) return record;
  }
  return std::nullopt;
}

// Calls `visit` with each whole line of `path`; what follows the last newline is a
// record being written or one a crash cut short. A missing file has no lines.
template <class Visit>
Status for_each_line(const fs::path& path, Visit visit) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return errno == ENOENT ? Status{} : Status{Error::from_errno("open " + path.string())};
  std::string pending;
  std::string chunk(kReadChunk, '\0');
  for (;;) {
    const ssize_t n = ::read(fd.get(), chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno("read " + path.string());
    if (n == 0) return {};
    pending.append(chunk.data(), static_cast<size_t>(n));
    size_t from = 0;
    for (size_t newline; (newline = pending.find('\n', from)) != std::string::npos; from = newline + 1)
      visit(std::string_view(pending).substr(from, newline - from));
    pending.erase(0, from);
  }
}

std::string slot_text(uint64_t seconds) {
  char digits[kSecondsDigits + 1];
  std::snprintf(digits, sizeof digits, "%0*" PRIu64, static_cast<int>(kSecondsDigits), seconds);
  return with_crc(digits);
}

// The larger of the heartbeat's valid slots; none when neither is (a run killed before
// its first write landed).
std::optional<uint64_t> read_heartbeat(const fs::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return std::nullopt;
  char bytes[2 * kSlotBytes];
  ssize_t n;
  while ((n = ::pread(fd.get(), bytes, sizeof bytes, 0)) < 0 && errno == EINTR) {
  }
  std::optional<uint64_t> seconds;
  for (size_t at = 0; n > 0 && at + kSlotBytes <= static_cast<size_t>(n); at += kSlotBytes) {
    const std::string_view slot(bytes + at, kSlotBytes);
    if (slot.back() != '\n') continue;
    const auto body = checked_body(slot.substr(0, kSlotBytes - 1));
    const auto value = body ? number<uint64_t>(*body) : std::nullopt;
    if (value && (!seconds || *value > *seconds)) seconds = value;
  }
  return seconds;
}

// Every heartbeat's seconds, by run.
std::map<std::string, uint64_t> read_heartbeats(const fs::path& dir) {
  std::map<std::string, uint64_t> beats;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string run = entry.path().filename().string();
    if (!is_hex_of(run, kRunIdDigits)) continue;
    if (const auto seconds = read_heartbeat(entry.path())) beats[run] = *seconds;
  }
  return beats;
}

Status create_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Error::from_errno("create " + dir.string(), ec.value());
  return {};
}

}  // namespace

std::string start_record(const Run& run) {
  // A name is one field; names are Docker's [a-zA-Z0-9][a-zA-Z0-9_.-]+, never empty.
  const std::string name = valid_name(run.name) ? run.name : "-";
  return with_crc("S " + run.run + " " + std::to_string(run.start) + " " + run.container_id + " " +
                  std::to_string(run.vcpus) + " " + std::to_string(run.memory_mib) + " " + name);
}

std::string end_record(const std::string& run, uint64_t seconds) {
  return with_crc("E " + run + " " + std::to_string(seconds));
}

Result<Ledger> Ledger::open(const fs::path& dir) {
  HYPER_CHECK(create_dir(dir));
  const fs::path path = dir / kLedgerFile;
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600));
  if (!fd.valid()) return Error::from_errno("open " + path.string());
  return Ledger(std::move(fd));
}

Status Ledger::append(const std::string& line) const {
  // Never the rest of a short write: a second write(2) could land after another
  // writer's line. What was written is a torn line, which readers skip.
  ssize_t n;
  while ((n = ::write(fd_.get(), line.data(), line.size())) < 0 && errno == EINTR) {
  }
  if (n < 0) return Error::from_errno("write the usage ledger");
  if (static_cast<size_t>(n) != line.size())
    return make_error(Errc::io, "write the usage ledger: " + std::to_string(n) + " of " + std::to_string(line.size()) +
                                    " bytes written");
  if (::fdatasync(fd_.get()) != 0) return Error::from_errno("sync the usage ledger");
  return {};
}

Result<Heartbeat> Heartbeat::create(const fs::path& dir, const std::string& run) {
  const fs::path runs = dir / kRunsDir;
  HYPER_CHECK(create_dir(runs));
  const fs::path path = runs / run;
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd.valid()) return Error::from_errno("create " + path.string());
  Heartbeat heartbeat(path, std::move(fd));
  HYPER_CHECK(heartbeat.beat(0));
  HYPER_CHECK(heartbeat.beat(0));  // both slots: the file has its full size from now on
  // Its name too must survive a crash, or the seconds it will hold would.
  HYPER_CHECK(blobs::sync_dir(runs));
  return heartbeat;
}

Status Heartbeat::beat(uint64_t seconds) {
  const std::string slot = slot_text(seconds);
  const uint64_t offset = (writes_++ % 2) * kSlotBytes;
  ssize_t n;
  while ((n = ::pwrite(fd_.get(), slot.data(), slot.size(), static_cast<off_t>(offset))) < 0 && errno == EINTR) {
  }
  if (n != static_cast<ssize_t>(slot.size())) return Error::from_errno("write " + path_.string());
  if (::fdatasync(fd_.get()) != 0) return Error::from_errno("sync " + path_.string());
  return {};
}

Status Heartbeat::remove() {
  fd_.reset();
  if (::unlink(path_.c_str()) != 0 && errno != ENOENT) return Error::from_errno("remove " + path_.string());
  return {};
}

Result<std::string> new_run_id() { return blobs::random_hex(kRunIdDigits / 2); }

Result<std::vector<Run>> read_runs(const fs::path& dir) {
  // Heartbeats before the ledger: a run that ends in between has its E record in the
  // ledger by then (written before its heartbeat goes), so no run is read as neither.
  const auto beats = read_heartbeats(dir / kRunsDir);
  std::vector<Run> runs;
  std::map<std::string, size_t> by_id;
  std::map<std::string, uint64_t> ends;
  HYPER_CHECK(for_each_line(dir / kLedgerFile, [&](std::string_view line) {
    auto record = parse_line(line);
    if (!record) return;
    if (record->kind == 'E') {
      uint64_t& seconds = ends[record->run.run];
      seconds = std::max(seconds, record->run.seconds);
    } else if (by_id.emplace(record->run.run, runs.size()).second) {
      runs.push_back(std::move(record->run));
    }
  }));
  for (Run& run : runs) {
    if (const auto end = ends.find(run.run); end != ends.end()) {
      run.seconds = end->second, run.ended = true;
    } else if (const auto beat = beats.find(run.run); beat != beats.end()) {
      run.seconds = beat->second;
    }
  }
  return runs;
}

}  // namespace hyper::runtime::usage
