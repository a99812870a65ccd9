// Exports an overlayfs upper directory (a container's writable layer) as an OCI layer: an
// uncompressed tar changeset whose deletions are whiteouts. It is the inverse of
// layer_apply.hpp, and `hyper commit` turns its output into an image layer.
//
// - Overlayfs marks a deleted file with a 0:0 character device; it becomes an empty
//   ".wh.<name>" file. A directory with the xattr trusted.overlay.opaque="y" replaced the
//   lower one: it is followed by "<dir>/.wh..wh..opq". Other trusted.overlay.* xattrs
//   (overlayfs bookkeeping) are left out; the rest go into pax SCHILY.xattr records.
// - Files with several links in the layer become one file and hard links to it.
// - Entries are POSIX ustar, with a pax 'x' header before any entry whose path, link
//   target, size, ids or xattrs do not fit ustar. Directories come before their
//   contents, which are sorted by name, so the same layer always gives the same bytes.
// - Sockets are left out (a layer cannot carry them), and so are etc/hostname, etc/hosts
//   and etc/resolv.conf, which the agent writes at every container start (as Docker does).
#pragma once

#include <cstdint>

#include "vmm/result.hpp"

namespace hyper::layer {

struct ExportStats {
  uint64_t entries = 0;
  uint64_t whiteouts = 0;  // plain and opaque
  uint64_t bytes = 0;      // of the whole stream
};

// Writes the tar of the directory `upper_dirfd` (opened O_RDONLY|O_DIRECTORY) to `out_fd`.
Result<ExportStats> export_layer(int upper_dirfd, int out_fd);

}  // namespace hyper::layer
