#include "boot/arm64_loader.hpp"

#include "boot/arm64_image.hpp"
#include "boot/boot_file.hpp"
#include "vmm/layout_arm64.hpp"
#include "vmm/mapping.hpp"

namespace hyper::boot {
namespace {

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

Result<Arm64Image> parse_image_file(const BootFile& file, const std::string& path) {
  auto view = HYPER_TRY(Mapping::read_only_file(file.fd.get(), file.size));
  auto parsed = parse_arm64_image({view.data(), view.size()});
  if (!parsed) return make_error(Errc::bad_image, path + ": " + parsed.error().message);
  return parsed;
}

Error needs_more_memory(const std::string& what, uint64_t bytes) {
  return make_error(Errc::invalid_argument, what + " needs " + std::to_string((bytes >> 20) + 1) +
                                                " MiB of guest memory; give the guest more memory");
}

}  // namespace

Result<Arm64Boot> load_arm64_kernel(const GuestMemory& memory, const Arm64BootRequest& request) {
  const MmioRange ram = request.ram;
  if (ram.base % kArm64ImageAlignment != 0 || ram.size < 2 * layout::arm64::kDeviceTreeMaxSize)
    return make_error(Errc::invalid_argument, "arm64 RAM must start 2 MiB-aligned and hold at least 4 MiB");
  Arm64Boot boot;
  boot.device_tree = (ram.base + ram.size - layout::arm64::kDeviceTreeMaxSize) & ~(kArm64ImageAlignment - 1);

  auto kernel_file = HYPER_TRY(open_boot_file(request.kernel_path, "kernel"));
  const Arm64Image image = HYPER_TRY(parse_image_file(kernel_file, request.kernel_path));
  boot.entry = ram.base + image.text_offset;
  const uint64_t kernel_end = boot.entry + image.image_size;
  if (kernel_end > boot.device_tree) return needs_more_memory("kernel " + request.kernel_path, kernel_end - ram.base + 2 * layout::arm64::kDeviceTreeMaxSize);
  HYPER_CHECK(memory.load_from_fd(boot.entry, kernel_file.fd.get(), 0, image.file_size));
  // The BSS past the file is already zero: fresh guest RAM is.

  if (request.initrd_path) {
    auto initrd_file = HYPER_TRY(open_boot_file(*request.initrd_path, "initrd"));
    const uint64_t start = align_up(kernel_end, kArm64ImageAlignment);
    if (initrd_file.size > boot.device_tree - start)
      return needs_more_memory("kernel and initrd", start - ram.base + initrd_file.size + 2 * layout::arm64::kDeviceTreeMaxSize);
    HYPER_CHECK(memory.load_from_fd(start, initrd_file.fd.get(), 0, initrd_file.size));
    boot.initrd = MmioRange{start, initrd_file.size};
  }
  return boot;
}

Status write_device_tree(const GuestMemory& memory, const Arm64Boot& boot, std::span<const uint8_t> tree) {
  if (tree.size() > layout::arm64::kDeviceTreeMaxSize)
    return make_error(Errc::invalid_argument, "the device tree is larger than 2 MiB");
  return memory.write(boot.device_tree, tree);
}

}  // namespace hyper::boot
