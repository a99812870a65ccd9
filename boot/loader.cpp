#include "boot/loader.hpp"

#include "boot/boot_file.hpp"
#include "boot/cpu_state.hpp"
#include "boot/e820.hpp"
#include "boot/mptable.hpp"
#include "vmm/layout.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::boot {
namespace {

// Parses through a read-only mapping: only the pages holding headers are ever read.
Result<KernelImage> parse_kernel_file(const BootFile& file, const std::string& path) {
  auto view = HYPER_TRY(Mapping::read_only_file(file.fd.get(), file.size));
  auto parsed = parse_kernel({view.data(), view.size()});
  if (!parsed) return make_error(Errc::bad_image, path + ": " + parsed.error().message);
  return parsed;
}

Status load_segments(const GuestMemory& memory, const KernelImage& kernel, int fd, const std::string& path) {
  for (const auto& seg : kernel.segments) {
    if (seg.gpa < layout::kHighMemoryStart)
      return make_error(Errc::bad_image, "kernel " + path + " has a segment at " + to_hex(seg.gpa) +
                                             ", below 1 MiB where the boot structures live");
    if (seg.gpa + seg.mem_size > layout::kMmioHoleStart)
      return make_error(Errc::bad_image, "kernel " + path + " has a segment reaching " + to_hex(seg.gpa + seg.mem_size) +
                                             ", inside the MMIO hole; it must load below " + to_hex(layout::kMmioHoleStart));
    if (!memory.contains(seg.gpa, seg.mem_size)) {
      return make_error(Errc::invalid_argument,
                        "kernel " + path + " needs guest memory up to " + std::to_string((seg.gpa + seg.mem_size) >> 20) +
                            " MiB; give the guest more memory");
    }
    HYPER_CHECK(memory.load_from_fd(seg.gpa, fd, seg.file_offset, seg.file_size));
    HYPER_CHECK(memory.fill(seg.gpa + seg.file_size, seg.mem_size - seg.file_size, 0));
  }
  return {};
}

}  // namespace

Result<KernelImage> load_boot_image(const GuestMemory& memory, const BootRequest& request) {
  auto file = HYPER_TRY(open_boot_file(request.kernel_path, "kernel"));
  KernelImage kernel = HYPER_TRY(parse_kernel_file(file, request.kernel_path));
  HYPER_CHECK(load_segments(memory, kernel, file.fd.get(), request.kernel_path));
  if (!memory.contains(layout::kHighMemoryStart, kernel.kernel_end - layout::kHighMemoryStart)) {
    return make_error(Errc::invalid_argument, "kernel " + request.kernel_path + " needs " +
                                                  std::to_string((kernel.kernel_end >> 20) + 1) +
                                                  " MiB of low guest memory while booting; give the guest more memory");
  }

  std::optional<InitrdLocation> initrd;
  if (request.initrd_path) {
    auto initrd_file = HYPER_TRY(open_boot_file(*request.initrd_path, "initrd"));
    const uint64_t gpa = HYPER_TRY(place_initrd(memory, kernel, initrd_file.size));
    HYPER_CHECK(memory.load_from_fd(gpa, initrd_file.fd.get(), 0, initrd_file.size));
    initrd = InitrdLocation{gpa, initrd_file.size};
  }

  HYPER_CHECK(write_cmdline(memory, kernel, request.cmdline));
  const auto e820 = e820_map(memory);
  if (kernel.format == KernelFormat::elf_pvh) {
    HYPER_CHECK(write_pvh_start_info(memory, e820, initrd));
  } else {
    HYPER_CHECK(write_boot_params(memory, kernel, e820, initrd));
  }
  HYPER_CHECK(write_cpu_tables(memory, kernel.format));
  const auto mptable = HYPER_TRY(build_mptable(layout::kMpTableStart, request.vcpus));
  HYPER_CHECK(memory.write(layout::kMpTableStart, mptable));
  return kernel;
}

}  // namespace hyper::boot
