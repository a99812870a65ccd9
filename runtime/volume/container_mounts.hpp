// A container's mounts turned into what its VM needs, in the VMM process before it boots:
// a virtio-blk disk per volume (with the volume's use lock held for the VM's life), a
// virtiofsd and a virtio-fs device per host directory, and the start request's "mounts"
// that tell the guest init where to mount each.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "runtime/container_store.hpp"
#include "runtime/file_lock.hpp"
#include "runtime/volume/virtiofs_daemon.hpp"
#include "virtio/blk.hpp"
#include "vmm/result.hpp"

namespace hyper::runtime::volume {

struct SharedDirectory {
  std::string tag;           // the guest mounts it by this name
  std::string socket;        // the vhost-user socket the VMM connects to
};

struct AttachedMounts {
  std::vector<virtio::BlkOptions> disks;   // after the container's own disks
  std::vector<SharedDirectory> shares;
  std::string root_tag;  // the share of ContainerConfig::host_rootfs, if any
  std::string files_tag;  // the share of the copied host files (kCopiedFilesDir), if any
  nlohmann::json guest = nlohmann::json::array();
  std::vector<FileLock> locks;
  std::vector<VirtiofsDaemon> daemons;
};

// A host file bound alone reaches the VM as a copy in this directory of the container's,
// made at each start: virtio-fs shares directories, and sharing the file's own directory
// would show the VM everything beside it.
inline constexpr const char* kCopiedFilesDir = "files";

// `first_disk`: how many disks the VM has before the volumes (/dev/vda, /dev/vdb, ...).
// `socket_dir`: where the daemons listen, named as the VMM will reach it (relative to
// its working directory when it is jailed).
Result<AttachedMounts> attach_mounts(const std::filesystem::path& volumes_dir, const Container& container,
                                     size_t first_disk, const std::filesystem::path& socket_dir);

}  // namespace hyper::runtime::volume
