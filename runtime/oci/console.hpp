// The terminal of a container or exec whose OCI process asks for one: a pty whose master
// goes to the caller's --console-socket (SCM_RIGHTS, as runc sends it) and whose slave is
// the controlling terminal of the process that relays it to the guest.
#pragma once

#include <string>

#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::runtime::oci {

struct Pty {
  UniqueFd master, slave;
  std::string name;  // /dev/pts/N
};

Result<Pty> open_pty(uint16_t rows, uint16_t cols);
// Sends `pty.master` over the Unix socket at `socket_path`.
Status send_console(const std::string& socket_path, const Pty& pty);
// In a new session's leader: the slave becomes the controlling terminal and stdio, so
// that resizes arrive as SIGWINCH.
Status take_terminal(const Pty& pty);

}  // namespace hyper::runtime::oci
