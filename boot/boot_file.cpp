#include "boot/boot_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>

namespace hyper::boot {

Result<BootFile> open_boot_file(const std::string& path, const char* role) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd.valid()) return Error::from_errno(std::string(role) + " " + path);
  struct stat st {};
  if (::fstat(fd.get(), &st) < 0) return Error::from_errno(std::string(role) + " " + path);
  if (!S_ISREG(st.st_mode)) return make_error(Errc::invalid_argument, std::string(role) + " " + path + " is not a regular file");
  if (st.st_size == 0) return make_error(Errc::bad_image, std::string(role) + " " + path + " is empty");
  return BootFile{std::move(fd), static_cast<uint64_t>(st.st_size)};
}

}  // namespace hyper::boot
