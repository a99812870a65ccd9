// hyper-init: PID 1 of every container VM. It mounts what it needs, connects to the host
// over vsock and hands over to the agent, which starts the container (or builds an
// image's root filesystem, or exports a stopped container's writable layer) as the host asks.
#include <fcntl.h>
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
  auto connection = guest::connect_to_host();
  if (!connection.ok()) fail(ports, connection.error());
  guest::Agent(ports, init_ns).run(std::move(connection).value());
}
