#include "boot/kernel_image.hpp"

#include <elf.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

namespace hyper::boot {
namespace {

// Xen's ELF note carrying the 32-bit physical PVH entry point.
constexpr uint32_t kXenElfnotePhys32Entry = 18;
constexpr uint32_t kMaxProgramHeaders = 64;

constexpr uint64_t kSetupHeaderOffset = 0x1f1;
constexpr uint32_t kHdrSMagic = 0x53726448;  // "HdrS"
constexpr uint16_t kBootFlag = 0xaa55;
constexpr uint16_t kMinProtocol = 0x020c;  // first with xloadflags (XLF_KERNEL_64)
constexpr uint16_t kXlfKernel64 = 1 << 0;
constexpr uint8_t kLoadedHigh = 1 << 0;

Error bad_image(const std::string& why) { return make_error(Errc::bad_image, "kernel image: " + why); }

bool fits(std::span<const uint8_t> image, uint64_t offset, uint64_t len) {
  return offset <= image.size() && len <= image.size() - offset;
}

template <class T>
T load(std::span<const uint8_t> image, uint64_t offset) {
  T value;
  std::memcpy(&value, image.data() + offset, sizeof(T));
  return value;
}

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

// Scans one PT_NOTE segment for the PVH entry note; returns 0 when absent.
Result<uint64_t> find_pvh_entry(std::span<const uint8_t> image, const Elf64_Phdr& ph) {
  uint64_t pos = ph.p_offset;
  const uint64_t end = ph.p_offset + ph.p_filesz;
  while (end - pos >= sizeof(Elf64_Nhdr)) {
    const auto note = load<Elf64_Nhdr>(image, pos);
    const uint64_t name_off = pos + sizeof(Elf64_Nhdr);
    const uint64_t desc_off = name_off + align_up(note.n_namesz, 4);
    const uint64_t next = desc_off + align_up(note.n_descsz, 4);
    if (next > end || next <= pos) return bad_image("malformed ELF note");
    const bool is_xen = note.n_namesz == 4 && std::memcmp(image.data() + name_off, "Xen", 4) == 0;
    if (is_xen && note.n_type == kXenElfnotePhys32Entry) {
      if (note.n_descsz == 4) return uint64_t{load<uint32_t>(image, desc_off)};
      if (note.n_descsz == 8) return load<uint64_t>(image, desc_off);
      return bad_image("PVH entry note has an unexpected size");
    }
    pos = next;
  }
  return uint64_t{0};
}

}  // namespace

Result<KernelImage> parse_kernel(std::span<const uint8_t> image) {
  if (image.size() >= SELFMAG && std::memcmp(image.data(), ELFMAG, SELFMAG) == 0) return parse_elf_pvh(image);
  if (fits(image, 0x202, 4) && load<uint32_t>(image, 0x202) == kHdrSMagic) return parse_bzimage(image);
  return bad_image("neither an ELF vmlinux nor a bzImage (no ELF magic, no \"HdrS\" at 0x202)");
}

Result<KernelImage> parse_elf_pvh(std::span<const uint8_t> image) {
  if (!fits(image, 0, sizeof(Elf64_Ehdr))) return bad_image("truncated ELF header");
  const auto eh = load<Elf64_Ehdr>(image, 0);
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_machine != EM_X86_64)
    return bad_image("not a little-endian 64-bit x86 ELF");
  if (eh.e_type != ET_EXEC) return bad_image("ELF is not an executable");
  if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > kMaxProgramHeaders)
    return bad_image("ELF program header table is malformed");
  if (!fits(image, eh.e_phoff, uint64_t{eh.e_phnum} * sizeof(Elf64_Phdr)))
    return bad_image("ELF program headers lie outside the file");

  KernelImage k{};
  k.format = KernelFormat::elf_pvh;
  k.entry = 0;
  k.kernel_end = 0;
  for (uint32_t i = 0; i < eh.e_phnum; ++i) {
    const auto ph = load<Elf64_Phdr>(image, eh.e_phoff + uint64_t{i} * sizeof(Elf64_Phdr));
    if (ph.p_type != PT_LOAD && ph.p_type != PT_NOTE) continue;
    if (!fits(image, ph.p_offset, ph.p_filesz)) return bad_image("ELF segment " + std::to_string(i) + " is truncated");
    if (ph.p_type == PT_NOTE) {
      const uint64_t entry = HYPER_TRY(find_pvh_entry(image, ph));
      if (entry) k.entry = entry;
      continue;
    }
    if (ph.p_filesz > ph.p_memsz || ph.p_paddr + ph.p_memsz < ph.p_paddr)
      return bad_image("ELF segment " + std::to_string(i) + " has impossible sizes");
    k.segments.push_back({ph.p_paddr, ph.p_offset, ph.p_filesz, ph.p_memsz});
    k.kernel_end = std::max(k.kernel_end, ph.p_paddr + ph.p_memsz);
  }
  if (k.segments.empty()) return bad_image("ELF has no loadable segment");
  if (k.entry == 0)
    return bad_image("ELF has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY): build the kernel with "
                     "CONFIG_PVH=y, or boot its bzImage");
  return k;
}

