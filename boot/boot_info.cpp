#include "boot/boot_info.hpp"

#include <algorithm>
#include <string>

#include "vmm/layout.hpp"

namespace hyper::boot {
namespace {

constexpr uint32_t kHvmStartMagic = 0x336ec578;
constexpr uint8_t kLoaderTypeUndefined = 0xff;
constexpr uint8_t kCanUseHeap = 0x80;

// Layout of Xen's public hvm_start_info ABI (version 1).
struct HvmStartInfo {
  uint32_t magic;
  uint32_t version;
  uint32_t flags;
  uint32_t nr_modules;
  uint64_t modlist_paddr;
  uint64_t cmdline_paddr;
  uint64_t rsdp_paddr;
  uint64_t memmap_paddr;
  uint32_t memmap_entries;
  uint32_t reserved;
};
struct HvmModlistEntry {
  uint64_t paddr;
  uint64_t size;
  uint64_t cmdline_paddr;
  uint64_t reserved;
};
struct HvmMemmapEntry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
  uint32_t reserved;
};
static_assert(sizeof(HvmStartInfo) == 56 && sizeof(HvmModlistEntry) == 32 && sizeof(HvmMemmapEntry) == 24);

uint64_t align_down(uint64_t v, uint64_t a) { return v & ~(a - 1); }

}  // namespace

Result<uint64_t> place_initrd(const GuestMemory& memory, const KernelImage& kernel, uint64_t size) {
  const auto& low = memory.regions().front();
  const uint64_t ceiling = std::min({low.end(), kernel.initrd_addr_max + 1, layout::kMmioHoleStart});
  const uint64_t floor = std::max(kernel.kernel_end, layout::kHighMemoryStart);
  if (size > ceiling || align_down(ceiling - size, layout::kPageSize) < floor) {
    return make_error(Errc::invalid_argument, "initrd of " + std::to_string(size >> 10) +
                                                  " KiB does not fit in guest RAM above the kernel; give the guest more memory");
  }
  return align_down(ceiling - size, layout::kPageSize);
}

Status write_cmdline(const GuestMemory& memory, const KernelImage& kernel, std::string_view cmdline) {
  const uint64_t limit = std::min<uint64_t>(kernel.cmdline_max, layout::kCmdlineMaxSize);
  if (cmdline.size() + 1 > limit)
    return make_error(Errc::invalid_argument, "kernel command line is " + std::to_string(cmdline.size()) +
                                                  " bytes; this kernel accepts at most " + std::to_string(limit - 1));
  HYPER_CHECK(memory.write(layout::kCmdlineStart, {reinterpret_cast<const uint8_t*>(cmdline.data()), cmdline.size()}));
  return memory.write_obj(layout::kCmdlineStart + cmdline.size(), uint8_t{0});
}

Status write_pvh_start_info(const GuestMemory& memory, const std::vector<E820Entry>& e820,
                            std::optional<InitrdLocation> initrd) {
  const uint64_t memmap_gpa = layout::kPvhStartInfo + sizeof(HvmStartInfo);
  const uint64_t modlist_gpa = memmap_gpa + e820.size() * sizeof(HvmMemmapEntry);
  if (modlist_gpa + sizeof(HvmModlistEntry) > layout::kPvhStartInfoEnd)
    return make_error(Errc::invalid_argument, "PVH memory map has too many entries");

  HvmStartInfo info{};
  info.magic = kHvmStartMagic;
  info.version = 1;
  info.cmdline_paddr = layout::kCmdlineStart;
  info.memmap_paddr = memmap_gpa;
  info.memmap_entries = static_cast<uint32_t>(e820.size());
  if (initrd) {
    info.nr_modules = 1;
    info.modlist_paddr = modlist_gpa;
    HYPER_CHECK(memory.write_obj(modlist_gpa, HvmModlistEntry{initrd->gpa, initrd->size, 0, 0}));
  }
  for (size_t i = 0; i < e820.size(); ++i) {
    HYPER_CHECK(memory.write_obj(memmap_gpa + i * sizeof(HvmMemmapEntry),
                                 HvmMemmapEntry{e820[i].addr, e820[i].size, e820[i].type, 0}));
  }
  return memory.write_obj(layout::kPvhStartInfo, info);
}

Status write_boot_params(const GuestMemory& memory, const KernelImage& kernel, const std::vector<E820Entry>& e820,
                         std::optional<InitrdLocation> initrd) {
  boot_params params{};
  if (e820.size() > std::size(params.e820_table))
    return make_error(Errc::invalid_argument, "e820 map has too many entries");
  params.hdr = kernel.header;
  params.hdr.type_of_loader = kLoaderTypeUndefined;
  params.hdr.loadflags |= kCanUseHeap;
  params.hdr.heap_end_ptr = 0xfe00;
  params.hdr.cmd_line_ptr = static_cast<uint32_t>(layout::kCmdlineStart);
  if (initrd) {
    params.hdr.ramdisk_image = static_cast<uint32_t>(initrd->gpa);
    params.hdr.ramdisk_size = static_cast<uint32_t>(initrd->size);
  }
  params.e820_entries = static_cast<uint8_t>(e820.size());
  for (size_t i = 0; i < e820.size(); ++i) params.e820_table[i] = {e820[i].addr, e820[i].size, e820[i].type};
  return memory.write_obj(layout::kZeroPage, params);
}

}  // namespace hyper::boot
