#include "virtio/nbd_library.hpp"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace hyper::virtio {
namespace {

template <class Fn>
bool bind(void* library, const char* name, Fn& slot, std::string& missing) {
  slot = reinterpret_cast<Fn>(::dlsym(library, name));
  if (!slot) missing = name;
  return slot != nullptr;
}

struct Loaded {
  NbdLibrary api;
  std::string error;  // empty when loaded
};

Loaded load() {
  Loaded loaded;
  // Never unloaded: the process keeps it until it ends.
  void* library = ::dlopen("libnbd.so.0", RTLD_NOW | RTLD_LOCAL);
  if (!library) {
    loaded.error = std::string("cannot load libnbd (Debian package libnbd0): ") + ::dlerror();
    return loaded;
  }
  NbdLibrary& a = loaded.api;
  std::string missing;
  const bool complete =
      bind(library, "nbd_create", a.create, missing) && bind(library, "nbd_close", a.close, missing) &&
      bind(library, "nbd_get_error", a.get_error, missing) &&
      bind(library, "nbd_set_uri_allow_transports", a.set_uri_allow_transports, missing) &&
      bind(library, "nbd_set_uri_allow_tls", a.set_uri_allow_tls, missing) &&
      bind(library, "nbd_aio_connect_uri", a.aio_connect_uri, missing) && bind(library, "nbd_poll", a.poll, missing) &&
      bind(library, "nbd_aio_is_connecting", a.aio_is_connecting, missing) &&
      bind(library, "nbd_aio_is_ready", a.aio_is_ready, missing) &&
      bind(library, "nbd_aio_is_dead", a.aio_is_dead, missing) &&
      bind(library, "nbd_aio_is_closed", a.aio_is_closed, missing) &&
      bind(library, "nbd_aio_get_fd", a.aio_get_fd, missing) && bind(library, "nbd_get_size", a.get_size, missing) &&
      bind(library, "nbd_is_read_only", a.is_read_only, missing) &&
      bind(library, "nbd_can_flush", a.can_flush, missing) && bind(library, "nbd_aio_pread", a.aio_pread, missing) &&
      bind(library, "nbd_aio_pwrite", a.aio_pwrite, missing) && bind(library, "nbd_aio_flush", a.aio_flush, missing) &&
      bind(library, "nbd_aio_command_completed", a.aio_command_completed, missing) &&
      bind(library, "nbd_pread", a.pread, missing) && bind(library, "nbd_pwrite", a.pwrite, missing) &&
      bind(library, "nbd_flush", a.flush, missing);
  if (!complete) loaded.error = "libnbd.so.0 lacks " + missing + " (libnbd 1.14 or later is needed)";
  return loaded;
}

const Loaded& loaded() {
  static const Loaded library = load();
  return library;
}

}  // namespace

Result<const NbdLibrary*> load_nbd_library() {
  const Loaded& library = loaded();
  if (!library.error.empty()) return make_error(Errc::unsupported, library.error);
  return &library.api;
}

const NbdLibrary& nbd() {
  const Loaded& library = loaded();
  if (!library.error.empty()) {
    std::fprintf(stderr, "hyper: libnbd used before it was loaded: %s\n", library.error.c_str());
    std::abort();
  }
  return library.api;
}

}  // namespace hyper::virtio
