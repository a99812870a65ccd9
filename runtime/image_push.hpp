// `hyper push`: an image's layers and config to a registry, then its manifest, last, so
// that a manifest never names a blob the registry lacks. A blob the registry has is
// skipped (HEAD); one another repository of the registry has is mounted from there;
// the rest are uploaded whole, or in chunks when larger than the chunk size.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/image_pull.hpp"
#include "runtime/image_store.hpp"
#include "runtime/registry_client.hpp"
#include "vmm/result.hpp"

namespace hyper::runtime {

struct PushOptions {
  RegistryOptions registry;
  uint64_t chunk_size = uint64_t{16} << 20;
  int max_concurrent_uploads = 3;
  ProgressFn progress;
};

struct PushResult {
  std::string tag, digest;
  uint64_t manifest_size = 0;
};

// `reference` is normalised and names a local image by tag.
Result<PushResult> push_image(ImageStore& store, const std::string& reference, const PushOptions& options);

}  // namespace hyper::runtime
