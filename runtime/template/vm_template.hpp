// VM templates (docs/snapshots.md, "Templates"): for each shape of container VM (guest
// kernel, init, memory, vCPUs, disks, NICs), one VM booted once to where its init waits
// for a container, and saved. A container of that shape then restores the template
// instead of booting: its disks replace the template's empty ones, and the start request
// gives it its own identity (entropy, clock, hostname, MACs and addresses).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "vmm/result.hpp"

namespace hyper::runtime {

struct TemplateShape {
  uint64_t memory_mib = 0;
  uint32_t cpus = 0;
  std::vector<bool> read_only_disks;  // one per virtio-blk disk, in order
  size_t nets = 0;                    // virtio-net NICs
};

// What identifies a template: the shape; the host's kernel release and CPU signature; and
// the VMM (this program), the guest's kernel and its init as files (path, size,
// modification time); hashed. A change to any of them makes a new template.
Result<std::string> template_key(const TemplateShape& shape);

// The template snapshot for `shape` under `templates_dir`, made first when there is
// none; concurrent callers wait for the one that makes it. `log` tells of a new one.
Result<std::filesystem::path> ensure_template(const std::filesystem::path& templates_dir, const TemplateShape& shape,
                                              const std::function<void(const std::string&)>& log);

}  // namespace hyper::runtime
