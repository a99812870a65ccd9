#include "runtime/volume/file_clone.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "vmm/unique_fd.hpp"

namespace hyper::runtime::volume {
namespace {

// copy_file_range in pieces, so that a huge extent does not hold one call for minutes.
constexpr size_t kPieceBytes = 64u << 20;

Status copy_range(int from, int to, off_t start, off_t end, const std::filesystem::path& path) {
  off_t in = start, out = start;
  while (in < end) {
    const size_t want = static_cast<size_t>(std::min<off_t>(end - in, kPieceBytes));
    const ssize_t n = ::copy_file_range(from, &in, to, &out, want, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno("copy " + path.string());
    if (n == 0) return make_error(Errc::io, "copy " + path.string() + ": the file shrank while being copied");
  }
  return {};
}

// SEEK_DATA/SEEK_HOLE walk the allocated extents; the holes between stay holes because the
// target is sized first and never written there.
Status copy_sparse(int from, int to, off_t size, const std::filesystem::path& path) {
  if (::ftruncate(to, size) != 0) return Error::from_errno("size " + path.string());
  off_t data = 0;
  while (data < size) {
    data = ::lseek(from, data, SEEK_DATA);
    if (data < 0 && errno == ENXIO) break;  // nothing but a hole to the end
    if (data < 0) return Error::from_errno("seek " + path.string());
    off_t hole = ::lseek(from, data, SEEK_HOLE);
    if (hole < 0) return Error::from_errno("seek " + path.string());
    hole = std::min(hole, size);
    HYPER_CHECK(copy_range(from, to, data, hole, path));
    data = hole;
  }
  return {};
}

}  // namespace

const char* clone_method_name(CloneMethod method) {
  return method == CloneMethod::reflink ? "reflink" : "sparse copy";
}

Result<CloneMethod> clone_file(const std::filesystem::path& from, const std::filesystem::path& to) {
  UniqueFd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in.valid()) return Error::from_errno("open " + from.string());
  struct stat st {};
  if (::fstat(in.get(), &st) != 0) return Error::from_errno("stat " + from.string());
  UniqueFd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!out.valid()) return Error::from_errno("create " + to.string());
  CloneMethod method = CloneMethod::reflink;
  if (::ioctl(out.get(), FICLONE, in.get()) != 0) {
    // EOPNOTSUPP/EINVAL: this file system cannot share extents; EXDEV: another one.
    method = CloneMethod::sparse_copy;
    if (auto copied = copy_sparse(in.get(), out.get(), st.st_size, from); !copied.ok()) {
      ::unlink(to.c_str());
      return copied.error();
    }
  }
  if (::fsync(out.get()) != 0) {
    ::unlink(to.c_str());
    return Error::from_errno("sync " + to.string());
  }
  return method;
}

}  // namespace hyper::runtime::volume
