// The container's user, resolved from the image's /etc/passwd and /etc/group the way
// runc (libcontainer/user) and Docker do, for every `docker run -u` form.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/result.hpp"

namespace hyper::guest {

struct ResolvedUser {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> supplementary_gids;
  std::string home = "/";
  std::string name;  // the passwd entry's name; empty for a uid without one
};

// uids and gids above this are refused (negative in the kernel's and runc's view).
inline constexpr uint32_t kMaxUserId = 0x7fffffff;
// Lines longer than this in passwd/group are skipped, as if absent.
inline constexpr size_t kMaxUserFileLine = 64 * 1024;
// setgroups(2) accepts at most NGROUPS_MAX (65536) groups; more is an error, not a truncation.
inline constexpr size_t kMaxSupplementaryGroups = 65536;
// resolve_user_in_root refuses larger passwd/group files.
inline constexpr size_t kMaxUserFileSize = 1 << 20;

// spec: "" (root), "name", "uid", "name:group", "uid:gid", "name:gid", "uid:group".
//  - A part starting with a digit is an id: decimal digits only, at most kMaxUserId
//    (leading zeros are read as decimal, as runc does); "1e3", "-1", "+1" are refused.
//    Anything else is a name.
//  - User: looked up in passwd (first match wins). A name that is not there is an error;
//    a uid that is not there is used as is, with gid 0 and home "/". "" means uid 0.
//  - Group: a gid is used as is (listed or not); a name must be in the group file.
//    Without a group part, the primary gid is the passwd entry's (0 without one).
//  - Supplementary gids, like runc: only without a group part and when the user has a
//    passwd entry: the gids of the groups listing the user's name as a member, deduplicated
//    in file order.
//  - Home: the passwd entry's, "/" when missing or empty.
// passwd/group are the files' contents (nullopt: the image has no such file). Comments
// (#), blank lines, lines with too few fields or a bad id, and overlong lines are
// skipped; CRLF and surrounding whitespace are tolerated.
[[nodiscard]] Result<ResolvedUser> resolve_user(std::string_view spec, std::optional<std::string_view> passwd,
                                                std::optional<std::string_view> group);

// resolve_user with <root>/etc/passwd and <root>/etc/group, opened beneath `root_dirfd`
// with every symlink and ".." resolved inside it (openat2 RESOLVE_IN_ROOT): an image's
// "/etc -> /elsewhere" names <root>/elsewhere, never the caller's. A file that does not
// exist (also through a dangling link) counts as absent; one that is not a regular file
// or is larger than kMaxUserFileSize is an error.
[[nodiscard]] Result<ResolvedUser> resolve_user_in_root(int root_dirfd, std::string_view spec);

}  // namespace hyper::guest
