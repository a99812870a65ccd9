// Applies an OCI image layer (an uncompressed tar changeset) onto a root filesystem.
// Layers are hostile, and this is where "a layer never writes outside the root" holds:
// every parent directory is resolved by the kernel inside the root (openat2 with
// RESOLVE_IN_ROOT, so symlinks, absolute or with "..", behave as under chroot), and the
// final component is only ever handled by *at() calls that do not follow symlinks.
//
// Semantics, in archive order:
// - Paths: a leading "/" and "./", empty and "." components are dropped; a ".." component
//   fails the layer. The empty path is the root: a directory entry for it updates the
//   root's metadata, any other type is an error.
// - Missing parent directories are created (0755, owned by the caller).
// - An existing non-directory at an entry's path is unlinked; an existing directory is kept
//   for a directory entry (its metadata updated) and removed recursively otherwise.
// - Whiteouts: ".wh.<name>" removes <name> from its directory, ".wh..wh..opq" every child
//   of its directory; in both cases what this same layer wrote stays (with the parents it
//   needs, whose other contents go). Whiteouts are never created themselves; one whose
//   directory does not exist does nothing.
// - Hard links: the target is normalised like a path, must exist and not be a directory.
// - Metadata: owner (if preserve_ownership), then mode (never on a symlink), then
//   extended attributes, then times (mtime as atime and mtime). Directory times are set
//   when the whole layer is written, as their children change them.
// - Character and block devices are skipped (their path cleared) when !create_devices or
//   when mknod is refused with EPERM. Fifos are always created.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "guest-init/tar_reader.hpp"
#include "vmm/result.hpp"

namespace hyper::layer {

// OCI whiteouts: ".wh.<name>" deletes <name>; the opaque marker empties its directory.
inline constexpr std::string_view kWhiteoutPrefix = ".wh.";
inline constexpr std::string_view kOpaqueWhiteout = ".wh..wh..opq";

struct ApplyOptions {
  bool preserve_ownership = true;  // chown to the archive's uid/gid (EPERM is an error)
  bool create_devices = true;      // mknod character and block devices
};

struct ApplyStats {
  uint64_t entries = 0;        // every entry of the archive, whiteouts and skipped ones too
  uint64_t regular_files = 0;
  uint64_t bytes_written = 0;  // regular files' data
  uint64_t directories = 0;    // created or updated, the root included
  uint64_t symlinks = 0;
  uint64_t hard_links = 0;
  uint64_t special_files = 0;  // fifos and devices created
  uint64_t whiteouts = 0;      // whiteout entries processed (plain and opaque)
  uint64_t skipped = 0;        // devices not created
};

// Applies one layer onto the directory `root_dirfd` (may be an O_PATH fd). Stops at the
// first error, leaving what was applied so far: the caller discards the root then.
Result<ApplyStats> apply_layer(int root_dirfd, tar::ByteSource& tar, const ApplyOptions& options = {});

// The path relative to the root ("" is the root itself), or nullopt if a ".." component
// would leave it.
[[nodiscard]] std::optional<std::string> normalise_path(std::string_view path);

}  // namespace hyper::layer
