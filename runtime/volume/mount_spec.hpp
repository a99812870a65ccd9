// What a container mounts besides its image, as `run -v`, `--mount` and `--tmpfs` say it
// (Docker's syntax), kept in the container's config: named volumes (virtio-blk disks),
// host directories (virtio-fs) and tmpfs.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "vmm/result.hpp"

namespace hyper::runtime::volume {

enum class MountType { volume, bind, tmpfs };
const char* mount_type_name(MountType type);

struct Mount {
  MountType type = MountType::volume;
  std::string source;  // the volume's name, the host directory (absolute); empty for tmpfs
  std::string target;  // absolute, normalized, inside the container
  bool read_only = false;
  // An anonymous volume (`-v /path`): named by the runtime, removed with a --rm container.
  bool anonymous = false;
  uint64_t tmpfs_size = 0;  // bytes; 0: the kernel's default (half of the VM's memory)
  uint32_t tmpfs_mode = 01777;
};

// -v NAME:/path[:ro|rw], -v /host/dir:/path[:ro|rw], -v /path (an anonymous volume).
Result<Mount> parse_volume_flag(const std::string& spec);
// --mount type=volume|bind|tmpfs,source=...,target=...,readonly[,tmpfs-size=..][,tmpfs-mode=..]
Result<Mount> parse_mount_flag(const std::string& spec);
// --tmpfs /path[:size=64m,mode=1770,ro]
Result<Mount> parse_tmpfs_flag(const std::string& spec);
// Refuses two mounts on one target and a mount on "/".
Status check_mounts(const std::vector<Mount>& mounts);

// "/data//x/" -> "/data/x"; ".." is refused, and so is "/" (`flag` names the input in errors).
Result<std::string> normalize_target(const std::string& path, const std::string& flag);

// "64m", "1g", "10G", "512MiB", "1048576": bytes.
Result<uint64_t> parse_byte_size(const std::string& text);

nlohmann::json mount_json(const Mount& mount);
Result<Mount> parse_mount_json(const nlohmann::json& json);

}  // namespace hyper::runtime::volume