Result<KernelImage> parse_bzimage(std::span<const uint8_t> image) {
  if (!fits(image, kSetupHeaderOffset, sizeof(setup_header))) return bad_image("truncated bzImage setup header");
  auto hdr = load<setup_header>(image, kSetupHeaderOffset);
  if (hdr.header != kHdrSMagic || hdr.boot_flag != kBootFlag) return bad_image("bzImage setup header magic is wrong");
  if (hdr.version < kMinProtocol) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "boot protocol %u.%02u is too old (need 2.12 for 64-bit entry)",
                  hdr.version >> 8, hdr.version & 0xff);
    return bad_image(buf);
  }
  if (!(hdr.xloadflags & kXlfKernel64)) return bad_image("bzImage has no 64-bit entry point (XLF_KERNEL_64)");
  if (!(hdr.loadflags & kLoadedHigh)) return bad_image("bzImage is not a high-loaded kernel");

  // The setup header ends at 0x202 + the byte at 0x201 (the jump's displacement); copy no
  // more than the kernel says it has, so newer fields we do not know stay zero.
  const uint64_t header_end = 0x202 + image[0x201];
  const uint64_t header_len = std::min<uint64_t>(header_end - kSetupHeaderOffset, sizeof(setup_header));
  hdr = setup_header{};
  std::memcpy(&hdr, image.data() + kSetupHeaderOffset, header_len);

  const uint64_t setup_sects = hdr.setup_sects ? hdr.setup_sects : 4;
  const uint64_t payload_offset = (setup_sects + 1) * 512;
  if (payload_offset >= image.size()) return bad_image("bzImage has no protected-mode kernel after its setup code");
  const uint64_t payload_size = image.size() - payload_offset;
  if (hdr.syssize && uint64_t{hdr.syssize} * 16 > payload_size) return bad_image("bzImage is truncated (syssize)");

  KernelImage k{};
  k.format = KernelFormat::bzimage;
  k.segments.push_back({kBzImageLoadAddress, payload_offset, payload_size, payload_size});
  k.entry = kBzImageLoadAddress + 0x200;
  // The decompressor runs at pref_address (when higher) and needs init_size bytes there.
  const uint64_t runtime_start = std::max<uint64_t>(kBzImageLoadAddress, hdr.pref_address);
  k.kernel_end = std::max(kBzImageLoadAddress + payload_size, runtime_start + hdr.init_size);
  k.header = hdr;
  k.initrd_addr_max = hdr.initrd_addr_max ? hdr.initrd_addr_max : 0x37ffffff;
  k.cmdline_max = hdr.cmdline_size ? hdr.cmdline_size + 1 : 256;
  return k;
}

}  // namespace hyper::boot
