#include "virtio/tap.hpp"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>

#include <cstring>

#include "virtio/net_features.hpp"

namespace hyper::virtio {

Result<UniqueFd> open_tap(const std::string& name, TapOpen mode) {
  if (name.empty() || name.size() >= IFNAMSIZ || name.find('/') != std::string::npos)
    return make_error(Errc::invalid_argument, "tap name '" + name + "' is not a valid interface name (1-15 characters)");
  UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (!fd.valid()) return Error::from_errno("open /dev/net/tun");
  unsigned int features = 0;
  if (::ioctl(fd.get(), TUNGETFEATURES, &features) < 0) return Error::from_errno("TUNGETFEATURES");
  if (!(features & IFF_VNET_HDR)) return make_error(Errc::unsupported, "the host's tun driver lacks IFF_VNET_HDR");

  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  if (mode == TapOpen::create_new) ifr.ifr_flags |= IFF_TUN_EXCL;
  if (::ioctl(fd.get(), TUNSETIFF, &ifr) < 0) {
    const int err = errno;
    std::string hint = err == EPERM ? " (create it first: ip tuntap add dev " + name + " mode tap user $USER)" : "";
    errno = err;
    auto e = Error::from_errno("tap " + name);
    e.message += hint;
    return e;
  }
  int header_size = kVirtioNetHeaderSize;
  if (::ioctl(fd.get(), TUNSETVNETHDRSZ, &header_size) < 0) return Error::from_errno("TUNSETVNETHDRSZ");
  HYPER_CHECK(set_tap_offloads(fd.get(), 0));
  return fd;
}

Status set_tap_offloads(int tap_fd, uint64_t guest_features) {
  unsigned int offloads = 0;
  if (guest_features & net::kGuestCsum) {
    offloads |= TUN_F_CSUM;
    if (guest_features & net::kGuestTso4) offloads |= TUN_F_TSO4;
    if (guest_features & net::kGuestTso6) offloads |= TUN_F_TSO6;
    if (guest_features & net::kGuestEcn) offloads |= TUN_F_TSO_ECN;
  }
  if (::ioctl(tap_fd, TUNSETOFFLOAD, offloads) < 0) return Error::from_errno("TUNSETOFFLOAD");
  return {};
}

}  // namespace hyper::virtio
