// The usage ledger: what each run of each container held (vCPUs, memory) and for how
// many seconds, kept so that a crash of the process metering a run (kill -9 of its
// monitor, the OOM killer) loses at most that run's last second.
//
//   <root>/usage/ledger      append-only, one record a line:
//     S <run> <start> <container id> <vcpus> <memory MiB> <name> <crc>   a run began
//     E <run> <seconds> <crc>                                            it ended after <seconds>
//   <root>/usage/runs/<run>  a run's heartbeat while it runs: its running seconds, rewritten
//                            in place every second; removed once its E record is written
//
// <run> is 16 random hex digits naming one run (a container runs again at each `start`),
// <start> is Unix seconds, and the run covers [start, start + seconds). <crc> is the
// CRC-32 of the line before the space that precedes it, as 8 hex digits.
//
// Why a heartbeat file rather than a tick line a second in the ledger: ticks would grow
// the ledger by about 35 bytes a second for every running container (3 MB a day, a GB a
// year each) and every report would read them all; this way the ledger grows by two
// short lines a run, and a report reads it plus one 64-byte file per running (or killed)
// run. The crash guarantee is the same: the heartbeat is fdatasync'ed every second, and a
// run without an E record (its monitor killed) counts the seconds of its heartbeat. The
// heartbeat of a killed run stays, so that those seconds stay counted.
//
// Every ledger record is one write(2) of a whole line to an O_APPEND descriptor, then
// fdatasync: appends to a regular file do not interleave, so concurrent monitors never mix
// their lines, and a record is on disk before the run goes on. A line whose checksum does
// not match is skipped: a record cut short by a crash (its writer killed mid-write, power
// lost). Having no newline, such a torn record may run into the next writer's line; the
// reader then finds that whole record at the end of the glued line.
//
// The heartbeat holds two 32-byte slots, "<seconds, 22 digits> <crc>\n", written in turn:
// a write cut short spoils one slot and the other still holds the previous second.
// Readers take the larger valid slot.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::runtime::usage {

inline constexpr const char* kLedgerFile = "ledger";
inline constexpr const char* kRunsDir = "runs";

// One run of a container: its VMM, from the monitor's start of it to its exit.
struct Run {
  std::string run;       // 16 hex digits
  int64_t start = 0;     // Unix seconds
  std::string container_id, name;
  uint32_t vcpus = 0;
  uint64_t memory_mib = 0;
  uint64_t seconds = 0;  // running seconds: its E record's, else its heartbeat's
  bool ended = false;    // false: still running, or its monitor was killed
};

// Whole ledger lines, checksum and newline included.
std::string start_record(const Run& run);
std::string end_record(const std::string& run, uint64_t seconds);

// The ledger opened for appending (created with its directory when missing).
class Ledger {
 public:
  static Result<Ledger> open(const std::filesystem::path& dir);
  // One write(2) of the whole line, then fdatasync.
  [[nodiscard]] Status append(const std::string& line) const;

 private:
  explicit Ledger(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

// A run's heartbeat file, runs/<run>.
class Heartbeat {
 public:
  // Created durably (the directory synced) with 0 seconds, before the run's S record.
  static Result<Heartbeat> create(const std::filesystem::path& dir, const std::string& run);
  // The run's running seconds so far, durably.
  [[nodiscard]] Status beat(uint64_t seconds);
  // Once the run's E record is in the ledger.
  [[nodiscard]] Status remove();

 private:
  Heartbeat(std::filesystem::path path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  std::filesystem::path path_;
  UniqueFd fd_;
  uint64_t writes_ = 0;  // which slot is next
};

// A new run's name.
Result<std::string> new_run_id();

// Every run the ledger in `dir` records, in the order they were recorded, with their
// running seconds. Torn and foreign lines are skipped; a missing ledger has no runs.
Result<std::vector<Run>> read_runs(const std::filesystem::path& dir);

}  // namespace hyper::runtime::usage
