#include "runtime/dir_socket.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

namespace hyper::runtime {
namespace {

// The socket's address through /proc/self/fd/N of the open directory `dir_fd`.
Result<sockaddr_un> address_in(const UniqueFd& dir_fd, const char* name) {
  const std::string path = "/proc/self/fd/" + std::to_string(dir_fd.get()) + "/" + name;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return make_error(Errc::invalid_argument, "socket name too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

Result<UniqueFd> open_dir(const std::filesystem::path& dir) {
  UniqueFd fd(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return Error::from_errno("open " + dir.string());
  return fd;
}

}  // namespace

Result<UniqueFd> listen_in_dir(const std::filesystem::path& dir, const char* name, int backlog) {
  const UniqueFd dir_fd = HYPER_TRY(open_dir(dir));
  sockaddr_un addr = HYPER_TRY(address_in(dir_fd, name));
  ::unlink(addr.sun_path);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Error::from_errno("socket");
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd.get(), backlog) != 0)
    return Error::from_errno("listen on " + (dir / name).string());
  return fd;
}

Result<UniqueFd> connect_in_dir(const std::filesystem::path& dir, const char* name, const std::string& what) {
  const UniqueFd dir_fd = HYPER_TRY(open_dir(dir));
  sockaddr_un addr = HYPER_TRY(address_in(dir_fd, name));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Error::from_errno("socket");
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return Error::from_errno("connect to " + what + " (" + (dir / name).string() + ")");
  return fd;
}

}  // namespace hyper::runtime
