// The nbd driver's side of `volume create`: the export must hold an ext4 file system for
// the guest to mount. One that has one already is kept as it is (its data is the point of
// a network disk); a blank one is formatted by writing the allocated blocks of a locally
// made, sparse ext4 image of the export's size.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "vmm/result.hpp"

namespace hyper::runtime::volume {

struct NbdExportInfo {
  uint64_t size_bytes = 0;
  bool formatted_now = false;  // false: it held ext4 already
};

// `scratch_dir`: where the local image is built (and removed again).
Result<NbdExportInfo> prepare_nbd_export(const std::string& uri, const std::filesystem::path& scratch_dir);

}  // namespace hyper::runtime::volume
