// What makes one VM unlike another that was restored from the same template: the host
// gives each container fresh randomness and the time, and the init applies them before
// anything in the container could read either (docs/snapshots.md, "Templates").
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "vmm/result.hpp"

namespace hyper::guest {

struct IdentitySpec {
  std::vector<uint8_t> entropy;          // mixed into the kernel's pool, which is then reseeded
  std::optional<uint64_t> realtime_ns;   // CLOCK_REALTIME to set
};

// Sets the clock, credits the entropy (RNDADDENTROPY) and forces a reseed (RNDRESEEDCRNG),
// so the VM's random numbers part from every other restore's.
Status apply_identity(const IdentitySpec& identity);

}  // namespace hyper::guest
