// virtio-net feature bits (virtio 1.x, section 5.1.3) the device and the tap agree on.
#pragma once

#include <cstdint>

namespace hyper::virtio::net {

inline constexpr uint64_t kCsum = 1ULL << 0;        // the device completes partial checksums
inline constexpr uint64_t kGuestCsum = 1ULL << 1;   // the driver accepts partial checksums
inline constexpr uint64_t kMac = 1ULL << 5;
inline constexpr uint64_t kGuestTso4 = 1ULL << 7;   // the driver accepts TSO frames
inline constexpr uint64_t kGuestTso6 = 1ULL << 8;
inline constexpr uint64_t kGuestEcn = 1ULL << 9;
inline constexpr uint64_t kHostTso4 = 1ULL << 11;   // the device accepts TSO frames
inline constexpr uint64_t kHostTso6 = 1ULL << 12;
inline constexpr uint64_t kHostEcn = 1ULL << 13;
inline constexpr uint64_t kMrgRxbuf = 1ULL << 15;   // a frame may span several receive chains
inline constexpr uint64_t kStatus = 1ULL << 16;

inline constexpr uint16_t kStatusLinkUp = 1;

}  // namespace hyper::virtio::net
