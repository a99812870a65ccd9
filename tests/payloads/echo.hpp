// The byte-stream check shared by the guest's test init and the host's test peer: one
// side sends `total` bytes of a position-dependent pattern on a stream socket while the
// other echoes them back; the sender verifies every byte it gets back. Sending and
// receiving are interleaved with poll(), so neither side's buffers can deadlock it.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace hyper::testing {

inline uint8_t pattern_byte(uint64_t position) {
  return static_cast<uint8_t>((position * 2654435761u) >> 13);
}

inline double seconds_now() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

struct EchoResult {
  bool ok = false;
  uint64_t sent = 0, verified = 0;
  double seconds = 0;
  const char* error = "";
};

// Sends `total` pattern bytes on `fd` and checks that the same bytes come back.
inline EchoResult send_and_verify_echo(int fd, uint64_t total, int timeout_ms = 60000) {
  EchoResult r;
  const double start = seconds_now();
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  std::vector<uint8_t> out(64 * 1024), in(64 * 1024);
  bool shut = false;
  while (r.verified < total) {
    pollfd p{fd, static_cast<short>(POLLIN | (r.sent < total ? POLLOUT : 0)), 0};
    const int ready = ::poll(&p, 1, timeout_ms);
    if (ready == 0) return r.error = "timed out", r;
    if (ready < 0 && errno != EINTR) return r.error = "poll failed", r;
    if (r.sent < total && (p.revents & POLLOUT)) {
      const size_t n = static_cast<size_t>(total - r.sent < out.size() ? total - r.sent : out.size());
      for (size_t i = 0; i < n; ++i) out[i] = pattern_byte(r.sent + i);
      const ssize_t w = ::write(fd, out.data(), n);
      if (w < 0 && errno != EAGAIN && errno != EINTR) return r.error = "write failed", r;
      if (w > 0) r.sent += static_cast<uint64_t>(w);
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      const ssize_t n = ::read(fd, in.data(), in.size());
      if (n == 0) return r.error = "the peer closed early", r;
      if (n < 0 && errno != EAGAIN && errno != EINTR) return r.error = "read failed", r;
      for (ssize_t i = 0; i < n; ++i, ++r.verified) {
        if (in[static_cast<size_t>(i)] != pattern_byte(r.verified)) return r.error = "echo differs", r;
      }
    }
    if (r.sent == total && !shut) {
      ::shutdown(fd, SHUT_WR);
      shut = true;
    }
  }
  r.seconds = seconds_now() - start;
  r.ok = true;
  return r;
}

// Echoes everything read from `fd` until end of stream; returns the bytes echoed or -1.
inline int64_t echo_until_eof(int fd) {
  std::vector<uint8_t> buf(64 * 1024);
  int64_t total = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (n == 0) return total;
    for (ssize_t done = 0; done < n;) {
      const ssize_t w = ::write(fd, buf.data() + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return -1;
      done += w;
    }
    total += n;
  }
}

}  // namespace hyper::testing
