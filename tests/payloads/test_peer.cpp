// The host side of the network and vsock end-to-end tests (and benchmarks):
//   test-peer tcp-echo ADDRESS PORT        echo one TCP connection, then exit
//   test-peer udp-echo ADDRESS PORT        echo every UDP datagram, until killed (static, so
//       it also runs in test images: Debian's busybox nc has no UDP)
//   test-peer unix-echo PATH               echo one connection on a Unix listener at PATH
//   test-peer vsock-listen-echo PORT       echo one connection on AF_VSOCK port PORT
//       (the host end of a vhost-vsock guest: QEMU, in the benchmarks)
//   test-peer vsock-connect SOCKET PORT BYTES
//       connect to guest port PORT through the VMM's vsock socket ("CONNECT PORT\n" ->
//       "OK ...\n"), send BYTES and verify their echo; retries while the guest is not
//       listening yet (up to 60 s)
// Exit status 0 on success; errors go to stderr.
#include <arpa/inet.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tests/payloads/echo.hpp"

namespace {

int die(const char* what) {
  std::fprintf(stderr, "test-peer: %s: %s\n", what, std::strerror(errno));
  return 1;
}

int echo_one(int listener) {
  const int conn = ::accept(listener, nullptr, nullptr);
  if (conn < 0) return die("accept");
  const int64_t n = hyper::testing::echo_until_eof(conn);
  std::printf("test-peer: echoed %lld bytes\n", static_cast<long long>(n));
  return n > 0 ? 0 : 1;
}

int tcp_echo(const char* address, const char* port) {
  const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(std::atoi(port)));
  if (::inet_pton(AF_INET, address, &a.sin_addr) != 1) return die("bad address");
  if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(s, 1) != 0) return die("tcp listen");
  return echo_one(s);
}

int udp_echo(const char* address, const char* port) {
  const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(std::atoi(port)));
  if (::inet_pton(AF_INET, address, &a.sin_addr) != 1) return die("bad address");
  if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return die("udp bind");
  char buffer[2048];
  for (;;) {
    sockaddr_in from{};
    socklen_t length = sizeof from;
    const ssize_t n = ::recvfrom(s, buffer, sizeof buffer, 0, reinterpret_cast<sockaddr*>(&from), &length);
    if (n < 0) return die("recvfrom");
    (void)::sendto(s, buffer, static_cast<size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), length);
  }
}

sockaddr_un unix_address(const char* path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path, sizeof a.sun_path - 1);
  return a;
}

int unix_echo(const char* path) {
  const int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const sockaddr_un a = unix_address(path);
  ::unlink(path);
  if (::bind(s, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0 || ::listen(s, 1) != 0) return die("unix listen");
  const int rc = echo_one(s);
  ::unlink(path);
  return rc;
}

int vsock_listen_echo(const char* port) {
  const int s = ::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_vm a{};
  a.svm_family = AF_VSOCK;
  a.svm_cid = VMADDR_CID_ANY;
  a.svm_port = static_cast<unsigned>(std::atoi(port));
  if (s < 0 || ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(s, 1) != 0)
    return die("vsock listen (is vhost_vsock loaded?)");
  return echo_one(s);
}

// Reads one line (up to 64 bytes) byte by byte, so nothing after it is consumed.
std::string read_line(int fd) {
  std::string line;
  char c;
  while (line.size() < 64 && ::read(fd, &c, 1) == 1) {
    if (c == '\n') return line;
    line += c;
  }
  return "";
}

int vsock_connect(const char* socket_path, const char* port, const char* bytes) {
  const sockaddr_un a = unix_address(socket_path);
  const std::string request = std::string("CONNECT ") + port + "\n";
  for (int attempt = 0; attempt < 600; ++attempt, ::usleep(100 * 1000)) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0 ||
        ::write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
      ::close(fd);
      continue;
    }
    const std::string reply = read_line(fd);
    if (reply.rfind("OK ", 0) != 0) {  // the guest is not listening yet
      ::close(fd);
      continue;
    }
    const auto r = hyper::testing::send_and_verify_echo(fd, std::strtoull(bytes, nullptr, 10));
    ::close(fd);
    if (!r.ok) {
      std::fprintf(stderr, "test-peer: vsock echo failed after %llu bytes: %s\n",
                   static_cast<unsigned long long>(r.verified), r.error);
      return 1;
    }
    std::printf("test-peer: vsock echo verified %llu bytes in %.3f s (%.1f MB/s) via host port %s\n",
                static_cast<unsigned long long>(r.verified), r.seconds,
                static_cast<double>(r.verified) / r.seconds / 1e6, reply.c_str() + 3);
    return 0;
  }
  std::fprintf(stderr, "test-peer: the guest never accepted a vsock connection on port %s\n", port);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "tcp-echo" && argc == 4) return tcp_echo(argv[2], argv[3]);
  if (mode == "udp-echo" && argc == 4) return udp_echo(argv[2], argv[3]);
  if (mode == "unix-echo" && argc == 3) return unix_echo(argv[2]);
  if (mode == "vsock-listen-echo" && argc == 3) return vsock_listen_echo(argv[2]);
  if (mode == "vsock-connect" && argc == 5) return vsock_connect(argv[2], argv[3], argv[4]);
  std::fprintf(stderr,
               "usage: test-peer tcp-echo ADDRESS PORT | unix-echo PATH | vsock-listen-echo PORT |\n"
               "                 vsock-connect SOCKET PORT BYTES\n");
  return 2;
}
