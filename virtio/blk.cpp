#include "virtio/blk.hpp"

#include "virtio/chain_io.hpp"

#include <algorithm>
#include <cstring>

namespace hyper::virtio {
namespace {

constexpr uint32_t kTypeIn = 0, kTypeOut = 1, kTypeFlush = 4, kTypeGetId = 8;
constexpr uint8_t kStatusOk = 0, kStatusIoErr = 1, kStatusUnsupported = 2;
constexpr uint64_t kFeatureSizeMax = 1ULL << 1, kFeatureSegMax = 1ULL << 2, kFeatureReadOnly = 1ULL << 5,
                   kFeatureFlush = 1ULL << 9;
constexpr uint32_t kIdBytes = 20;

struct RequestHeader {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};
static_assert(sizeof(RequestHeader) == 16);

}  // namespace

Result<std::shared_ptr<Blk>> Blk::open(const BlkOptions& options) {
  if (options.serial.size() > kIdBytes)
    return make_error(Errc::invalid_argument, "disk serial '" + options.serial + "' is longer than 20 bytes");
  const bool network = is_nbd_uri(options.path);
  auto backend = HYPER_TRY(network ? open_nbd_backend(options) : open_file_backend(options));
  BlkOptions opened = options;
  opened.io_thread = options.io_thread || network;
  const uint64_t sectors = backend->size_bytes() / kSectorSize;
  if (sectors == 0 && !options.empty_allowed) return make_error(Errc::invalid_argument, "disk " + options.path + " is smaller than one sector");
  return std::shared_ptr<Blk>(new Blk(std::move(backend), sectors, std::move(opened)));
}

uint64_t Blk::device_features() const {
  return kFeatureVersion1 | kFeatureRingEventIdx | kFeatureRingIndirectDesc | kFeatureSizeMax | kFeatureSegMax |
         (backend_->can_flush() ? kFeatureFlush : 0) | (options_.read_only ? kFeatureReadOnly : 0);
}

void Blk::read_config(uint64_t offset, std::span<uint8_t> data) const {
  // capacity (le64), size_max (le32), seg_max (le32): the fields our features announce.
  uint8_t config[16];
  std::memcpy(config, &sectors_, 8);
  std::memcpy(config + 8, &kMaxSegmentBytes, 4);
  std::memcpy(config + 12, &kMaxSegments, 4);
  read_config_window(config, offset, data);
}

Status Blk::activate(Activation activation) { return slot_.set(std::move(activation), 1, "virtio-blk"); }

void Blk::reset() { slot_.clear(); }

void Blk::queue_notify(uint32_t index) {
  if (index != 0) return;
  const bool healthy = slot_.run([&](Activation& active) {
    return serve_queue(active, 0, [&](const DescriptorChain& chain) { return serve(*active.memory, chain); });
  });
  if (!healthy) ++rejected_;
}

uint32_t Blk::serve(const GuestMemory& memory, const DescriptorChain& chain) {
  // The status byte is the last byte of the last device-writable buffer.
  if (chain.writable.empty() || chain.writable.back().len == 0) {
    ++rejected_;
    return 0;
  }
  uint32_t data_in = 0;
  const uint8_t status = execute(memory, chain, data_in);
  if (status != kStatusOk) ++rejected_;
  const Buffer& last = chain.writable.back();
  (void)memory.write_obj(last.gpa + last.len - 1, status);
  return data_in + 1;
}

bool Blk::gather(const GuestMemory& memory, const std::vector<Buffer>& chain, uint64_t skip, uint64_t len) {
  buffers_.clear();
  return for_each_piece(memory, chain, skip, len, [&](std::span<uint8_t> piece) {
    buffers_.push_back({piece.data(), piece.size()});
    return true;
  });
}

uint8_t Blk::execute(const GuestMemory& memory, const DescriptorChain& chain, uint32_t& data_in) {
  RequestHeader header{};
  if (!copy_from_buffers(memory, chain.readable, 0, {reinterpret_cast<uint8_t*>(&header), sizeof header}))
    return kStatusIoErr;

  const uint64_t writable_data = chain.writable_bytes() - 1;  // all but the status byte
  const auto in_range = [&](uint64_t bytes) {
    return bytes % kSectorSize == 0 && bytes <= kMaxRequestBytes && header.sector <= sectors_ &&
           bytes / kSectorSize <= sectors_ - header.sector;
  };
  const uint64_t offset = header.sector * kSectorSize;
  switch (header.type) {
    case kTypeIn: {
      if (!in_range(writable_data)) return kStatusIoErr;
      if (!gather(memory, chain.writable, 0, writable_data) || !backend_->read(buffers_, offset)) return kStatusIoErr;
      data_in = static_cast<uint32_t>(writable_data);
      return kStatusOk;
    }
    case kTypeOut: {
      if (options_.read_only) return kStatusIoErr;
      const uint64_t bytes = chain.readable_bytes() - sizeof header;
      if (!in_range(bytes)) return kStatusIoErr;
      if (!gather(memory, chain.readable, sizeof header, bytes) || !backend_->write(buffers_, offset)) return kStatusIoErr;
      return kStatusOk;
    }
    case kTypeFlush:
      return backend_->flush() ? kStatusOk : kStatusIoErr;
    case kTypeGetId: {
      char id[kIdBytes] = {};
      std::memcpy(id, options_.serial.data(), std::min<size_t>(options_.serial.size(), kIdBytes));
      const uint64_t n = std::min<uint64_t>(kIdBytes, writable_data);
      (void)copy_to_buffers(memory, chain.writable, 0, {reinterpret_cast<const uint8_t*>(id), n});
      data_in = static_cast<uint32_t>(n);
      return kStatusOk;
    }
    default:
      return kStatusUnsupported;
  }
}

}  // namespace hyper::virtio
