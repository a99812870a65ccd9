#include "runtime/volume/container_mounts.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include "runtime/volume/volume_store.hpp"

namespace hyper::runtime::volume {
namespace {

using Json = nlohmann::json;

// /dev/vda../dev/vdz: the guest names virtio disks in the order the VMM adds them.
constexpr size_t kMaxDisks = 26;

Result<FileLock> claim_volume(const VolumeStore& store, const Volume& volume, bool read_only, const Container& container) {
  // The store's lock first: a snapshot or removal in progress finishes before we look.
  auto held = HYPER_TRY(store.lock());
  auto claim = HYPER_TRY(read_only ? FileLock::try_acquire_shared(volume.use_lock()) : FileLock::try_acquire(volume.use_lock()));
  if (!claim)
    return make_error(Errc::invalid_argument,
                      "volume " + volume.name + " is in use by another running container" +
                          (read_only ? " that writes it" : "") + ": a block volume has one writer or only readers " +
                          "(mount it :ro in " + container.id.substr(0, 12) + " to share it with readers)");
  return std::move(*claim);
}

Status attach_volume(const VolumeStore& store, const Container& container, const Mount& mount, size_t index,
                     AttachedMounts& out) {
  if (index >= kMaxDisks) return make_error(Errc::invalid_argument, "too many volumes: a VM has at most 26 disks");
  const Volume volume = HYPER_TRY(store.find(mount.source));
  out.locks.push_back(HYPER_TRY(claim_volume(store, volume, mount.read_only, container)));
  out.disks.push_back(virtio::BlkOptions{.path = volume.device(), .read_only = mount.read_only,
                                         .serial = volume.name.substr(0, 20), .io_thread = true});
  const std::string device = std::string("/dev/vd") + static_cast<char>('a' + index);
  out.guest.push_back({{"type", "block"}, {"source", device}, {"target", mount.target}, {"read_only", mount.read_only}});
  return {};
}

// A virtiofsd serving `source` and the virtio-fs device for it; its tag.
Result<std::string> start_share(const Container& container, const std::filesystem::path& source, bool read_only,
                                const std::filesystem::path& socket_dir, AttachedMounts& out) {
  const std::string tag = "hyperfs" + std::to_string(out.shares.size());
  const std::string socket_name = "virtiofs-" + std::to_string(out.shares.size()) + ".sock";
  // Bound as the VMM will reach it: a container's directory is longer than a socket
  // address can be, so relative to the jailed VMM's working directory.
  ShareSpec spec{source, read_only, socket_dir / socket_name,
                 container.dir / ("virtiofsd-" + std::to_string(out.shares.size()) + ".log")};
  out.daemons.push_back(HYPER_TRY(VirtiofsDaemon::start(spec)));
  out.shares.push_back(SharedDirectory{tag, (socket_dir / socket_name).string()});
  return tag;
}

Status attach_share(const Container& container, const Mount& mount, const std::filesystem::path& socket_dir,
                    AttachedMounts& out) {
  const std::string tag = HYPER_TRY(start_share(container, mount.source, mount.read_only, socket_dir, out));
  out.guest.push_back({{"type", "virtiofs"}, {"source", tag}, {"target", mount.target}, {"read_only", mount.read_only}});
  return {};
}

// A fresh directory for this start's copies, shared once for all of them.
Result<std::filesystem::path> copied_files_dir(const Container& container, const std::filesystem::path& socket_dir,
                                               AttachedMounts& out) {
  const auto dir = container.dir / kCopiedFilesDir;
  if (!out.files_tag.empty()) return dir;
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (!std::filesystem::create_directory(dir, ec) || ec)
    return make_error(Errc::io, "create " + dir.string() + ": " + ec.message());
  out.files_tag = HYPER_TRY(start_share(container, dir, false, socket_dir, out));
  return dir;
}

Status attach_file_copy(const Container& container, const Mount& mount, const std::filesystem::path& socket_dir,
                        AttachedMounts& out) {
  const auto dir = HYPER_TRY(copied_files_dir(container, socket_dir, out));
  const std::string name = "file" + std::to_string(out.guest.size());
  std::error_code ec;
  std::filesystem::copy_file(mount.source, dir / name, ec);
  if (ec) return make_error(Errc::io, "copy bind source " + mount.source + ": " + ec.message());
  struct stat st{};
  // The copy keeps the file's owner, as the bind it stands for would show it.
  if (::stat(mount.source.c_str(), &st) == 0) (void)::chown((dir / name).c_str(), st.st_uid, st.st_gid);
  out.guest.push_back({{"type", "virtiofs"}, {"source", out.files_tag}, {"subpath", name}, {"target", mount.target},
                       {"read_only", mount.read_only}});
  return {};
}

bool is_directory(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_directory(path, ec);
}

}  // namespace

Result<AttachedMounts> attach_mounts(const std::filesystem::path& volumes_dir, const Container& container,
                                     size_t first_disk, const std::filesystem::path& socket_dir) {
  AttachedMounts out;
  if (const auto& root = container.config.host_rootfs)
    out.root_tag = HYPER_TRY(start_share(container, root->path, root->read_only, socket_dir, out));
  if (container.config.mounts.empty()) return out;
  const VolumeStore store = HYPER_TRY(VolumeStore::open(volumes_dir));
  for (const auto& mount : container.config.mounts) {
    switch (mount.type) {
      case MountType::volume:
        HYPER_CHECK(attach_volume(store, container, mount, first_disk + out.disks.size(), out));
        break;
      case MountType::bind:
        HYPER_CHECK(is_directory(mount.source) ? attach_share(container, mount, socket_dir, out)
                                               : attach_file_copy(container, mount, socket_dir, out));
        break;
      case MountType::tmpfs:
        out.guest.push_back({{"type", "tmpfs"}, {"target", mount.target}, {"read_only", mount.read_only},
                             {"size", mount.tmpfs_size}, {"mode", mount.tmpfs_mode}});
        break;
    }
  }
  return out;
}

}  // namespace hyper::runtime::volume
