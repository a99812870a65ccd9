#include <doctest/doctest.h>
#include <elf.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "boot/kernel_image.hpp"

using namespace hyper;
using namespace hyper::boot;

namespace {

template <class T>
void put(std::vector<uint8_t>& image, size_t offset, const T& value) {
  if (image.size() < offset + sizeof(T)) image.resize(offset + sizeof(T));
  std::memcpy(image.data() + offset, &value, sizeof(T));
}

// A minimal vmlinux: one PT_LOAD at 16 MiB and a PT_NOTE with the Xen PVH entry.
std::vector<uint8_t> synthetic_elf(bool with_pvh_note = true) {
  std::vector<uint8_t> image(0x400);
  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_type = ET_EXEC;
  eh.e_machine = EM_X86_64;
  eh.e_phoff = sizeof(Elf64_Ehdr);
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = 2;
  put(image, 0, eh);

  Elf64_Phdr load{};
  load.p_type = PT_LOAD;
  load.p_offset = 0x200;
  load.p_paddr = 0x1000000;
  load.p_filesz = 0x100;
  load.p_memsz = 0x3000;
  put(image, eh.e_phoff, load);

  Elf64_Phdr note{};
  note.p_type = PT_NOTE;
  note.p_offset = 0x300;
  note.p_filesz = sizeof(Elf64_Nhdr) + 4 + 8;
  put(image, eh.e_phoff + sizeof(Elf64_Phdr), note);
  Elf64_Nhdr nh{4, 8, with_pvh_note ? 18u : 17u};
  put(image, 0x300, nh);
  std::memcpy(image.data() + 0x300 + sizeof nh, "Xen", 4);
  put<uint64_t>(image, 0x300 + sizeof nh + 4, 0x1000abc);
  return image;
}

std::vector<uint8_t> synthetic_bzimage() {
  std::vector<uint8_t> image(0x5000, 0x90);
  setup_header hdr{};
  hdr.setup_sects = 4;
  hdr.boot_flag = 0xaa55;
  hdr.header = 0x53726448;
  hdr.version = 0x020f;
  hdr.loadflags = 1;
  hdr.xloadflags = 1;
  hdr.cmdline_size = 2047;
  hdr.initrd_addr_max = 0x7fffffff;
  hdr.init_size = 0x800000;
  hdr.pref_address = 0x1000000;
  hdr.syssize = (0x5000 - 0xa00) / 16;
  put(image, 0x1f1, hdr);
  image[0x201] = 0x66;  // setup header ends at 0x268
  return image;
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

}  // namespace

TEST_CASE("ELF loader: finds PT_LOAD segments and the PVH entry note") {
  const auto image = synthetic_elf();
  auto k = parse_kernel(image);
  REQUIRE(k.ok());
  CHECK(k->format == KernelFormat::elf_pvh);
  CHECK(k->entry == 0x1000abc);
  REQUIRE(k->segments.size() == 1);
  CHECK(k->segments[0].gpa == 0x1000000);
  CHECK(k->segments[0].file_offset == 0x200);
  CHECK(k->segments[0].file_size == 0x100);
  CHECK(k->segments[0].mem_size == 0x3000);
  CHECK(k->kernel_end == 0x1003000);
}

TEST_CASE("ELF loader: rejects malformed images with a reason") {
  SUBCASE("no PVH note") {
    auto k = parse_kernel(synthetic_elf(false));
    REQUIRE_FALSE(k.ok());
    CHECK(k.error().code == Errc::bad_image);
    CHECK(k.error().message.find("CONFIG_PVH") != std::string::npos);
  }
  SUBCASE("every truncation") {
    const auto image = synthetic_elf();
    for (size_t len = 0; len < 0x300 + sizeof(Elf64_Nhdr) + 12; len += 7) {
      auto k = parse_kernel({image.data(), len});
      CHECK_FALSE(k.ok());
    }
  }
  SUBCASE("segment past the end of the file") {
    auto image = synthetic_elf();
    put<uint64_t>(image, sizeof(Elf64_Ehdr) + offsetof(Elf64_Phdr, p_filesz), 0x10000);
    CHECK_FALSE(parse_kernel(image).ok());
  }
  SUBCASE("filesz larger than memsz") {
    auto image = synthetic_elf();
    put<uint64_t>(image, sizeof(Elf64_Ehdr) + offsetof(Elf64_Phdr, p_memsz), 0x10);
    CHECK_FALSE(parse_kernel(image).ok());
  }
  SUBCASE("note size that loops") {
    auto image = synthetic_elf();
    put<Elf64_Nhdr>(image, 0x300, Elf64_Nhdr{0xffffffff, 0xffffffff, 18});
    CHECK_FALSE(parse_kernel(image).ok());
  }
  SUBCASE("32-bit ELF") {
    auto image = synthetic_elf();
    image[EI_CLASS] = ELFCLASS32;
    CHECK_FALSE(parse_kernel(image).ok());
  }
  SUBCASE("absurd program header count") {
    auto image = synthetic_elf();
    put<uint16_t>(image, offsetof(Elf64_Ehdr, e_phnum), 0xffff);
    CHECK_FALSE(parse_kernel(image).ok());
  }
}

TEST_CASE("bzImage loader: reads the setup header and plans the 64-bit entry") {
  auto k = parse_kernel(synthetic_bzimage());
  REQUIRE(k.ok());
  CHECK(k->format == KernelFormat::bzimage);
  CHECK(k->entry == kBzImageLoadAddress + 0x200);
  REQUIRE(k->segments.size() == 1);
  CHECK(k->segments[0].file_offset == 5 * 512);
  CHECK(k->segments[0].file_size == 0x5000 - 5 * 512);
  CHECK(k->kernel_end == 0x1000000 + 0x800000);  // pref_address + init_size
  CHECK(k->cmdline_max == 2048);
  CHECK(k->initrd_addr_max == 0x7fffffff);
  const uint16_t version = k->header.version;  // packed field: copy before binding
  CHECK(version == 0x020f);
}

TEST_CASE("bzImage loader: rejects what it cannot boot") {
  SUBCASE("bad boot flag") {
    auto image = synthetic_bzimage();
    put<uint16_t>(image, 0x1fe, 0);
    CHECK_FALSE(parse_kernel(image).ok());
  }
  SUBCASE("protocol too old") {
    auto image = synthetic_bzimage();
    put<uint16_t>(image, 0x206, 0x0208);
    auto k = parse_kernel(image);
    REQUIRE_FALSE(k.ok());
    CHECK(k.error().message.find("2.08") != std::string::npos);
  }
  SUBCASE("no 64-bit entry") {
    auto image = synthetic_bzimage();
    put<uint16_t>(image, 0x236, 0);
    CHECK_FALSE(parse_kernel(image).ok());
  }
  SUBCASE("truncated payload") {
    auto image = synthetic_bzimage();
    image.resize(0x1000);
    CHECK_FALSE(parse_kernel(image).ok());
  }
  SUBCASE("setup code only") {
    auto image = synthetic_bzimage();
    image.resize(5 * 512);
    CHECK_FALSE(parse_kernel(image).ok());
  }
}

TEST_CASE("kernel loader: garbage and empty input are neither ELF nor bzImage") {
  const std::vector<uint8_t> garbage(4096, 0x5a);
  auto k = parse_kernel(garbage);
  REQUIRE_FALSE(k.ok());
  CHECK(k.error().message.find("neither") != std::string::npos);
  CHECK_FALSE(parse_kernel({}).ok());
}

TEST_CASE("real kernel: the guest kernel's vmlinux and bzImage parse") {
  const char* dir = std::getenv("HYPER_KERNEL_DIR");
  INFO("HYPER_KERNEL_DIR must name the guest kernel build (scripts/setup sets it; see kernel/README.md)");
  REQUIRE((dir && *dir));
  const auto vmlinux = read_file(std::string(dir) + "/vmlinux");
  REQUIRE(!vmlinux.empty());
  auto elf = parse_kernel(vmlinux);
  REQUIRE_MESSAGE(elf.ok(), (elf.ok() ? "" : elf.error().message));
  CHECK(elf->format == KernelFormat::elf_pvh);
  CHECK(elf->entry >= 0x1000000);
  CHECK(elf->entry < elf->kernel_end);

  const auto bz = read_file(std::string(dir) + "/bzImage");
  REQUIRE(!bz.empty());
  auto b = parse_kernel(bz);
  REQUIRE_MESSAGE(b.ok(), (b.ok() ? "" : b.error().message));
  CHECK(b->format == KernelFormat::bzimage);
  const uint32_t init_size = b->header.init_size;
  CHECK(init_size > 0);
  // Every prefix of the real image short of its end must be refused, never crash.
  for (size_t len : {size_t{0}, size_t{512}, size_t{0x268}, bz.size() / 2}) CHECK_FALSE(parse_kernel({bz.data(), len}).ok());
}
