// The image builder's job, run once per image in a throwaway VM: apply the image's layers
// in order onto an empty ext4 filesystem, which the host then caches and every container
// of that image mounts read-only. Hostile layers are unpacked inside a VM, never on the
// host, and a container's start time does not depend on the image's size.
#pragma once

#include "guest-init/messages.hpp"

namespace hyper::guest {

// The statistics of the applied layers, as the "build" reply's fields.
Result<Json> build_root_filesystem(const BuildSpec& spec);

}  // namespace hyper::guest
