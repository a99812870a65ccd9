// The container's root filesystem and environment inside the VM: the flattened image
// (read-only) under a writable overlay, the kernel filesystems a process expects, the
// hostname, the network and the files Docker writes into /etc.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "guest-init/identity.hpp"
#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::guest {

inline constexpr const char* kContainerRoot = "/rootfs";
// The overlay's upper directory: the container's writable layer, which `export` reads.
inline constexpr const char* kUpperDir = "/run/rw/upper";

struct RootfsSpec {
  std::string image_device;     // the flattened image, mounted read-only
  std::string image_fstype = "ext4";
  std::string writable_device;  // ext4 scratch disk; empty = tmpfs
  // Instead of an image: a host directory (an OCI bundle's root) through this virtio-fs
  // tag, mounted as it is. It is the host's: the init writes no /etc files into it.
  std::string virtiofs_tag;
  bool read_only = false;
};

struct InterfaceSpec {
  std::string name;     // "eth0"
  std::string address;  // "10.0.2.15/24"
  std::string gateway;  // optional
  uint32_t mtu = 0;     // 0 = leave the default
  std::string mac;      // optional: the address to give the interface (a restored template's is not its own)
};

struct NetworkSpec {
  std::vector<InterfaceSpec> interfaces;
  std::vector<std::string> dns;
  std::vector<std::string> dns_search;
  std::vector<std::pair<std::string, std::string>> extra_hosts;  // ip, names
};

// A volume, a host directory or a tmpfs, mounted over the image at `target`.
struct MountSpec {
  enum class Type { block, virtiofs, tmpfs };
  Type type = Type::block;
  std::string source;  // block: /dev/vdX (ext4); virtiofs: the device's tag
  // virtiofs only: one entry (a file or directory) of the shared directory to bind on
  // `target`, for a host file mounted alone (an OCI bundle's /etc/hosts); empty: all of it.
  std::string subpath;
  std::string target;  // absolute, inside the container
  bool read_only = false;
  uint64_t tmpfs_size = 0;  // bytes, 0: the kernel's default
  uint32_t tmpfs_mode = 01777;
};

struct ContainerSpec {
  IdentitySpec identity;
  RootfsSpec rootfs;
  std::string hostname;
  NetworkSpec network;
  std::vector<MountSpec> mounts;
};

// A mount made for the container: where the init sees it, to freeze and unmount it.
struct MountedVolume {
  MountSpec spec;
  std::string path;  // in the init's view, e.g. /rootfs/data
};

struct PreparedContainer {
  UniqueFd root;  // O_PATH, kContainerRoot
  std::vector<MountedVolume> mounts;
};

// Mounts the root at kContainerRoot and everything inside it.
Result<PreparedContainer> prepare_container(const ContainerSpec& spec);

// A stopped container's scratch disk, mounted read-only where a running container's is,
// so that kUpperDir is its writable layer as the container left it (`export_disk`).
Status mount_stopped_writable_layer(const std::string& writable_device);

// The init's own view: /proc, /sys and /dev, needed before anything else.
Status mount_init_filesystems();

}  // namespace hyper::guest
