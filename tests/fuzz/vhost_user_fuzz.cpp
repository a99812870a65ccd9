// A vhost-user back-end owns every byte of its replies: any stream must give a value or
// an error from each front-end call, never a crash, a hang, an fd left open or a read
// past what the request's reply holds. The input is the back-end's whole side of the
// conversation; its first byte picks which calls the front-end makes.
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "virtio/vhost_user.hpp"

using namespace hyper;
using namespace hyper::virtio::vhost_user;

namespace {

constexpr size_t kMaxInput = 16 * 1024;  // well inside a Unix socket's buffer

void calls(Frontend& frontend, uint8_t plan, int some_fd) {
  if (plan & 1) (void)frontend.open_session();
  if (plan & 2) (void)frontend.get_features();
  if (plan & 4) (void)frontend.get_protocol_features();
  if (plan & 8) (void)frontend.set_vring_num(1, 256);
  if (plan & 16) {
    const SharedRegion region{{0, 1 << 20, 0x7f0000000000, 0}, some_fd};
    (void)frontend.set_mem_table({&region, 1});
  }
  if (plan & 32) (void)frontend.set_vring_kick(0, some_fd);
  auto base = frontend.get_vring_base(plan >> 7);
  if (base && !frontend.broken().empty()) std::abort();  // a value only from a usable connection
  (void)frontend.set_owner();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > kMaxInput) return 0;
  if (size >= 1 + sizeof(Header)) {
    Header header;
    std::memcpy(&header, data + 1, sizeof header);
    (void)check_reply_header(header, Request::get_features, 8);
  }
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) std::abort();
  UniqueFd backend(pair[1]);
  if (::send(backend.get(), data + 1, size - 1, MSG_NOSIGNAL) != static_cast<ssize_t>(size - 1)) std::abort();
  ::shutdown(backend.get(), SHUT_WR);  // then end-of-file: no call waits for more
  auto frontend = Frontend::adopt(UniqueFd(pair[0]), 100);
  if (!frontend) std::abort();
  UniqueFd some_fd(::eventfd(0, EFD_CLOEXEC));
  calls(*frontend, data[0], some_fd.get());
  return 0;
}
