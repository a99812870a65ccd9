// hyper-init: PID 1 of every container VM. It mounts what it needs, connects to the host
// over vsock and hands over to the agent, which starts the container (or builds an
// image's root filesystem, or exports a stopped container's writable layer) as the host asks.
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "guest-init/agent.hpp"
#include "guest-init/container.hpp"
#include "guest-init/protocol.hpp"
#include "guest-init/system.hpp"

namespace {

using namespace hyper;

void attach_console() {
  const int fd = ::open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return;
  ::dup2(fd, 1);
  ::dup2(fd, 2);
  ::close(fd);
}

Result<UniqueFd> connect_to_host() {
  sockaddr_vm addr{};
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = VMADDR_CID_HOST;
  addr.svm_port = agent::kBootPort;
  int last_error = 0;
  // The host listens before the VM starts; a retry only covers a transient reset.
  for (int attempt = 0; attempt < 50; ++attempt) {
    UniqueFd fd(::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return Error::from_errno("vsock socket");
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return fd;
    last_error = errno;
    ::usleep(20'000);
  }
  return Error::from_errno("connect to the host on vsock port " + std::to_string(agent::kBootPort), last_error);
}

[[noreturn]] void fail(const guest::Ports& ports, const Error& error) {
  std::fprintf(stderr, "hyper-init: %s\n", error.message.c_str());
  ports.power_off(125);
}

}  // namespace

int main() {
  const uint64_t init_ns = guest::monotonic_ns();
  const guest::Ports ports;
  ports.mark_boot_done();
  if (auto mounted = guest::mount_init_filesystems(); !mounted.ok()) fail(ports, mounted.error());
  attach_console();
  auto connection = connect_to_host();
  if (!connection.ok()) fail(ports, connection.error());
  guest::Agent(ports, init_ns).run(std::move(connection).value());
}
