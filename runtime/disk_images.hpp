// The disks a container VM gets besides the layers: the image's flattened root
// filesystem, built once per image in a builder VM and cached beside the image, and the
// container's own writable layer.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "runtime/image_store.hpp"
#include "vmm/result.hpp"

namespace hyper::runtime {

// The cached root filesystem of `image` (read-only ext4), building it first if needed.
// `progress` receives one-line status messages for the user.
Result<std::filesystem::path> ensure_rootfs(const ImageStore& store, const Image& image,
                                            const std::function<void(const std::string&)>& progress);

// Creates `path` as an empty ext4 filesystem of `size_mib` (sparse), by copying a
// template formatted once per size under `cache_dir`.
Status create_scratch_disk(const std::filesystem::path& cache_dir, const std::filesystem::path& path, uint64_t size_mib);

// Runs mke2fs on a sparse file of `size_mib`. Scratch disks go without a journal; volumes,
// whose data must survive a killed VM, keep one.
Status make_ext4(const std::filesystem::path& path, uint64_t size_mib, uint64_t bytes_per_inode, bool journal = false);

}  // namespace hyper::runtime
