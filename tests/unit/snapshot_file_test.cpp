#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "tests/unit/temp_dir.hpp"
#include "vmm/snapshot_file.hpp"

using namespace hyper;
using namespace hyper::snapshot;

namespace {

std::vector<uint8_t> bytes_of(const std::string& text) { return {text.begin(), text.end()}; }

std::string text_of(std::span<const uint8_t> bytes) { return {bytes.begin(), bytes.end()}; }

// Two vCPUs, a device and 3 pages of memory whose bytes say where they are.
Writer sample_writer(std::vector<uint8_t>& memory) {
  memory.resize(3 * 4096);
  for (size_t i = 0; i < memory.size(); ++i) memory[i] = static_cast<uint8_t>(i * 7);
  Writer writer;
  writer.add(SectionKind::machine, 0, bytes_of("machine"));
  writer.add(SectionKind::vcpu, 0, bytes_of("cpu zero"));
  writer.add(SectionKind::vcpu, 1, bytes_of("cpu one, longer"));
  writer.add(SectionKind::device, 3, bytes_of("blk"));
  writer.set_memory({std::span<const uint8_t>(memory)});
  return writer;
}

std::string error_of(std::span<const uint8_t> file) {
  auto reader = Reader::parse(file);
  REQUIRE_FALSE(reader.ok());
  return reader.error().message;
}

bool mentions(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("snapshot file: sections come back by kind and index, memory page-aligned") {
  std::vector<uint8_t> memory;
  const std::vector<uint8_t> file = sample_writer(memory).bytes();
  auto reader = Reader::parse(file);
  REQUIRE(reader.ok());
  CHECK(text_of(*reader->section(SectionKind::vcpu, 1)) == "cpu one, longer");
  CHECK(text_of(*reader->section(SectionKind::vcpu, 0)) == "cpu zero");
  CHECK(text_of(*reader->section(SectionKind::device, 3)) == "blk");
  CHECK(mentions(reader->section(SectionKind::vcpu, 2).error().message, "no vcpu section 2"));
  const auto ram = reader->memory();
  REQUIRE(ram.has_value());
  CHECK(ram->offset % kMemoryAlignment == 0);
  CHECK(ram->size == memory.size());
  CHECK(std::memcmp(file.data() + ram->offset, memory.data(), memory.size()) == 0);
}

TEST_CASE("snapshot file: written to disk, memory maps privately from the file") {
  test::TempDir dir("hyper-snapshot-test");
  std::vector<uint8_t> memory;
  const auto path = dir.path / "vm.snap";
  REQUIRE(sample_writer(memory).write(path).ok());
  CHECK_FALSE(std::filesystem::exists(path.string() + ".partial"));
  auto reader = Reader::open(path);
  REQUIRE(reader.ok());
  CHECK(text_of(*reader->section(SectionKind::machine)) == "machine");
  const auto ram = reader->memory();
  REQUIRE(ram.has_value());
  void* mapped = ::mmap(nullptr, ram->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, reader->fd(), static_cast<off_t>(ram->offset));
  REQUIRE(mapped != MAP_FAILED);
  CHECK(std::memcmp(mapped, memory.data(), memory.size()) == 0);
  static_cast<uint8_t*>(mapped)[0] ^= 0xff;  // a restored guest's write stays its own
  ::munmap(mapped, ram->size);
  auto again = Reader::open(path);
  REQUIRE(again.ok());
  std::vector<uint8_t> first(1);
  REQUIRE(::pread(again->fd(), first.data(), 1, static_cast<off_t>(again->memory()->offset)) == 1);
  CHECK(first[0] == memory[0]);
}

TEST_CASE("snapshot file: a state-only snapshot has no memory section") {
  Writer writer;
  writer.add(SectionKind::clock, 0, bytes_of("clock"));
  auto reader = Reader::parse(writer.bytes());
  REQUIRE(reader.ok());
  CHECK_FALSE(reader->memory().has_value());
  CHECK(reader->sections().size() == 1);
}

TEST_CASE("snapshot file: a truncated file is refused at every length") {
  std::vector<uint8_t> memory;
  const std::vector<uint8_t> file = sample_writer(memory).bytes();
  for (size_t length : {size_t{0}, size_t{7}, size_t{63}, size_t{64}, size_t{100}, size_t{300}, file.size() - 4096,
                        file.size() - 1}) {
    CAPTURE(length);
    const std::string message = error_of(std::span(file).first(length));
    CHECK(mentions(message, "snapshot:"));
  }
  CHECK(mentions(error_of(std::span(file).first(file.size() - 1)), "truncated"));
}

TEST_CASE("snapshot file: foreign files, other versions and damage are refused by name") {
  std::vector<uint8_t> memory;
  const std::vector<uint8_t> good = sample_writer(memory).bytes();
  std::vector<uint8_t> file(good.size(), 0);
  CHECK(mentions(error_of(file), "not a hyper snapshot"));

  file = good;
  file[8] = 2;  // the version, with the header's checksum left as it was
  CHECK(mentions(error_of(file), "checksum"));

  file = good;
  file[64 + 8] ^= 1;  // the first entry's offset
  CHECK(mentions(error_of(file), "section table"));

  const auto reader = Reader::parse(good);
  REQUIRE(reader.ok());
  file = good;
  file[reader->sections()[1].offset] ^= 0x20;  // a byte of vcpu 0's state
  const std::string damaged = error_of(file);
  CHECK(mentions(damaged, "vcpu section 0"));
  CHECK(mentions(damaged, "damaged"));

  file = good;
  file.push_back(0);
  CHECK(mentions(error_of(file), "appended"));
}

TEST_CASE("snapshot file: a damaged memory page is not checked, so restoring stays fast") {
  std::vector<uint8_t> memory;
  std::vector<uint8_t> file = sample_writer(memory).bytes();
  const auto reader = Reader::parse(file);
  REQUIRE(reader.ok());
  file[reader->memory()->offset + 5] ^= 1;
  CHECK(Reader::parse(file).ok());
}

TEST_CASE("snapshot file: a missing file is an error naming it") {
  auto reader = Reader::open("/no/such/dir/vm.snap");
  REQUIRE_FALSE(reader.ok());
  CHECK(mentions(reader.error().message, "/no/such/dir/vm.snap"));
}
