#include "boot/arm64_image.hpp"

#include <cstring>
#include <string>

namespace hyper::boot {
namespace {

constexpr size_t kHeaderSize = 64;
constexpr size_t kTextOffsetAt = 8;
constexpr size_t kImageSizeAt = 16;
constexpr size_t kFlagsAt = 24;
constexpr size_t kMagicAt = 56;
constexpr uint64_t kFlagBigEndian = 1;
// Far beyond any kernel, and small enough that no sum below can wrap.
constexpr uint64_t kMaxImageSize = 1ULL << 30;

Error bad_image(const std::string& why) { return make_error(Errc::bad_image, "arm64 kernel Image: " + why); }

template <class T>
T little_endian_at(std::span<const uint8_t> bytes, size_t offset) {
  T value = 0;
  for (size_t i = 0; i < sizeof(T); ++i) value |= static_cast<T>(bytes[offset + i]) << (8 * i);
  return value;
}

}  // namespace

Result<Arm64Image> parse_arm64_image(std::span<const uint8_t> image) {
  if (image.size() >= 2 && image[0] == 0x1f && image[1] == 0x8b)
    return bad_image("this file is gzip-compressed; give the uncompressed Image (arch/arm64/boot/Image)");
  if (image.size() < kHeaderSize) return bad_image("shorter than its 64-byte header");
  if (little_endian_at<uint32_t>(image, kMagicAt) != kArm64ImageMagic)
    return bad_image("no \"ARM\\x64\" magic at offset 0x38 (an x86 kernel, or not a kernel)");
  Arm64Image parsed;
  parsed.text_offset = little_endian_at<uint64_t>(image, kTextOffsetAt);
  parsed.image_size = little_endian_at<uint64_t>(image, kImageSizeAt);
  parsed.file_size = image.size();
  const uint64_t flags = little_endian_at<uint64_t>(image, kFlagsAt);
  if (flags & kFlagBigEndian) return bad_image("a big-endian kernel; KVM guests here are little-endian");
  if (parsed.image_size == 0) return bad_image("image_size is 0 (a kernel older than 3.17), which is not supported");
  if (parsed.image_size > kMaxImageSize) return bad_image("image_size is over 1 GiB");
  if (parsed.image_size < parsed.file_size) return bad_image("image_size is smaller than the file");
  if (parsed.text_offset >= kArm64ImageAlignment || parsed.text_offset % 4096 != 0)
    return bad_image("text_offset is not a page within the first 2 MiB");
  return parsed;
}

}  // namespace hyper::boot
