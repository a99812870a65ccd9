// Reading an image archive for ImageStore::load: a docker-archive tar, an OCI layout tar
// or an OCI layout directory. The archive's files are copied (hashed on the way) into a
// private staging directory of the store, and every image is verified there: blobs
// against their digests and sizes, layers against the config's diff_ids. Nothing is
// committed here; the caller renames the verified files into the blob store.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "vmm/result.hpp"

namespace hyper::runtime::archive_reader {

// A verified file under the staging directory and the digest it is stored under.
struct VerifiedBlob {
  std::filesystem::path path;
  std::string digest;
};

struct ArchiveImage {
  std::string id;  // the config's digest
  std::string manifest_digest;
  std::vector<std::string> tags;    // normalised, may be empty
  std::vector<VerifiedBlob> blobs;  // manifest, config and layers
};

// Every image of `archive`, staged under `staging_dir` (which the caller removes).
Result<std::vector<ArchiveImage>> read_archive(const std::filesystem::path& archive,
                                               const std::filesystem::path& staging_dir);

}  // namespace hyper::runtime::archive_reader
