#include "guest-init/identity.hpp"

#include <fcntl.h>
#include <linux/random.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "vmm/unique_fd.hpp"

namespace hyper::guest {

Status apply_identity(const IdentitySpec& identity) {
  if (identity.realtime_ns) {
    const timespec now{static_cast<time_t>(*identity.realtime_ns / 1'000'000'000),
                       static_cast<long>(*identity.realtime_ns % 1'000'000'000)};
    if (::clock_settime(CLOCK_REALTIME, &now) != 0) return Error::from_errno("set the clock");
  }
  if (identity.entropy.empty()) return {};
  UniqueFd random(::open("/dev/urandom", O_WRONLY | O_CLOEXEC));
  if (!random.valid()) return Error::from_errno("open /dev/urandom");
  // struct rand_pool_info ends in a flexible array: header and bytes in one buffer.
  const size_t bytes = identity.entropy.size();
  auto buffer = std::make_unique<int[]>(2 + (bytes + sizeof(int) - 1) / sizeof(int));
  buffer[0] = static_cast<int>(bytes * 8);  // entropy_count, in bits: the host's getrandom() is full entropy
  buffer[1] = static_cast<int>(bytes);      // buf_size
  std::memcpy(buffer.get() + 2, identity.entropy.data(), bytes);
  if (::ioctl(random.get(), RNDADDENTROPY, buffer.get()) != 0) return Error::from_errno("add entropy");
  if (::ioctl(random.get(), RNDRESEEDCRNG) != 0) return Error::from_errno("reseed the kernel's random generator");
  return {};
}

}  // namespace hyper::guest
