// The image store's index file (images/index.json), shared by the parts of the store
// that change it. Every change happens under the store's lock file, read-modify-replace.
//   {"images": {"<image id>": {"manifest": "sha256:..", "tags": ["docker.io/library/busybox:latest"]}}}
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "runtime/image_formats.hpp"
#include "vmm/result.hpp"

namespace hyper::runtime::index_file {

inline constexpr const char* kIndexFile = "index.json";
inline constexpr const char* kLockFile = "lock";
inline constexpr const char* kGcLockFile = "gc.lock";
// The index holds a line or two per image; this bounds a corrupt one, not a real one.
inline constexpr uint64_t kMaxIndexBytes = uint64_t{64} << 20;

// Absent means empty; anything malformed is an error naming the file.
Result<formats::Json> read_index(const std::filesystem::path& path);
// Replaces the file atomically and durably.
Status write_index(const std::filesystem::path& path, const formats::Json& index);
// Points the image at its manifest and moves each tag to it from whichever image had it,
// as `docker load` and `docker tag` do: an image that loses its last tag stays, untagged.
void move_tags(formats::Json& images, const std::string& image_id, const std::string& manifest_digest,
               const std::vector<std::string>& new_tags);

// Records "name@sha256:.." references of an image entry (its "digests"), one per
// repository: a newer digest for the same repository replaces the older one.
void add_repo_digests(formats::Json& entry, const std::vector<std::string>& repo_digests);

}  // namespace hyper::runtime::index_file
