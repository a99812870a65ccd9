// The raw image file behind a virtio-blk disk: one preadv/pwritev per request.
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "virtio/block_backend.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::virtio {
namespace {

// Moves all of `buffers` at `offset` on through `call` (preadv or pwritev), resuming after
// a short transfer; `left` is scratch space for the buffers still to go.
template <class Call>
bool transfer_all(std::span<const iovec> buffers, uint64_t offset, std::vector<iovec>& left, Call&& call) {
  left.assign(buffers.begin(), buffers.end());
  size_t first = 0;
  for (;;) {
    while (first < left.size() && left[first].iov_len == 0) ++first;
    if (first == left.size()) return true;
    const int count = static_cast<int>(std::min<size_t>(left.size() - first, IOV_MAX));
    const ssize_t n = call(left.data() + first, count, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;  // an error, or the file ended early (it shrank under us)
    offset += static_cast<uint64_t>(n);
    for (size_t done = static_cast<size_t>(n); done > 0;) {
      const size_t step = std::min(done, left[first].iov_len);
      left[first].iov_base = static_cast<uint8_t*>(left[first].iov_base) + step;
      left[first].iov_len -= step;
      done -= step;
      if (left[first].iov_len == 0) ++first;
    }
  }
}

class FileBackend final : public BlockBackend {
 public:
  FileBackend(UniqueFd fd, uint64_t size) : fd_(std::move(fd)), size_(size) {}

  uint64_t size_bytes() const override { return size_; }
  bool can_flush() const override { return true; }
  bool read(std::span<const iovec> buffers, uint64_t offset) override {
    return transfer_all(buffers, offset, left_, [&](const iovec* iov, int n, off_t at) { return ::preadv(fd_.get(), iov, n, at); });
  }
  bool write(std::span<const iovec> buffers, uint64_t offset) override {
    return transfer_all(buffers, offset, left_, [&](const iovec* iov, int n, off_t at) { return ::pwritev(fd_.get(), iov, n, at); });
  }
  bool flush() override { return ::fdatasync(fd_.get()) == 0; }
  std::string describe() const override { return "image file"; }

 private:
  UniqueFd fd_;
  uint64_t size_;
  std::vector<iovec> left_;  // transfer_all's scratch: requests are served one at a time
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
