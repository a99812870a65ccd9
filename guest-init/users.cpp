#include "guest-init/users.hpp"

#include <array>
#include <unordered_set>

#include "guest-init/printable.hpp"

namespace hyper::guest {
namespace {

struct PasswdEntry {
  std::string_view name;
  uint32_t uid;
  uint32_t gid;
  std::string_view home;
};

struct GroupEntry {
  std::string_view name;
  uint32_t gid;
  std::string_view members;  // comma-separated user names
};

// One part of a user spec: nothing, a numeric id or a name.
struct IdOrName {
  std::optional<uint32_t> id;
  std::string_view name;
  [[nodiscard]] bool empty() const { return !id && name.empty(); }
};

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

// Decimal digits only, 0..kMaxUserId; leading zeros allowed (runc's Atoi reads "007" as 7).
std::optional<uint32_t> parse_id(std::string_view text) {
  if (text.empty()) return std::nullopt;
  uint32_t value = 0;
  for (const char c : text) {
    if (!is_digit(c)) return std::nullopt;
    const auto digit = static_cast<uint32_t>(c - '0');
    if (value > (kMaxUserId - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

// Calls `visit(line)` for each line worth parsing; `visit` returns false to stop.
template <class Visit>
void for_each_line(std::string_view text, Visit visit) {
  while (!text.empty()) {
    const size_t end = text.find('\n');
    const std::string_view raw = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    if (raw.size() > kMaxUserFileLine) continue;
    const std::string_view line = trim(raw);
    if (line.empty() || line.front() == '#') continue;
    if (!visit(line)) return;
  }
}

// Splits the first N ':'-separated fields of `line` into `fields`; returns how many there
// were (at most N; anything after the Nth field is ignored, as runc does).
template <size_t N>
size_t split_fields(std::string_view line, std::array<std::string_view, N>& fields) {
  size_t count = 0;
  while (count < N) {
    const size_t colon = line.find(':');
    fields[count++] = line.substr(0, colon);
    if (colon == std::string_view::npos) break;
    line.remove_prefix(colon + 1);
  }
  return count;
}

// name:password:uid:gid:gecos:home:shell
std::optional<PasswdEntry> parse_passwd_line(std::string_view line) {
  std::array<std::string_view, 7> fields;
  if (split_fields(line, fields) < fields.size() || fields[0].empty()) return std::nullopt;
  const auto uid = parse_id(fields[2]);
  const auto gid = parse_id(fields[3]);
  if (!uid || !gid) return std::nullopt;
  return PasswdEntry{fields[0], *uid, *gid, fields[5]};
}

// name:password:gid:member,member,...
std::optional<GroupEntry> parse_group_line(std::string_view line) {
  std::array<std::string_view, 4> fields;
  if (split_fields(line, fields) < fields.size() || fields[0].empty()) return std::nullopt;
  const auto gid = parse_id(fields[2]);
  if (!gid) return std::nullopt;
  return GroupEntry{fields[0], *gid, fields[3]};
}

template <class Entry, class Parse, class Match>
std::optional<Entry> find_first(std::optional<std::string_view> file, Parse parse, Match match) {
  std::optional<Entry> found;
  if (!file) return found;
  for_each_line(*file, [&](std::string_view line) {
    auto entry = parse(line);
    if (entry && match(*entry)) found = *entry;
    return !found;
  });
  return found;
}

bool lists_member(std::string_view members, std::string_view name) {
  while (true) {
    const size_t comma = members.find(',');
    if (members.substr(0, comma) == name) return true;
    if (comma == std::string_view::npos) return false;
    members.remove_prefix(comma + 1);
  }
}

Result<IdOrName> parse_spec_part(std::string_view part, const char* what, std::string_view spec) {
  if (part.empty()) return IdOrName{};
  if (is_digit(part.front()) || part.front() == '-' || part.front() == '+') {
    if (auto id = parse_id(part)) return IdOrName{id, {}};
    return make_error(Errc::invalid_argument, "invalid user spec " + quoted(spec) + ": " + quoted(part) +
                                                  " is not a valid " + what + " (decimal, 0 to " +
                                                  std::to_string(kMaxUserId) + ")");
  }
  return IdOrName{std::nullopt, part};
}

Result<std::vector<uint32_t>> supplementary_gids(std::optional<std::string_view> group, std::string_view user) {
  std::vector<uint32_t> gids;
  if (!group) return gids;
  std::unordered_set<uint32_t> seen;
  bool too_many = false;
  for_each_line(*group, [&](std::string_view line) {
    const auto entry = parse_group_line(line);
    if (!entry || !lists_member(entry->members, user) || !seen.insert(entry->gid).second) return true;
    if (gids.size() == kMaxSupplementaryGroups) {
      too_many = true;
      return false;
    }
    gids.push_back(entry->gid);
    return true;
  });
  if (too_many) {
    return make_error(Errc::invalid_argument, "user " + printable(user) + " is a member of more than " +
                                                  std::to_string(kMaxSupplementaryGroups) + " groups");
  }
  return gids;
}

}  // namespace

Result<ResolvedUser> resolve_user(std::string_view spec, std::optional<std::string_view> passwd,
                                  std::optional<std::string_view> group) {
  const size_t colon = spec.find(':');
  const std::string_view user_part = spec.substr(0, colon);
  const std::string_view group_part = colon == std::string_view::npos ? std::string_view{} : spec.substr(colon + 1);
  if (group_part.find(':') != std::string_view::npos) {
    return make_error(Errc::invalid_argument, "invalid user spec " + quoted(spec) + ": expected user[:group]");
  }
  const IdOrName user_arg = HYPER_TRY(parse_spec_part(user_part, "uid", spec));
  const IdOrName group_arg = HYPER_TRY(parse_spec_part(group_part, "gid", spec));

  ResolvedUser user;
  const auto entry = find_first<PasswdEntry>(passwd, parse_passwd_line, [&](const PasswdEntry& candidate) {
    if (user_arg.empty()) return candidate.uid == 0;
    if (user_arg.id) return candidate.uid == *user_arg.id;
    return candidate.name == user_arg.name;
  });
  if (entry) {
    user.uid = entry->uid;
    user.gid = entry->gid;
    user.name = entry->name;
    if (!entry->home.empty()) user.home = entry->home;
  } else if (!user_arg.name.empty()) {
    return make_error(Errc::not_found, "unable to find user " + printable(user_arg.name) +
                                           ": no matching entries in passwd file" +
                                           (passwd ? "" : " (the image has none)"));
  } else {
    user.uid = user_arg.id.value_or(0);
  }

  if (group_arg.id) {
    user.gid = *group_arg.id;
  } else if (!group_arg.name.empty()) {
    const auto match = find_first<GroupEntry>(group, parse_group_line, [&](const GroupEntry& candidate) {
      return candidate.name == group_arg.name;
    });
    if (!match) {
      return make_error(Errc::not_found, "unable to find group " + printable(group_arg.name) +
                                             ": no matching entries in group file" +
                                             (group ? "" : " (the image has none)"));
    }
    user.gid = match->gid;
  } else if (!user.name.empty()) {
    user.supplementary_gids = HYPER_TRY(supplementary_gids(group, user.name));
  }
  return user;
}

}  // namespace hyper::guest
