// `hyper pull`: a manifest (through a manifest list or OCI index, for the platform asked
// for), its config and its layers from a registry into the image store. Layers download
// in parallel into images/partial/, resume from there after an interruption, and become
// blobs only once their digest and size check out.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "runtime/image_formats.hpp"
#include "runtime/image_store.hpp"
#include "runtime/registry_client.hpp"
#include "vmm/result.hpp"

namespace hyper::runtime {

// One line of progress, as Docker shows it: `id` is a layer's short digest (or empty for
// the image as a whole), `status` "Pulling fs layer", "Downloading", "Pull complete"...
struct ProgressEvent {
  std::string id, status;
  uint64_t current = 0, total = 0;  // bytes, for Downloading/Pushing
};
// Called from one thread at a time (the pull serialises its workers' events).
using ProgressFn = std::function<void(const ProgressEvent&)>;

// "linux/arm64/v8" -> {linux, arm64, v8}; "arm64" alone means linux/arm64.
Result<formats::Platform> parse_platform(const std::string& text);
std::string platform_name(const formats::Platform& platform);

struct PullOptions {
  RegistryOptions registry;
  formats::Platform platform{"linux", "amd64", ""};
  int max_concurrent_downloads = 3;  // Docker's default
  ProgressFn progress;
};

struct PullResult {
  Image image;
  std::string reference;  // normalised
  std::string digest;     // what the reference resolved to (a manifest list's, for one)
  bool up_to_date = false;
};

Result<PullResult> pull_image(ImageStore& store, const std::string& reference, const PullOptions& options);

}  // namespace hyper::runtime
