// The local image store: images loaded from docker-archive tarballs and OCI image
// layouts (tarball or directory), kept as content-addressed, verified blobs with a small
// index of tags. The registry client (pull/push) will write into the same store.
//
//   images/blobs/sha256/<hex>       every blob (config, manifest, layer), verified on write
//   images/index.json               {"images": {"<image id>": {"manifest": "sha256:..",
//                                     "tags": ["docker.io/library/busybox:latest"]}}}
//   images/by-chain/<hex>/          what is derived from an image's layers (its flattened
//                                     rootfs), keyed by the chain ID of its diff_ids
//   images/partial/<hex>            a download in progress, kept so a killed pull resumes
//   images/tmp/                     private staging of loads, commits and imports
//   images/lock                     flock'd around every change of index.json
//   images/gc.lock                  shared by writers of blobs not yet indexed, exclusive
//                                     for prune and rmi, which delete unreferenced blobs
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string_view>
#include <string>
#include <vector>

#include "runtime/file_lock.hpp"
#include "vmm/result.hpp"

namespace hyper::runtime {

// The parts of an image's config (the OCI image config's "config" object) a container uses.
struct ImageConfig {
  std::vector<std::string> entrypoint, cmd, env;
  std::string working_dir, user, stop_signal;
  std::vector<std::string> exposed_ports;  // ExposedPorts' keys: "80/tcp"
};

struct LayerRef {
  std::string digest;      // of the blob as stored (compressed or not)
  std::string media_type;  // tells the compression
  uint64_t size = 0;
};

struct Image {
  std::string id;  // "sha256:<hex of the config blob>", as Docker shows it
  std::vector<std::string> tags;  // normalised: "docker.io/library/busybox:latest"
  // Where a registry has it: "docker.io/library/busybox@sha256:..", by the digest the
  // registry named it by (a manifest list's, for a multi-platform image).
  std::vector<std::string> repo_digests;
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

// What one `remove` or `prune` did, for output like Docker's.
struct RemovalReport {
  std::vector<std::string> untagged;  // normalised tags
  std::vector<std::string> deleted;   // image ids, then blob digests
  uint64_t reclaimed_bytes = 0;
};

// The OCI chain ID of the layers `diff_ids[0..n)`: the first diff_id, then
// sha256(previous + " " + next) for each next. Empty for no layers.
Result<std::string> chain_id(const std::vector<std::string>& diff_ids);

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

  // Where derived forms of an image's layers live (images/by-chain/<hex of chain ID>);
  // images with the same layers share them.
  [[nodiscard]] Result<std::filesystem::path> derived_dir(const Image& image) const;
  // Writes the image's layers, decompressed, one after another as tar streams to `fd`
  // (at its current position), each padded to 4 KiB, and returns where each one is.
  // Each layer is checked against its diff_id on the way.
  [[nodiscard]] Result<std::vector<LayerSpan>> write_layer_stream(const Image& image, int fd) const;
  [[nodiscard]] std::filesystem::path blob_path(const std::string& digest) const;
  [[nodiscard]] bool has_blob(const std::string& digest) const;
  // A stored JSON document (manifest, config), bounded in size.
  [[nodiscard]] Result<std::string> read_blob_text(const std::string& digest) const;
  [[nodiscard]] std::filesystem::path tmp_dir() const { return dir_ / "tmp"; }
  [[nodiscard]] std::filesystem::path partial_dir() const { return dir_ / "partial"; }

  // Held (shared) from before the first blob of an image is written until it is indexed,
  // so that prune never deletes blobs an unfinished pull, load or commit still needs.
  [[nodiscard]] Result<FileLock> writer_lock() const;
  // Stores `bytes` as a blob and returns its digest; a blob already there is kept.
  Result<std::string> put_blob(std::string_view bytes);
  // Moves `file` (on the store's file system, e.g. under tmp_dir()) into the blob store
  // after checking it hashes to `expected_digest` (when not empty) and syncing it.
  // Returns the digest. The file is gone afterwards either way.
  Result<std::string> put_blob_file(const std::filesystem::path& file, const std::string& expected_digest = {});
  // The same for a file the caller hashed to `digest` while writing it (a download).
  Status adopt_blob(const std::filesystem::path& file, const std::string& digest);
  // Indexes the image whose manifest (and the config and layers it names) are already
  // stored, moving each of `tags` (normalised) to it, as docker does.
  Result<Image> add_image(const std::string& manifest_digest, const std::vector<std::string>& tags,
                          const std::vector<std::string>& repo_digests = {});
  // Adds a normalised tag to the image (moving it from any other).
  Status tag(const Image& image, const std::string& normalized_tag);
  // `hyper rmi`: a tag reference untags; the image goes when its last tag does, or when
  // named by id (refused while it has several tags unless `force`). `in_use` says whether
  // a container uses an image id; such an image is not removed unless `force`. Blobs no
  // indexed image names are deleted afterwards.
  Result<RemovalReport> remove(const std::string& reference, bool force,
                               const std::function<bool(const std::string& image_id)>& in_use);
  // `hyper image prune`: removes untagged images (every image with `all`) that no
  // container uses, then every blob, partial download and derived form nothing names.
  Result<RemovalReport> prune(bool all, const std::function<bool(const std::string& image_id)>& in_use);

 private:
  explicit ImageStore(std::filesystem::path dir) : dir_(std::move(dir)) {}
  std::filesystem::path dir_;
};

}  // namespace hyper::runtime
