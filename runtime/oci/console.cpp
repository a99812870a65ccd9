#include "runtime/oci/console.hpp"

#include <fcntl.h>
#include <pty.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "runtime/dir_socket.hpp"

namespace hyper::runtime::oci {

Result<Pty> open_pty(uint16_t rows, uint16_t cols) {
  int master = -1, slave = -1;
  char name[64] = {};
  winsize size{rows, cols, 0, 0};
  if (::openpty(&master, &slave, name, nullptr, rows && cols ? &size : nullptr) != 0) return Error::from_errno("openpty");
  Pty pty{UniqueFd(master), UniqueFd(slave), name};
  ::fcntl(pty.master.get(), F_SETFD, FD_CLOEXEC);
  ::fcntl(pty.slave.get(), F_SETFD, FD_CLOEXEC);
  return pty;
}

Status send_console(const std::string& socket_path, const Pty& pty) {
  const std::filesystem::path path(socket_path);
  const std::string name = path.filename().string();
  UniqueFd fd = HYPER_TRY(connect_in_dir(path.has_parent_path() ? path.parent_path() : ".", name.c_str(), "the console socket"));
  iovec data{const_cast<char*>(pty.name.data()), pty.name.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr message{};
  message.msg_iov = &data;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof control;
  cmsghdr* header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(sizeof(int));
  const int master = pty.master.get();
  std::memcpy(CMSG_DATA(header), &master, sizeof master);
  if (::sendmsg(fd.get(), &message, MSG_NOSIGNAL) < 0) return Error::from_errno("send the terminal to " + socket_path);
  return {};
}

Status take_terminal(const Pty& pty) {
  if (::setsid() < 0) return Error::from_errno("setsid");
  if (::ioctl(pty.slave.get(), TIOCSCTTY, 0) != 0) return Error::from_errno("make " + pty.name + " the controlling terminal");
  for (int fd : {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO})
    if (::dup2(pty.slave.get(), fd) < 0) return Error::from_errno("dup2 " + pty.name);
  return {};
}

}  // namespace hyper::runtime::oci
