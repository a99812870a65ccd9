// The local image store: images loaded from docker-archive tarballs and OCI image
// layouts (tarball or directory), kept as content-addressed, verified blobs with a small
// index of tags. The registry client (pull/push) will write into the same store.
//
//   images/blobs/sha256/<hex>       every blob (config, manifest, layer), verified on write
//   images/index.json               {"images": {"<image id>": {"manifest": "sha256:..",
//                                     "tags": ["docker.io/library/busybox:latest"]}}}
//   images/by-id/<hex>/             what is derived from an image (its flattened rootfs)
//   images/lock                     flock'd around every change of index.json
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "vmm/result.hpp"

namespace hyper::runtime {

// The parts of an image's config (the OCI image config's "config" object) a container uses.
struct ImageConfig {
  std::vector<std::string> entrypoint, cmd, env;
  std::string working_dir, user, stop_signal;
};

struct LayerRef {
  std::string digest;      // of the blob as stored (compressed or not)
  std::string media_type;  // tells the compression
  uint64_t size = 0;
};

struct Image {
  std::string id;  // "sha256:<hex of the config blob>", as Docker shows it
  std::vector<std::string> tags;  // normalised: "docker.io/library/busybox:latest"
  std::string manifest_digest;
  ImageConfig config;
  std::vector<LayerRef> layers;  // bottom first
  std::vector<std::string> diff_ids;
  std::string created;       // from the config, RFC 3339, may be empty
  uint64_t size = 0;         // sum of the layer blobs
};

// One layer's place in the stream write_layer_stream produced.
struct LayerSpan {
  uint64_t offset = 0, size = 0;
};

// "busybox" -> "docker.io/library/busybox:latest"; "host:5000/a/b" keeps its host;
// "a@sha256:..." keeps the digest. Errors for references Docker would refuse.
Result<std::string> normalize_reference(const std::string& reference);
// The reverse, for output: "docker.io/library/busybox:latest" -> "busybox:latest".
std::string familiar_name(const std::string& normalized);

class ImageStore {
 public:
  static Result<ImageStore> open(const std::filesystem::path& dir);

  // Loads every image of a docker-archive tar, an OCI layout tar or an OCI layout
  // directory; blobs are verified against their digests, and nothing is stored when
  // the archive is bad. Returns the images with the tags they got.
  Result<std::vector<Image>> load(const std::filesystem::path& archive);
  // By tag (normalised first), full id, or a unique id prefix of at least 4 hex digits.
  [[nodiscard]] Result<Image> find(const std::string& reference) const;
  [[nodiscard]] Result<std::vector<Image>> list() const;

  // Where derived forms of an image live (images/by-id/<hex>).
  [[nodiscard]] std::filesystem::path image_dir(const Image& image) const;
  // Writes the image's layers, decompressed, one after another as tar streams to `fd`
  // (at its current position), each padded to 4 KiB, and returns where each one is.
  [[nodiscard]] Result<std::vector<LayerSpan>> write_layer_stream(const Image& image, int fd) const;
  [[nodiscard]] std::filesystem::path blob_path(const std::string& digest) const;

 private:
  explicit ImageStore(std::filesystem::path dir) : dir_(std::move(dir)) {}
  std::filesystem::path dir_;
};

}  // namespace hyper::runtime
