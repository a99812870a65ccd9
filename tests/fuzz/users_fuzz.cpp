// The image's /etc/passwd and /etc/group are hostile, and so is the user spec as far as
// the parser is concerned: any input must resolve to an in-range user or a short,
// printable error.
//
// Input: a flags byte (bit 0: the image has a passwd file, bit 1: a group file), then
// spec, passwd and group separated by the first two NUL bytes (group may hold more).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <unordered_set>

#include "guest-init/users.hpp"

namespace {

std::string_view take_until_nul(std::string_view& rest) {
  const size_t nul = rest.find('\0');
  const std::string_view part = rest.substr(0, nul);
  rest.remove_prefix(nul == std::string_view::npos ? rest.size() : nul + 1);
  return part;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::string_view spec = take_until_nul(rest);
  const std::string_view passwd = take_until_nul(rest);
  const std::string_view group = rest;

  const auto user = hyper::guest::resolve_user(spec, (flags & 1) ? std::optional(passwd) : std::nullopt,
                                               (flags & 2) ? std::optional(group) : std::nullopt);
  if (!user.ok()) {
    const std::string& message = user.error().message;
    if (message.empty() || message.size() > 512) std::abort();
    for (const char c : message) {
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) std::abort();
    }
    return 0;
  }
  if (user->uid > hyper::guest::kMaxUserId || user->gid > hyper::guest::kMaxUserId) std::abort();
  if (user->home.empty() || user->supplementary_gids.size() > hyper::guest::kMaxSupplementaryGroups) std::abort();
  std::unordered_set<uint32_t> seen;
  for (const uint32_t gid : user->supplementary_gids) {
    if (gid > hyper::guest::kMaxUserId || !seen.insert(gid).second) std::abort();
  }
  if (!user->supplementary_gids.empty() && user->name.empty()) std::abort();
  return 0;
}
