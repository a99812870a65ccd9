#include "runtime/log_file.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <vector>

using namespace hyper;
using namespace hyper::runtime;
namespace fs = std::filesystem;

namespace {

struct TempLog {
  fs::path dir, path;
  TempLog() {
    std::string pattern = (fs::temp_directory_path() / "hyper-log-test-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    dir = pattern;
    path = dir / "container.log";
  }
  ~TempLog() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  TempLog(const TempLog&) = delete;
  TempLog& operator=(const TempLog&) = delete;
};

std::vector<LogRecord> read_all(const fs::path& path, uint64_t offset = 0, uint64_t* end = nullptr) {
  std::vector<LogRecord> records;
  auto next = read_log(path, offset, [&](const LogRecord& record) { records.push_back(record); });
  INFO((next.ok() ? std::string() : next.error().message));
  REQUIRE(next.ok());
  if (end != nullptr) *end = *next;
  return records;
}

void append_raw(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::app | std::ios::binary);
  out << bytes;
}

}  // namespace

TEST_CASE("log file: records come back with their stream, time and exact bytes") {
  TempLog log;
  const std::string not_utf8("\xff\xfe\0abc\x80\n", 8);
  const std::string split_char = "caf\xc3";  // a character cut at a chunk boundary
  const std::vector<std::pair<Stream, std::string>> written = {
      {Stream::out, "hello\n"}, {Stream::err, "oops\n"}, {Stream::out, not_utf8},
      {Stream::out, "h\xc3\xa9llo \xe2\x82\xac\n"}, {Stream::err, split_char}, {Stream::out, "\"quoted\" \\ \t\x01\n"},
      {Stream::out, ""}};
  {
    auto writer = LogWriter::open(log.path);
    REQUIRE(writer.ok());
    for (const auto& [stream, bytes] : written) REQUIRE(writer->write(stream, bytes).ok());
    REQUIRE(writer->flush().ok());
  }
  uint64_t end = 0;
  const auto records = read_all(log.path, 0, &end);
  CHECK(end == fs::file_size(log.path));
  REQUIRE(records.size() == written.size());
  for (size_t i = 0; i < written.size(); ++i) {
    INFO(i);
    CHECK(records[i].stream == written[i].first);
    CHECK(records[i].bytes == written[i].second);
    CHECK(records[i].time.size() == 30);
  }
  // Docker's json-file fields, one record a line.
  std::ifstream in(log.path);
  std::string first;
  std::getline(in, first);
  CHECK(first.find("\"stream\":\"stdout\"") != std::string::npos);
  CHECK(first.find("\"log\":\"hello\\n\"") != std::string::npos);
  CHECK(first.find("\"time\":\"") != std::string::npos);
}

TEST_CASE("log file: binary chunks of every size survive") {
  TempLog log;
  std::vector<std::string> chunks;
  std::string all_bytes;
  for (int b = 0; b < 256; ++b) all_bytes += static_cast<char>(b);
  chunks.push_back(all_bytes);
  std::srand(7);
  for (size_t size : {1u, 2u, 3u, 4u, 49151u, 49152u, 49153u, 100000u}) {
    std::string chunk(size, '\0');
    for (auto& c : chunk) c = static_cast<char>(std::rand() & 0xff);
    chunk[0] = '\xff';  // never valid UTF-8
    chunks.push_back(chunk);
  }
  {
    auto writer = LogWriter::open(log.path);
    REQUIRE(writer.ok());
    for (const auto& chunk : chunks) REQUIRE(writer->write(Stream::err, chunk).ok());
  }
  const auto records = read_all(log.path);
  REQUIRE(records.size() == chunks.size());
  for (size_t i = 0; i < chunks.size(); ++i) {
    INFO(i);
    CHECK(records[i].stream == Stream::err);
    CHECK(records[i].bytes == chunks[i]);
  }
}

TEST_CASE("log file: a partly written last line is left for the next read") {
  TempLog log;
  {
    auto writer = LogWriter::open(log.path);
    REQUIRE(writer.ok());
    REQUIRE(writer->write(Stream::out, "one\n").ok());
  }
  const uint64_t whole = fs::file_size(log.path);
  append_raw(log.path, "{\"stream\":\"stderr\",\"time\":\"2026-01-01T00:00:00.000000000Z\",\"log\":\"tw");
  uint64_t end = 0;
  auto records = read_all(log.path, 0, &end);
  REQUIRE(records.size() == 1);
  CHECK(records[0].bytes == "one\n");
  CHECK(end == whole);

  append_raw(log.path, "o\\n\"}\n");
  records = read_all(log.path, end, &end);
  REQUIRE(records.size() == 1);
  CHECK(records[0].stream == Stream::err);
  CHECK(records[0].time == "2026-01-01T00:00:00.000000000Z");
  CHECK(records[0].bytes == "two\n");
  CHECK(end == fs::file_size(log.path));
  CHECK(read_all(log.path, end).empty());

  // An appended record after a reopen continues the same file.
  {
    auto writer = LogWriter::open(log.path);
    REQUIRE(writer.ok());
    REQUIRE(writer->write(Stream::out, "three\n").ok());
  }
  records = read_all(log.path, end, &end);
  REQUIRE(records.size() == 1);
  CHECK(records[0].bytes == "three\n");
}

TEST_CASE("log file: lines that are not records are skipped; a missing log has no records") {
  TempLog log;
  uint64_t end = 99;
  CHECK(read_all(log.path, 0, &end).empty());
  CHECK(end == 0);

  append_raw(log.path, "garbage\n{\"log\":5}\n{\"log\":\"!!\",\"b64\":true}\n\n");
  {
    auto writer = LogWriter::open(log.path);
    REQUIRE(writer.ok());
    REQUIRE(writer->write(Stream::out, "kept\n").ok());
  }
  const auto records = read_all(log.path, 0, &end);
  REQUIRE(records.size() == 1);
  CHECK(records[0].bytes == "kept\n");
  CHECK(end == fs::file_size(log.path));
}
