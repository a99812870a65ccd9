// The arm64 Image header and where the loader puts the kernel, initrd and device tree.
#include <doctest/doctest.h>

#include <fstream>
#include <string>
#include <vector>

#include "boot/arm64_image.hpp"
#include "boot/arm64_loader.hpp"
#include "tests/unit/temp_dir.hpp"
#include "vmm/layout_arm64.hpp"

using namespace hyper;
using namespace hyper::boot;
namespace arm = hyper::layout::arm64;

namespace {

void put64(std::vector<uint8_t>& bytes, size_t at, uint64_t value) {
  for (size_t i = 0; i < 8; ++i) bytes[at + i] = static_cast<uint8_t>(value >> (8 * i));
}

// A header as arch/arm64/kernel/head.S writes it, then `size` bytes in all.
std::vector<uint8_t> image(uint64_t text_offset, uint64_t image_size, size_t size = 4096, uint64_t flags = 0xa) {
  std::vector<uint8_t> bytes(size, 0x5a);
  put64(bytes, 8, text_offset);
  put64(bytes, 16, image_size);
  put64(bytes, 24, flags);
  const uint32_t magic = kArm64ImageMagic;
  for (size_t i = 0; i < 4; ++i) bytes[56 + i] = static_cast<uint8_t>(magic >> (8 * i));
  return bytes;
}

std::string error_of(const std::vector<uint8_t>& bytes) {
  auto parsed = parse_arm64_image(bytes);
  REQUIRE_FALSE(parsed.ok());
  return parsed.error().message;
}

std::string write_file(const test::TempDir& dir, const char* name, const std::vector<uint8_t>& bytes) {
  const std::string path = (dir.path / name).string();
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  return path;
}

GuestMemory ram(uint64_t mib) {
  const std::vector<RegionSpec> specs{{arm::kRamStart, mib << 20}};
  auto memory = GuestMemory::create(specs);
  REQUIRE(memory.ok());
  return std::move(memory).value();
}

}  // namespace

TEST_CASE("arm64 Image: the header's offset and size") {
  auto parsed = parse_arm64_image(image(0, 0x2000000));
  REQUIRE(parsed.ok());
  CHECK(parsed->text_offset == 0);
  CHECK(parsed->image_size == 0x2000000);
  CHECK(parsed->file_size == 4096);
  auto old_offset = parse_arm64_image(image(0x80000, 0x2000000));
  REQUIRE(old_offset.ok());
  CHECK(old_offset->text_offset == 0x80000);
}

TEST_CASE("arm64 Image: what is not a bootable little-endian Image is refused, saying why") {
  CHECK(error_of({0x1f, 0x8b, 8, 0}).find("gzip") != std::string::npos);
  CHECK(error_of(std::vector<uint8_t>(63, 0)).find("header") != std::string::npos);
  CHECK(error_of(std::vector<uint8_t>(4096, 0)).find("magic") != std::string::npos);
  CHECK(error_of(image(0, 0x2000000, 4096, 0xb)).find("big-endian") != std::string::npos);
  CHECK(error_of(image(0, 0)).find("3.17") != std::string::npos);
  CHECK(error_of(image(0, 2048)).find("smaller than the file") != std::string::npos);
  CHECK(error_of(image(0, 1ULL << 40)).find("1 GiB") != std::string::npos);
  CHECK(error_of(image(0x123, 0x2000000)).find("text_offset") != std::string::npos);
  CHECK(error_of(image(2ULL << 20, 0x2000000)).find("text_offset") != std::string::npos);
}

TEST_CASE("arm64 loader: kernel at RAM + text_offset, initrd on the next 2 MiB, tree in the last 2 MiB") {
  test::TempDir dir;
  const auto kernel = image(0x80000, 3ULL << 20, 8192);
  const std::string kernel_path = write_file(dir, "Image", kernel);
  const std::string initrd_path = write_file(dir, "initrd", std::vector<uint8_t>(5000, 0x11));
  const GuestMemory memory = ram(64);
  auto boot = load_arm64_kernel(memory, {kernel_path, initrd_path, {arm::kRamStart, 64ULL << 20}});
  REQUIRE(boot.ok());
  CHECK(boot->entry == arm::kRamStart + 0x80000);
  REQUIRE(boot->initrd.has_value());
  CHECK(boot->initrd->base == arm::kRamStart + (4ULL << 20));  // 0x80000 + 3 MiB, rounded up
  CHECK(boot->initrd->size == 5000);
  CHECK(boot->device_tree == arm::kRamStart + (62ULL << 20));

  std::vector<uint8_t> loaded(kernel.size());
  REQUIRE(memory.read(boot->entry, loaded).ok());
  CHECK(loaded == kernel);
  uint8_t byte = 0;
  REQUIRE(memory.read(boot->initrd->base + 4999, {&byte, 1}).ok());
  CHECK(byte == 0x11);

  const std::vector<uint8_t> tree{0xd0, 0x0d, 0xfe, 0xed};
  REQUIRE(write_device_tree(memory, *boot, tree).ok());
  std::vector<uint8_t> back(4);
  REQUIRE(memory.read(boot->device_tree, back).ok());
  CHECK(back == tree);
  CHECK_FALSE(write_device_tree(memory, *boot, std::vector<uint8_t>((2u << 20) + 1)).ok());
}

TEST_CASE("arm64 loader: too little memory for the kernel or the initrd says to give more") {
  test::TempDir dir;
  const std::string big_kernel = write_file(dir, "Image", image(0, 30ULL << 20));
  auto boot = load_arm64_kernel(ram(16), {big_kernel, std::nullopt, {arm::kRamStart, 16ULL << 20}});
  REQUIRE_FALSE(boot.ok());
  CHECK(boot.error().message.find("give the guest more memory") != std::string::npos);

  const std::string kernel = write_file(dir, "small", image(0, 4ULL << 20));
  const std::string initrd = write_file(dir, "initrd", std::vector<uint8_t>(12u << 20, 1));
  auto crowded = load_arm64_kernel(ram(16), {kernel, initrd, {arm::kRamStart, 16ULL << 20}});
  REQUIRE_FALSE(crowded.ok());
  CHECK(crowded.error().message.find("give the guest more memory") != std::string::npos);

  auto x86 = load_arm64_kernel(ram(16), {initrd, std::nullopt, {arm::kRamStart, 16ULL << 20}});
  REQUIRE_FALSE(x86.ok());
  CHECK(x86.error().message.find("magic") != std::string::npos);
}
