// libnbd, loaded on first use (dlopen) rather than linked. Its dependency chain (GnuTLS,
// p11-kit, libxml2, ICU, 15 libraries with their constructors) costs every process that
// loads it at start-up about 3 ms: hyper-vmm's exec -> first KVM_RUN, medians of 20 runs
// (benches/boot_latency --native-first-run), 4.9 and 5.2 ms without it, 7.7 and 7.9 ms
// with it preloaded, alternating. Only VMs with NBD disks, and the nbd volume driver, pay
// for it now.
#pragma once

#include <libnbd.h>

#include "vmm/result.hpp"

namespace hyper::virtio {

// The libnbd calls hyper makes.
struct NbdLibrary {
  decltype(&::nbd_create) create = nullptr;
  decltype(&::nbd_close) close = nullptr;
  decltype(&::nbd_get_error) get_error = nullptr;
  decltype(&::nbd_set_uri_allow_transports) set_uri_allow_transports = nullptr;
  decltype(&::nbd_set_uri_allow_tls) set_uri_allow_tls = nullptr;
  decltype(&::nbd_aio_connect_uri) aio_connect_uri = nullptr;
  decltype(&::nbd_poll) poll = nullptr;
  decltype(&::nbd_aio_is_connecting) aio_is_connecting = nullptr;
  decltype(&::nbd_aio_is_ready) aio_is_ready = nullptr;
  decltype(&::nbd_aio_is_dead) aio_is_dead = nullptr;
  decltype(&::nbd_aio_is_closed) aio_is_closed = nullptr;
  decltype(&::nbd_aio_get_fd) aio_get_fd = nullptr;
  decltype(&::nbd_get_size) get_size = nullptr;
  decltype(&::nbd_is_read_only) is_read_only = nullptr;
  decltype(&::nbd_can_flush) can_flush = nullptr;
  decltype(&::nbd_aio_pread) aio_pread = nullptr;
  decltype(&::nbd_aio_pwrite) aio_pwrite = nullptr;
  decltype(&::nbd_aio_flush) aio_flush = nullptr;
  decltype(&::nbd_aio_command_completed) aio_command_completed = nullptr;
  decltype(&::nbd_pread) pread = nullptr;
  decltype(&::nbd_pwrite) pwrite = nullptr;
  decltype(&::nbd_flush) flush = nullptr;
};

// Loads libnbd.so.0 once (thread-safe); fails with the loader's reason when it cannot.
[[nodiscard]] Result<const NbdLibrary*> load_nbd_library();
// The library once load_nbd_library() succeeded (every NBD handle implies it did).
[[nodiscard]] const NbdLibrary& nbd();

}  // namespace hyper::virtio
