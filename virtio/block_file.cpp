// The raw image file behind a virtio-blk disk: every transfer completes at once.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "virtio/block_backend.hpp"
#include "vmm/file_io.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::virtio {
namespace {

class FileBackend final : public BlockBackend {
 public:
  FileBackend(UniqueFd fd, uint64_t size) : fd_(std::move(fd)), size_(size) {}

  uint64_t size_bytes() const override { return size_; }
  bool can_flush() const override { return true; }
  bool start_read(std::span<uint8_t> into, uint64_t offset) override {
    return read_exact_at(fd_.get(), into, offset).ok();
  }
  bool start_write(std::span<const uint8_t> from, uint64_t offset) override {
    return write_exact_at(fd_.get(), from, offset).ok();
  }
  bool finish() override { return true; }
  bool flush() override { return ::fdatasync(fd_.get()) == 0; }
  std::string describe() const override { return "image file"; }

 private:
  UniqueFd fd_;
  uint64_t size_;
};

}  // namespace

bool is_nbd_uri(const std::string& path) { return path.starts_with("nbd://") || path.starts_with("nbd+unix://"); }

Result<std::unique_ptr<BlockBackend>> open_file_backend(const BlkOptions& options) {
  // O_NONBLOCK only for open(): a FIFO given by mistake must not block it.
  UniqueFd fd(::open(options.path.c_str(), (options.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK));
  if (!fd.valid()) return Error::from_errno("disk " + options.path);
  struct stat st {};
  if (::fstat(fd.get(), &st) < 0) return Error::from_errno("disk " + options.path);
  if (!S_ISREG(st.st_mode))
    return make_error(Errc::invalid_argument, "disk " + options.path + " is not a regular file (raw image)");
  ::fcntl(fd.get(), F_SETFL, 0);
  return std::unique_ptr<BlockBackend>(new FileBackend(std::move(fd), static_cast<uint64_t>(st.st_size)));
}

}  // namespace hyper::virtio
