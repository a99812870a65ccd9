// Where a virtio-blk disk's bytes live: a raw image file, or an export on an NBD server.
// The device parses and bounds requests; a backend only moves one request's bytes between
// guest memory (the request's buffers, in order) and its store, in one go: a file takes
// them in one preadv/pwritev, an NBD server in one command.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "virtio/blk_options.hpp"
#include "vmm/result.hpp"

namespace hyper::virtio {

class BlockBackend {
 public:
  virtual ~BlockBackend() = default;

  [[nodiscard]] virtual uint64_t size_bytes() const = 0;
  // Whether a flush means something: without it the guest is told writes are durable
  // once they complete (no VIRTIO_BLK_F_FLUSH), which is what such a store promises.
  [[nodiscard]] virtual bool can_flush() const = 0;

  // Fills the buffers from the disk at `offset` on; false on any failure.
  [[nodiscard]] virtual bool read(std::span<const iovec> buffers, uint64_t offset) = 0;
  // Writes the buffers to the disk at `offset` on; false on any failure.
  [[nodiscard]] virtual bool write(std::span<const iovec> buffers, uint64_t offset) = 0;
  // Makes completed writes durable.
  [[nodiscard]] virtual bool flush() = 0;

  // Sockets the serving thread talks on (its seccomp filter allows exactly these).
  [[nodiscard]] virtual std::vector<int> sockets() const { return {}; }
  // A line for the device-state dump; callable from any thread, never blocks.
  [[nodiscard]] virtual std::string describe() const = 0;
};

// NBD URIs hyper serves: nbd://HOST[:PORT][/EXPORT] and nbd+unix:///[EXPORT]?socket=PATH.
[[nodiscard]] bool is_nbd_uri(const std::string& path);

// A raw image file (the whole file is the disk).
[[nodiscard]] Result<std::unique_ptr<BlockBackend>> open_file_backend(const BlkOptions& options);
// An export on an NBD server (virtio/block_nbd.cpp), connected now.
[[nodiscard]] Result<std::unique_ptr<BlockBackend>> open_nbd_backend(const BlkOptions& options);

}  // namespace hyper::virtio
