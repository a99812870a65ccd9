// The container's root filesystem and environment inside the VM: the flattened image
// (read-only) under a writable overlay, the kernel filesystems a process expects, the
// hostname, the network and the files Docker writes into /etc.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

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
};

struct InterfaceSpec {
  std::string name;     // "eth0"
  std::string address;  // "10.0.2.15/24"
  std::string gateway;  // optional
  uint32_t mtu = 0;     // 0 = leave the default
};

struct NetworkSpec {
  std::vector<InterfaceSpec> interfaces;
  std::vector<std::string> dns;
  std::vector<std::string> dns_search;
  std::vector<std::pair<std::string, std::string>> extra_hosts;  // ip, names
};

struct ContainerSpec {
  RootfsSpec rootfs;
  std::string hostname;
  NetworkSpec network;
};

// Mounts the root at kContainerRoot and everything inside it; returns an O_PATH fd to it.
Result<UniqueFd> prepare_container(const ContainerSpec& spec);

// A stopped container's scratch disk, mounted read-only where a running container's is,
// so that kUpperDir is its writable layer as the container left it (`export_disk`).
Status mount_stopped_writable_layer(const std::string& writable_device);

// The init's own view: /proc, /sys and /dev, needed before anything else.
Status mount_init_filesystems();

}  // namespace hyper::guest
