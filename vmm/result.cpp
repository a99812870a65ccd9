#include "vmm/result.hpp"

#include <cstdio>

namespace hyper {

const char* errc_name(Errc code) noexcept {
  switch (code) {
    case Errc::invalid_argument: return "invalid argument";
    case Errc::io: return "I/O error";
    case Errc::not_found: return "not found";
    case Errc::permission_denied: return "permission denied";
    case Errc::unsupported: return "unsupported";
    case Errc::bad_image: return "bad image";
    case Errc::out_of_bounds: return "out of bounds";
    case Errc::kvm: return "KVM error";
  }
  return "unknown error";
}

Error Error::from_errno(std::string what, int err) {
  Errc code = Errc::io;
  switch (err) {
    case ENOENT: case ENODEV: case ENXIO: code = Errc::not_found; break;
    case EACCES: case EPERM: code = Errc::permission_denied; break;
    case EINVAL: code = Errc::invalid_argument; break;
    default: break;
  }
  return Error{code, what + ": " + std::strerror(err)};
}

std::string to_hex(uint64_t value) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(value));
  return buf;
}

}  // namespace hyper
