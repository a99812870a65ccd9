#include "runtime/oci/mount_points.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include "guest-init/system.hpp"

namespace hyper::runtime::oci {
namespace {

// Where the guest init mounts its own file systems (guest-init/container.cpp).
constexpr const char* kInitMountPoints[] = {"proc", "sys", "dev", "tmp"};

bool under_init_file_system(const std::string& target) {
  return target.starts_with("/dev/") || target.starts_with("/proc/") || target.starts_with("/sys/");
}

bool binds_a_file(const volume::Mount& mount) {
  struct stat st{};
  return mount.type == volume::MountType::bind && ::stat(mount.source.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

Status make_mount_points(const ContainerConfig& config) {
  if (!config.host_rootfs) return {};
  const std::string& root_path = config.host_rootfs->path;
  const UniqueFd root(::open(root_path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) return Error::from_errno("open the bundle's root " + root_path);
  for (const char* dir : kInitMountPoints) (void)HYPER_TRY(guest::make_dirs_in_root(root.get(), dir));
  for (const auto& mount : config.mounts) {
    if (under_init_file_system(mount.target)) continue;  // made by the init, in its own file systems
    const std::string target = mount.target.substr(1);
    if (binds_a_file(mount))
      (void)HYPER_TRY(guest::make_file_in_root(root.get(), target));
    else
      (void)HYPER_TRY(guest::make_dirs_in_root(root.get(), target));
  }
  return {};
}

}  // namespace hyper::runtime::oci
