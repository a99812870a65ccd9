#include "virtio/nbd_connection.hpp"


#include <algorithm>

#include "virtio/nbd_library.hpp"
#include "vmm/clock.hpp"

namespace hyper::virtio {
namespace {

std::string duration_text(uint32_t ms) {
  return ms % 1000 ? std::to_string(ms) + " ms" : std::to_string(ms / 1000) + " s";
}

}  // namespace

void NbdClose::operator()(nbd_handle* handle) const { nbd().close(handle); }

Error nbd_error(const std::string& what) {
  const char* why = nbd().get_error();
  return make_error(Errc::io, what + ": " + (why ? why : "unknown libnbd error"));
}

Status nbd_poll_until(nbd_handle* handle, uint32_t timeout_ms, const std::function<bool()>& done,
                      const std::string& what) {
  const uint64_t deadline_ns = monotonic_ns() + uint64_t{timeout_ms} * 1'000'000;
  while (!done()) {
    const uint64_t now = monotonic_ns();
    if (now >= deadline_ns)
      return make_error(Errc::io, what + ": the NBD server did not answer within " + duration_text(timeout_ms));
    const uint64_t left_ms = std::min<uint64_t>((deadline_ns - now + 999'999) / 1'000'000, 60'000);
    if (nbd().poll(handle, static_cast<int>(left_ms)) < 0) return nbd_error(what);
  }
  return {};
}

Result<NbdHandle> connect_nbd(const std::string& uri, uint32_t timeout_ms) {
  HYPER_TRY(load_nbd_library());
  NbdHandle handle(nbd().create());
  if (!handle) return nbd_error("libnbd");
  if (nbd().set_uri_allow_transports(handle.get(), LIBNBD_ALLOW_TRANSPORT_TCP | LIBNBD_ALLOW_TRANSPORT_UNIX) < 0 ||
      nbd().set_uri_allow_tls(handle.get(), LIBNBD_TLS_DISABLE) < 0)
    return nbd_error("libnbd");
  if (nbd().aio_connect_uri(handle.get(), uri.c_str()) < 0) return nbd_error("connect to " + uri);
  HYPER_CHECK(nbd_poll_until(handle.get(), timeout_ms, [&] { return nbd().aio_is_connecting(handle.get()) != 1; },
                             "connect to " + uri));
  if (nbd().aio_is_ready(handle.get()) != 1) return nbd_error("connect to " + uri);
  return handle;
}

}  // namespace hyper::virtio
