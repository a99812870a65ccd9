#include "runtime/volume/nbd_export.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <memory>
#include <vector>

#include "runtime/disk_images.hpp"
#include "virtio/nbd_connection.hpp"
#include "virtio/nbd_library.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::runtime::volume {
namespace {

constexpr uint64_t kSuperblockOffset = 1024, kMagicOffset = 56;
constexpr uint16_t kExt4Magic = 0xEF53;
constexpr uint64_t kMinExportBytes = 16ull << 20;
constexpr size_t kChunkBytes = 1u << 20;
constexpr uint32_t kConnectTimeoutMs = 30000;

using virtio::nbd;
using virtio::nbd_error;

Result<bool> holds_ext4(nbd_handle* handle, const std::string& uri) {
  uint8_t superblock[1024];
  if (nbd().pread(handle, superblock, sizeof superblock, kSuperblockOffset, 0) != 0) return nbd_error("read " + uri);
  const uint16_t magic = static_cast<uint16_t>(superblock[kMagicOffset] | (superblock[kMagicOffset + 1] << 8));
  return magic == kExt4Magic;
}

// Copies the data extents of `image` to the export; the holes are zero on a blank export.
Status write_extents(nbd_handle* handle, const std::filesystem::path& image, const std::string& uri) {
  UniqueFd fd(::open(image.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Error::from_errno("open " + image.string());
  const off_t size = ::lseek(fd.get(), 0, SEEK_END);
  std::vector<uint8_t> buffer(kChunkBytes);
  for (off_t data = 0; data < size;) {
    data = ::lseek(fd.get(), data, SEEK_DATA);
    if (data < 0) break;  // ENXIO: only a hole is left
    const off_t hole = std::min<off_t>(::lseek(fd.get(), data, SEEK_HOLE), size);
    for (off_t at = data; at < hole;) {
      const size_t n = static_cast<size_t>(std::min<off_t>(hole - at, kChunkBytes));
      if (::pread(fd.get(), buffer.data(), n, at) != static_cast<ssize_t>(n)) return Error::from_errno("read " + image.string());
      if (nbd().pwrite(handle, buffer.data(), n, static_cast<uint64_t>(at), 0) != 0) return nbd_error("write " + uri);
      at += static_cast<off_t>(n);
    }
    data = hole;
  }
  if (nbd().can_flush(handle) == 1 && nbd().flush(handle, 0) != 0) return nbd_error("flush " + uri);
  return {};
}

}  // namespace

Result<NbdExportInfo> prepare_nbd_export(const std::string& uri, const std::filesystem::path& scratch_dir) {
  virtio::NbdHandle handle = HYPER_TRY(virtio::connect_nbd(uri, kConnectTimeoutMs));
  const int64_t size = nbd().get_size(handle.get());
  if (size < 0) return nbd_error("size of " + uri);
  NbdExportInfo info{static_cast<uint64_t>(size), false};
  if (info.size_bytes < kMinExportBytes) return make_error(Errc::invalid_argument, "the export " + uri + " is smaller than 16 MiB");
  if (info.size_bytes % 512 != 0) return make_error(Errc::invalid_argument, "the export " + uri + " is not a whole number of sectors");
  if (HYPER_TRY(holds_ext4(handle.get(), uri))) return info;
  if (nbd().is_read_only(handle.get()) == 1)
    return make_error(Errc::invalid_argument, "the export " + uri + " is read-only and holds no ext4 file system");
  const auto image = scratch_dir / "nbd-format.tmp";
  HYPER_CHECK(make_ext4(image, info.size_bytes >> 20, 16384, true));
  Status written = write_extents(handle.get(), image, uri);
  ::unlink(image.c_str());
  HYPER_CHECK(std::move(written));
  info.formatted_now = true;
  return info;
}

}  // namespace hyper::runtime::volume
