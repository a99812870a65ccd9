// Applies each input as a layer onto an empty root in a temporary directory. Whatever the
// layer, nothing may appear outside the root: the directory next to it ("outside", the
// target of escapes through "..") must stay empty and the temporary directory must hold
// only the two. The root is removed after every input.
#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "guest-init/layer_apply.hpp"

namespace {

std::vector<std::string> names_in(int dirfd) {
  std::vector<std::string> names;
  const int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR* dir = fd >= 0 ? ::fdopendir(fd) : nullptr;
  if (dir == nullptr) std::abort();
  while (const dirent* de = ::readdir(dir)) {
    const std::string_view name = de->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  ::closedir(dir);
  return names;
}

// Removes a tree without following symlinks, making directories writable first (a layer
// may leave them 0000).
void remove_tree(int parent, const std::string& name) {
  struct stat st;
  if (::fstatat(parent, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    ::fchmodat(parent, name.c_str(), 0700, 0);
    const int fd = ::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) std::abort();
    for (const std::string& child : names_in(fd)) remove_tree(fd, child);
    ::close(fd);
    if (::unlinkat(parent, name.c_str(), AT_REMOVEDIR) != 0) std::abort();
  } else if (::unlinkat(parent, name.c_str(), 0) != 0) {
    std::abort();
  }
}

struct Sandbox {
  Sandbox() {
    // Deep trees hold one fd per level while they are removed.
    rlimit limit;
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) {
      limit.rlim_cur = limit.rlim_max;
      ::setrlimit(RLIMIT_NOFILE, &limit);
    }
    // tmpfs where there is one: some 30 times faster than a disk for this.
    char shm_name[] = "/dev/shm/hyper-layer-fuzz-XXXXXX";
    char tmp_name[] = "/tmp/hyper-layer-fuzz-XXXXXX";
    const char* name = ::mkdtemp(shm_name);
    if (name == nullptr) name = ::mkdtemp(tmp_name);
    if (name == nullptr) std::abort();
    base_path = name;
    base = ::open(name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (base < 0 || ::mkdirat(base, "outside", 0755) != 0) std::abort();
  }
  ~Sandbox() {
    remove_tree(base, "outside");
    ::close(base);
    ::rmdir(base_path.c_str());
  }
  std::string base_path;
  int base = -1;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Sandbox sandbox;
  if (::mkdirat(sandbox.base, "root", 0755) != 0) std::abort();
  const int root = ::openat(sandbox.base, "root", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) std::abort();
  hyper::tar::MemorySource source(std::string_view(reinterpret_cast<const char*>(data), size));
  hyper::layer::ApplyOptions options;
  options.preserve_ownership = false;
  options.create_devices = false;
  (void)hyper::layer::apply_layer(root, source, options);
  ::close(root);

  const int outside = ::openat(sandbox.base, "outside", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (outside < 0 || !names_in(outside).empty()) std::abort();
  ::close(outside);
  if (names_in(sandbox.base).size() != 2) std::abort();
  remove_tree(sandbox.base, "root");
  return 0;
}
