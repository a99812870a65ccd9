// An exclusive flock(2) on a lock file, held while the object lives: the image store, the
// per-image root filesystem build and the scratch-disk template are each changed by one
// `hyper` process at a time, and one process at a time boots a VM on a container's disks.
#pragma once

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>
#include <filesystem>
#include <optional>

#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::runtime {

class FileLock {
 public:
  // Creates the file when missing, then waits for the lock.
  static Result<FileLock> acquire(const std::filesystem::path& path) { return lock(path, LOCK_EX); }
  // Many holders at once, none while an exclusive holder has it.
  static Result<FileLock> acquire_shared(const std::filesystem::path& path) { return lock(path, LOCK_SH); }
  // Exclusive, without waiting: nothing when another holder has it.
  static Result<std::optional<FileLock>> try_acquire(const std::filesystem::path& path) { return try_lock(path, LOCK_EX); }
  // Shared, without waiting: nothing while an exclusive holder has it.
  static Result<std::optional<FileLock>> try_acquire_shared(const std::filesystem::path& path) {
    return try_lock(path, LOCK_SH);
  }

 private:
  static Result<std::optional<FileLock>> try_lock(const std::filesystem::path& path, int operation) {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd.valid()) return Error::from_errno("open " + path.string());
    while (::flock(fd.get(), operation | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) return std::optional<FileLock>();
      if (errno != EINTR) return Error::from_errno("lock " + path.string());
    }
    return std::optional<FileLock>(FileLock(std::move(fd)));
  }

  static Result<FileLock> lock(const std::filesystem::path& path, int operation) {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd.valid()) return Error::from_errno("open " + path.string());
    while (::flock(fd.get(), operation) != 0)
      if (errno != EINTR) return Error::from_errno("lock " + path.string());
    return FileLock(std::move(fd));
  }

  explicit FileLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;  // closing it releases the lock
};

}  // namespace hyper::runtime
