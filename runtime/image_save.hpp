// `hyper save`: images as one tar that is at once an OCI image layout and a
// docker-archive, as Docker 25 and later write it, so that `hyper load`, `docker load`,
// skopeo's `docker-archive:` and `oci-archive:` all read it:
//
//   blobs/sha256/<hex>   every config and layer exactly as stored (a layer stays
//                        compressed if it was; docker-archive readers sniff that), and
//                        the manifest index.json names
//   index.json           an OCI index: one entry per name (io.containerd.image.name the
//                        whole reference, org.opencontainers.image.ref.name its tag), or
//                        one without annotations for an image saved by id
//   manifest.json        docker-archive: Config and Layers as paths "blobs/sha256/<hex>",
//                        RepoTags in their familiar form
//   oci-layout, repositories
//
// index.json names the stored manifest when it is an OCI one, so its digest survives the
// trip through OCI readers. A Docker schema 2 manifest (images loaded from docker-archives,
// commits, imports, some pulls) is named through an OCI manifest of the same config and
// layers written beside it instead: OCI readers such as skopeo's take nothing else from
// an index. `hyper load` reads the docker-archive half, where it rebuilds the Docker
// manifest it made at the first load, commit or import byte for byte.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "runtime/image_store.hpp"
#include "vmm/result.hpp"

namespace hyper::runtime {

struct SaveItem {
  Image image;
  std::vector<std::string> tags;  // normalised names to save it under; none when named by id
};

// The images `hyper save` names: a tag, a repository alone (every tag it has, as Docker
// does), an id or id prefix, or NAME@DIGEST. One item per image, with all its names.
Result<std::vector<SaveItem>> resolve_save_names(const ImageStore& store, const std::vector<std::string>& names);

// Writes the archive to `fd` (a file or a pipe). Holds the store's writer lock meanwhile,
// so rmi and prune cannot delete a blob half-way. Each blob is checked against its digest
// on the way; a mismatch fails the save (after its bytes were written).
Status write_save_archive(const ImageStore& store, const std::vector<SaveItem>& items, int fd);

// Writes the archive to `path` through `path` + ".tmp", renamed into place when complete.
Status save_to_file(const ImageStore& store, const std::vector<SaveItem>& items, const std::filesystem::path& path);

}  // namespace hyper::runtime
