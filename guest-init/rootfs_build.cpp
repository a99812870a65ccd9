#include "guest-init/rootfs_build.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>

#include "guest-init/layer_apply.hpp"
#include "guest-init/system.hpp"
#include "guest-init/tar_reader.hpp"

namespace hyper::guest {
namespace {

constexpr const char* kTarget = "/run/target";

Result<Json> apply_layers(const BuildSpec& spec, int root_fd) {
  UniqueFd source(::open(spec.source_device.c_str(), O_RDONLY | O_CLOEXEC));
  if (!source.valid()) return Error::from_errno("open " + spec.source_device);
  Json layers = Json::array();
  const uint64_t started = monotonic_ns();
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    tar::FdSource tar(source.get(), spec.layers[i].offset, spec.layers[i].size);
    auto stats = layer::apply_layer(root_fd, tar, layer::ApplyOptions{});
    if (!stats.ok()) {
      auto error = std::move(stats).error();
      error.message = "layer " + std::to_string(i + 1) + " of " + std::to_string(spec.layers.size()) + ": " + error.message;
      return error;
    }
    layers.push_back({{"entries", stats->entries}, {"bytes", stats->bytes_written}, {"whiteouts", stats->whiteouts},
                      {"skipped", stats->skipped}});
  }
  return Json{{"layers", layers}, {"apply_ns", monotonic_ns() - started}};
}

}  // namespace

Result<Json> build_root_filesystem(const BuildSpec& spec) {
  HYPER_CHECK(make_dirs(kTarget));
  HYPER_CHECK(mount_fs(spec.target_device.c_str(), kTarget, "ext4", 0, "noinit_itable"));
  auto stats = [&]() -> Result<Json> {
    UniqueFd root(::open(kTarget, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root.valid()) return Error::from_errno(std::string("open ") + kTarget);
    // mke2fs's lost+found is not part of any image.
    ::unlinkat(root.get(), "lost+found", AT_REMOVEDIR);
    Json result = HYPER_TRY(apply_layers(spec, root.get()));
    if (::syncfs(root.get()) != 0) return Error::from_errno("sync the root filesystem");
    return result;
  }();
  if (::umount2(kTarget, 0) != 0 && stats.ok()) return Error::from_errno("unmount the root filesystem");
  return stats;
}

}  // namespace hyper::guest
