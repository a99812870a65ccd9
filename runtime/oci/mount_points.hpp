// The directories and files a bundle's mounts go on, made in its root on the host before
// the VM starts. runc makes them before it turns the root read-only; inside a VM the root
// arrives read-only already, so a bundle without them could not mount at all.
#pragma once

#include "runtime/container_store.hpp"
#include "vmm/result.hpp"

namespace hyper::runtime::oci {

// For a container on a host root: its kernel file systems' directories and each mount's
// target (a file for a file bind), resolved inside the root as a chroot would.
Status make_mount_points(const ContainerConfig& config);

}  // namespace hyper::runtime::oci
