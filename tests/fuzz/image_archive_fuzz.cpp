// Image archives come from users today and from registries next: any bytes given to
// `hyper load` must load verified images or fail with a message, storing nothing, and
// never crash or leave staging files behind.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "runtime/image_store.hpp"

namespace {

std::filesystem::path scratch() {
  static const std::filesystem::path dir = [] {
    char name[] = "/tmp/hyper-fuzz-image-XXXXXX";
    if (::mkdtemp(name) == nullptr) std::abort();
    return std::filesystem::path(name);
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto dir = scratch();
  const auto archive = dir / "input.tar";
  std::ofstream(archive, std::ios::binary).write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  auto store = hyper::runtime::ImageStore::open(dir / "store");
  if (!store.ok()) std::abort();
  auto loaded = store->load(archive);
  if (!loaded.ok() && loaded.error().message.empty()) std::abort();
  if (loaded.ok()) {
    for (const auto& image : *loaded) {
      if (!store->find(image.id).ok()) std::abort();
    }
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir / "store", ignored);
  return 0;
}
