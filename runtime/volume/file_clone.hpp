// Copies a disk image cheaply: a reflink (FICLONE: the file systems that can share
// extents, btrfs and XFS, copy nothing until either side writes), else a sparse copy that
// reads and writes only the extents that hold data.
#pragma once

#include <filesystem>
#include <string>

#include "vmm/result.hpp"

namespace hyper::runtime::volume {

enum class CloneMethod { reflink, sparse_copy };
const char* clone_method_name(CloneMethod method);

// Creates `to` (which must not exist) as a copy of `from`, fsynced.
Result<CloneMethod> clone_file(const std::filesystem::path& from, const std::filesystem::path& to);

}  // namespace hyper::runtime::volume
