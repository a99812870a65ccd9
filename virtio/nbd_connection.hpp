// A libnbd connection to an NBD server, shared by the VMM's NBD disks and by the runtime's
// nbd volume driver. Only plain TCP and Unix-socket URIs are accepted (libnbd itself
// refuses the others): nbd://HOST[:PORT][/EXPORT], nbd+unix:///[EXPORT]?socket=PATH.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "vmm/result.hpp"

struct nbd_handle;

namespace hyper::virtio {

struct NbdClose {
  void operator()(nbd_handle* handle) const;
};
using NbdHandle = std::unique_ptr<nbd_handle, NbdClose>;

// An error whose message is `what` and libnbd's last error on this thread.
[[nodiscard]] Error nbd_error(const std::string& what);

// Connects and negotiates within `timeout_ms`: the handle is ready for commands.
[[nodiscard]] Result<NbdHandle> connect_nbd(const std::string& uri, uint32_t timeout_ms);

// Runs libnbd's state machine until `done()` holds; fails when `timeout_ms` pass first
// ("WHAT: the NBD server did not answer within N s") or libnbd reports an error.
[[nodiscard]] Status nbd_poll_until(nbd_handle* handle, uint32_t timeout_ms, const std::function<bool()>& done,
                                    const std::string& what);

}  // namespace hyper::virtio
