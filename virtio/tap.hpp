// A Linux tap device opened as the host end of a virtio-net NIC: frames carry a 12-byte
// virtio-net header (IFF_VNET_HDR), so checksum and segmentation offloads pass through
// between the guest and the host stack without the VMM touching the payload.
#pragma once

#include <cstdint>
#include <string>

#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::virtio {

inline constexpr int kVirtioNetHeaderSize = 12;  // struct virtio_net_hdr_v1

enum class TapOpen {
  attach_or_create,  // attaches to an existing tap, or creates one when the caller may (CAP_NET_ADMIN)
  create_new,        // creates it (IFF_TUN_EXCL): fails with "Device or resource busy" if it exists
};

// Tap interface `name`, non-blocking. A tap this creates is not persistent: it goes away
// when the last fd attached to it is closed.
[[nodiscard]] Result<UniqueFd> open_tap(const std::string& name, TapOpen mode = TapOpen::attach_or_create);

// Which offloads the tap may hand us, from the guest's negotiated virtio-net features.
[[nodiscard]] Status set_tap_offloads(int tap_fd, uint64_t guest_features);

}  // namespace hyper::virtio
