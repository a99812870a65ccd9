// resolve_user_in_root: reading the image's passwd and group files without letting the
// image's symlinks lead outside its root.
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "guest-init/users.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::guest {
namespace {

// RESOLVE_IN_ROOT fails with EAGAIN when a rename or mount raced the lookup.
constexpr int kOpenAttempts = 8;

int open_in_root(int root_dirfd, const char* path) {
  open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;  // O_NONBLOCK: a FIFO must not hang us
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  long fd = -1;
  for (int attempt = 0; attempt < kOpenAttempts; ++attempt) {
    fd = ::syscall(SYS_openat2, root_dirfd, path, &how, sizeof how);
    if (fd >= 0 || (errno != EAGAIN && errno != EINTR)) break;
  }
  return static_cast<int>(fd);
}

// The contents of /<relative_path> in the root, nullopt if it does not exist.
Result<std::optional<std::string>> read_user_file(int root_dirfd, const char* relative_path) {
  const std::string shown = std::string("/") + relative_path + " in the container's root filesystem";
  UniqueFd fd(open_in_root(root_dirfd, relative_path));
  if (!fd.valid()) {
    if (errno == ENOENT) return std::optional<std::string>();
    return Error::from_errno("opening " + shown);
  }
  struct stat status {};
  if (::fstat(fd.get(), &status) != 0) return Error::from_errno("examining " + shown);
  if (!S_ISREG(status.st_mode)) return make_error(Errc::bad_image, shown + " is not a regular file");

  const std::string too_large = shown + " is larger than " + std::to_string(kMaxUserFileSize >> 20) + " MiB";
  if (status.st_size > static_cast<off_t>(kMaxUserFileSize)) return make_error(Errc::bad_image, too_large);
  // Chunks, not st_size: the file may change while we read, and the bound must hold.
  std::string contents;
  char chunk[16 * 1024];
  while (true) {
    const ssize_t got = ::read(fd.get(), chunk, sizeof chunk);
    if (got < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno("reading " + shown);
    }
    if (got == 0) break;
    if (contents.size() + static_cast<size_t>(got) > kMaxUserFileSize) {
      return make_error(Errc::bad_image, too_large);
    }
    contents.append(chunk, static_cast<size_t>(got));
  }
  return std::optional<std::string>(std::move(contents));
}

}  // namespace

Result<ResolvedUser> resolve_user_in_root(int root_dirfd, std::string_view spec) {
  const auto passwd = HYPER_TRY(read_user_file(root_dirfd, "etc/passwd"));
  const auto group = HYPER_TRY(read_user_file(root_dirfd, "etc/group"));
  const auto view = [](const std::optional<std::string>& file) -> std::optional<std::string_view> {
    if (!file) return std::nullopt;
    return std::string_view(*file);
  };
  return resolve_user(spec, view(passwd), view(group));
}

}  // namespace hyper::guest
