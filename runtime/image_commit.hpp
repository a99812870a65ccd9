// New images from a layer tar: `hyper commit` puts a container's writable layer (the
// agent's export, runtime/container_export.hpp) on top of the container's image, `hyper
// import` makes a root filesystem tar the only layer of a fresh image.
//
// The layer is stored gzip-compressed (compressed while it streams in, hashed both ways:
// the blob's digest and the uncompressed diff_id). The new config is the base image's
// config document with its unknown fields kept, the container's settings and the
// --change instructions applied, the diff_id appended, a history entry added and
// `created` set to now; the manifest is a Docker schema 2 manifest naming the base
// layers and the new one. The store's writer lock is held from before the first blob is
// written until the image is indexed, so prune never takes the blobs of a half-made image.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/container_store.hpp"
#include "runtime/image_formats.hpp"
#include "runtime/image_store.hpp"
#include "vmm/result.hpp"

namespace hyper::runtime {

// A layer blob written to a temporary file, ready for ImageStore::put_blob_file.
struct LayerBlob {
  std::filesystem::path path;
  std::string digest;   // of the gzip-compressed file
  std::string diff_id;  // of the uncompressed tar
  uint64_t size = 0;    // compressed
};

// Compresses an uncompressed layer tar with gzip into a new file under `dir` while it
// streams in.
class LayerBlobWriter {
 public:
  static Result<LayerBlobWriter> create(const std::filesystem::path& dir);
  LayerBlobWriter(LayerBlobWriter&&) noexcept;
  LayerBlobWriter& operator=(LayerBlobWriter&&) = delete;
  ~LayerBlobWriter();

  Status write(const void* data, size_t size);
  [[nodiscard]] uint64_t plain_size() const;
  // Ends the gzip stream; the writer is spent afterwards.
  Result<LayerBlob> finish();

 private:
  struct State;
  explicit LayerBlobWriter(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

struct NewImage {
  std::string comment;     // -m: the history entry's comment
  std::string author;      // -a
  std::string created_by;  // the history entry's created_by (may be empty)
  std::string container;   // commit: the container's id, recorded as "container"
  // Commit: the container's settings ("Cmd", "Env", ...) put into the config before the
  // changes, as Docker commits what the container ran with.
  formats::Json run_config = formats::Json::object();
  std::vector<std::string> changes;  // --change instructions
  std::vector<std::string> tags;     // normalised; moved to the new image
};

// The settings of a container that a commit keeps, as image config members.
formats::Json run_config_of(const ContainerConfig& config);

// Builds and indexes an image of `layer` on top of `base` (or alone, in a fresh linux/amd64
// config, without one). The caller holds `store.writer_lock()` since before `layer` was
// written; the layer's file is moved into the store.
Result<Image> build_image(ImageStore& store, const std::optional<Image>& base, const LayerBlob& layer,
                          const NewImage& options);

// `hyper import`: the tar read from `fd` (plain, gzip or zstd) as the only layer.
Result<Image> import_image(ImageStore& store, int fd, const NewImage& options);

// `hyper commit`: the running container's writable layer on top of `base`, its image.
// The container keeps running: files it changes meanwhile may be caught half-written.
Result<Image> commit_container(ImageStore& store, const Container& container, const Image& base,
                               const NewImage& options);

// `hyper commit` of a stopped container: its writable layer is read from its scratch disk
// in a VM booted for that alone, under the container's VM claim (ContainerStore::claim_vm).
Result<Image> commit_stopped_container(ImageStore& store, const Container& container, const FileLock& vm_claim,
                                       const Image& base, const NewImage& options);

}  // namespace hyper::runtime
