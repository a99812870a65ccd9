// Whole-buffer file I/O: pread/pwrite until done, whole small files, retrying EINTR.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>

#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper {

[[nodiscard]] inline Status read_exact_at(int fd, std::span<uint8_t> out, uint64_t offset) {
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno("read");
    if (n == 0) return make_error(Errc::bad_image, "file ends before offset " + to_hex(offset + out.size()));
    done += static_cast<size_t>(n);
  }
  return {};
}

[[nodiscard]] inline Status write_exact_at(int fd, std::span<const uint8_t> in, uint64_t offset) {
  size_t done = 0;
  while (done < in.size()) {
    const ssize_t n = ::pwrite(fd, in.data() + done, in.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Error::from_errno("write");
    done += static_cast<size_t>(n);
  }
  return {};
}

// Writes all of `size` bytes to a stream (pipe, socket, file), retrying short writes and
// EINTR; blocks on a blocking fd. `what` names the destination in the error.
[[nodiscard]] inline Status write_all(int fd, const void* data, size_t size, const std::string& what) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(fd, bytes + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Error::from_errno("write " + what);
    done += static_cast<size_t>(n);
  }
  return {};
}

// The whole of a small file (state, config, cgroup and /proc files) as text.
[[nodiscard]] inline Result<std::string> read_text_file(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Error::from_errno("open " + path.string());
  std::string text;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno("read " + path.string());
    if (n == 0) return text;
    text.append(buf, static_cast<size_t>(n));
  }
}

}  // namespace hyper
