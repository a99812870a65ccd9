#include <doctest/doctest.h>

#include <cstring>
#include <string>

#include "boot/boot_info.hpp"
#include "boot/e820.hpp"
#include "boot/mptable.hpp"
#include "vmm/layout.hpp"

using namespace hyper;
using namespace hyper::boot;

namespace {
GuestMemory ram(uint64_t mib) {
  auto specs = GuestMemory::x86_layout(mib << 20);
  auto mem = GuestMemory::create(specs);
  REQUIRE(mem.ok());
  return std::move(mem).value();
}

KernelImage pvh_kernel() {
  KernelImage k{};
  k.format = KernelFormat::elf_pvh;
  k.entry = 0x1000000;
  k.kernel_end = 0x3000000;
  return k;
}
}  // namespace

TEST_CASE("e820: low RAM, the reserved legacy hole, then RAM from 1 MiB") {
  auto mem = ram(128);
  const auto map = e820_map(mem);
  REQUIRE(map.size() == 3);
  CHECK(map[0].addr == 0);
  CHECK(map[0].size == layout::kEbdaStart);
  CHECK(map[1].type == kE820Reserved);
  CHECK(map[1].addr + map[1].size == layout::kHighMemoryStart);
  CHECK(map[2].addr == layout::kHighMemoryStart);
  CHECK(map[2].addr + map[2].size == 128ULL << 20);
  uint64_t ram_bytes = 0;
  for (const auto& e : map) ram_bytes += e.type == kE820Ram ? e.size : 0;
  CHECK(ram_bytes == (128ULL << 20) - (layout::kHighMemoryStart - layout::kEbdaStart));
}

TEST_CASE("MP table: checksums hold and every vCPU is listed once") {
  for (uint32_t cpus : {1u, 2u, 64u}) {
    auto table = build_mptable(layout::kMpTableStart, cpus);
    REQUIRE(table.ok());
    const auto& t = table.value();
    CHECK(std::memcmp(t.data(), "_MP_", 4) == 0);
    CHECK(byte_sum(t.data(), 16) == 0);
    uint32_t config_gpa;
    std::memcpy(&config_gpa, t.data() + 4, 4);
    REQUIRE(config_gpa == layout::kMpTableStart + 16);
    const uint8_t* config = t.data() + 16;
    CHECK(std::memcmp(config, "PCMP", 4) == 0);
    uint16_t length, entries;
    std::memcpy(&length, config + 4, 2);
    std::memcpy(&entries, config + 34, 2);
    REQUIRE(16u + length == t.size());
    CHECK(byte_sum(config, length) == 0);
    // processors + bus + ioapic + 24 I/O interrupts + 2 local interrupts
    CHECK(entries == cpus + 1 + 1 + 24 + 2);
    uint32_t processors = 0, bootstrap = 0;
    for (const uint8_t* e = config + 44; e < config + length;) {
      if (*e == 0) {
        ++processors;
        bootstrap += (e[3] & 2) ? 1 : 0;
        e += 20;
      } else {
        e += 8;
      }
    }
    CHECK(processors == cpus);
    CHECK(bootstrap == 1);
  }
  CHECK_FALSE(build_mptable(layout::kMpTableStart, 0).ok());
  CHECK_FALSE(build_mptable(layout::kMpTableStart, layout::kMaxVcpus + 1).ok());
}

TEST_CASE("initrd placement: top of low RAM, page-aligned, above the kernel") {
  auto mem = ram(128);
  auto k = pvh_kernel();
  auto gpa = place_initrd(mem, k, 0x12345);
  REQUIRE(gpa.ok());
  CHECK(gpa.value() % layout::kPageSize == 0);
  CHECK(gpa.value() + 0x12345 <= 128ULL << 20);
  CHECK(gpa.value() >= k.kernel_end);
  CHECK(place_initrd(mem, k, 120ULL << 20).error().code == Errc::invalid_argument);
  k.initrd_addr_max = 0x3ffffff;  // a kernel that can only see 64 MiB
  CHECK(place_initrd(mem, k, 0x1000).value() + 0x1000 <= 0x4000000);
}

TEST_CASE("command line: NUL-terminated, refused when longer than the kernel takes") {
  auto mem = ram(64);
  auto k = pvh_kernel();
  REQUIRE(write_cmdline(mem, k, "console=ttyS0 quiet").ok());
  char buf[20];
  REQUIRE(mem.read(layout::kCmdlineStart, {reinterpret_cast<uint8_t*>(buf), sizeof buf}).ok());
  CHECK(std::string(buf) == "console=ttyS0 quiet");
  k.cmdline_max = 8;
  auto too_long = write_cmdline(mem, k, "console=ttyS0");
  REQUIRE_FALSE(too_long.ok());
  CHECK(too_long.error().message.find("at most 7") != std::string::npos);
}

TEST_CASE("PVH start info: magic, memory map and the initrd module") {
  auto mem = ram(64);
  const auto map = e820_map(mem);
  REQUIRE(write_pvh_start_info(mem, map, InitrdLocation{0x3000000, 0x1234}).ok());
  CHECK(mem.read_obj<uint32_t>(layout::kPvhStartInfo).value() == 0x336ec578);
  CHECK(mem.read_obj<uint32_t>(layout::kPvhStartInfo + 4).value() == 1);  // version
  CHECK(mem.read_obj<uint32_t>(layout::kPvhStartInfo + 12).value() == 1);  // nr_modules
  const auto modlist = mem.read_obj<uint64_t>(layout::kPvhStartInfo + 16).value();
  CHECK(mem.read_obj<uint64_t>(modlist).value() == 0x3000000);
  CHECK(mem.read_obj<uint64_t>(modlist + 8).value() == 0x1234);
  CHECK(mem.read_obj<uint64_t>(layout::kPvhStartInfo + 24).value() == layout::kCmdlineStart);
  const auto memmap = mem.read_obj<uint64_t>(layout::kPvhStartInfo + 40).value();
  CHECK(mem.read_obj<uint32_t>(layout::kPvhStartInfo + 48).value() == map.size());
  CHECK(mem.read_obj<uint64_t>(memmap + 24 * 2).value() == layout::kHighMemoryStart);  // third entry's addr
}

TEST_CASE("boot_params: loader type, command line, initrd and e820 for a bzImage") {
  auto mem = ram(64);
  KernelImage k{};
  k.format = KernelFormat::bzimage;
  k.header.version = 0x020f;
  k.header.header = 0x53726448;
  const auto map = e820_map(mem);
  REQUIRE(write_boot_params(mem, k, map, InitrdLocation{0x2000000, 0x4000}).ok());
  const auto params = mem.read_obj<boot_params>(layout::kZeroPage).value();
  // boot_params is packed: copy fields out before doctest binds them by reference.
  const uint8_t loader = params.hdr.type_of_loader;
  const uint32_t cmdline = params.hdr.cmd_line_ptr, initrd = params.hdr.ramdisk_image;
  const uint32_t initrd_size = params.hdr.ramdisk_size, magic = params.hdr.header;
  const uint8_t entries = params.e820_entries;
  const uint64_t third = params.e820_table[2].addr;
  CHECK(loader == 0xff);
  CHECK(cmdline == layout::kCmdlineStart);
  CHECK(initrd == 0x2000000);
  CHECK(initrd_size == 0x4000);
  CHECK(magic == 0x53726448);
  CHECK(entries == map.size());
  CHECK(third == layout::kHighMemoryStart);
}
