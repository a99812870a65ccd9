// A container's log: every chunk of output the container's process wrote, with its
// stream and time, one JSON line each (like Docker's json-file driver), so `hyper logs`
// can show stdout and stderr apart, with timestamps, and follow a running container.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::runtime {

enum class Stream { out, err };

class LogWriter {
 public:
  static Result<LogWriter> open(const std::filesystem::path& path);
  // Appends one record: {"stream":"stdout","time":"<RFC 3339, ns>","log":"<bytes>"}.
  Status write(Stream stream, std::string_view bytes);
  Status flush();

 private:
  explicit LogWriter(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

struct LogRecord {
  Stream stream = Stream::out;
  std::string time;
  std::string bytes;
};

// Reads the records from `offset` on, calling `sink` for each whole line; returns the
// offset after the last whole line (a partly written last line is left for later).
Result<uint64_t> read_log(const std::filesystem::path& path, uint64_t offset,
                          const std::function<void(const LogRecord&)>& sink);

// `logs --tail` (the CLI's flag, the API's query): a number of lines, or "all" (nothing);
// a negative number means all, as in Docker.
Result<std::optional<uint64_t>> parse_tail(const std::string& text);

// Where the last `lines` lines start, as (record, byte in it): counted over both streams
// together, a last line without its newline counting as one.
std::pair<size_t, size_t> tail_start(const std::vector<LogRecord>& records, uint64_t lines);

}  // namespace hyper::runtime
