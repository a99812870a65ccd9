#include "runtime/volume/mount_spec.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "runtime/container_store.hpp"
#include "runtime/image_blobs.hpp"

namespace hyper::runtime::volume {
namespace {

using Json = nlohmann::json;

Error bad(const std::string& message) { return make_error(Errc::invalid_argument, message); }

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

// The host side of a bind mount must exist now: Docker's --mount rule, applied to -v too,
// so a typo never turns into an empty directory.
Result<std::string> check_bind_source(const std::string& path, const std::string& flag) {
  if (path.empty() || path[0] != '/')
    return bad(flag + ": the host path '" + path + "' is relative: give an absolute path, or a volume name");
  if (path.find('\0') != std::string::npos) return bad(flag + ": the host path contains a NUL byte");
  return path;
}

Result<std::string> check_volume_name(const std::string& name, const std::string& flag) {
  if (name.find('/') != std::string::npos || name.rfind('.', 0) == 0)
    return bad(flag + ": '" + name + "' is a relative host path: give an absolute path, or a volume name");
  if (!valid_name(name))
    return bad(flag + ": \"" + name + "\" includes invalid characters for a volume name; only "
                                      "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
  return name;
}

Result<bool> parse_read_only_mode(const std::string& mode, const std::string& flag) {
  bool read_only = false;
  for (const auto word : blobs::split(mode, ',')) {
    if (word.empty()) continue;
    if (word == "ro") read_only = true;
    else if (word == "rw") read_only = false;
    else if (word == "z" || word == "Z") continue;  // SELinux relabelling: nothing to relabel in a VM
    else return bad(flag + ": invalid mode '" + mode + "' (ro or rw)");
  }
  return read_only;
}

Result<bool> parse_bool_value(const std::string& key, const std::string& value) {
  const std::string v = lower(value);
  if (v.empty() || v == "true" || v == "1") return true;
  if (v == "false" || v == "0") return false;
  return bad("--mount: invalid value for " + key + ": '" + value + "' (true or false)");
}

Result<uint32_t> parse_mode(const std::string& text, const std::string& flag) {
  char* end = nullptr;
  const unsigned long mode = std::strtoul(text.c_str(), &end, 8);
  if (text.empty() || *end != '\0' || mode > 07777) return bad(flag + ": invalid mode '" + text + "' (octal, e.g. 1777)");
  return static_cast<uint32_t>(mode);
}

Status apply_tmpfs_option(Mount& mount, const std::string& option, const std::string& flag) {
  const auto eq = option.find('=');
  const std::string key = option.substr(0, eq), value = eq == std::string::npos ? "" : option.substr(eq + 1);
  if (key == "size") {
    mount.tmpfs_size = HYPER_TRY(parse_byte_size(value));
  } else if (key == "mode") {
    mount.tmpfs_mode = HYPER_TRY(parse_mode(value, flag));
  } else if (option == "ro" || option == "rw") {
    mount.read_only = option == "ro";
  } else {
    return bad(flag + ": unsupported tmpfs option '" + option + "' (size=, mode=, ro, rw)");
  }
  return {};
}

}  // namespace

// "/data//x/" -> "/data/x"; ".." is refused rather than resolved, as Docker does.
Result<std::string> normalize_target(const std::string& path, const std::string& flag) {
  if (path.empty() || path[0] != '/')
    return bad(flag + ": invalid mount path '" + path + "': a mount path in the container must be absolute");
  std::string normalized;
  for (const auto part : blobs::split(path, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") return bad(flag + ": invalid mount path '" + path + "': it must not contain \"..\"");
    normalized += "/";
    normalized += part;
  }
  if (normalized.empty()) return bad(flag + ": invalid mount path '" + path + "': a mount cannot cover /");
  return normalized;
}

const char* mount_type_name(MountType type) {
  switch (type) {
    case MountType::volume: return "volume";
    case MountType::bind: return "bind";
    case MountType::tmpfs: return "tmpfs";
  }
  return "volume";
}

Result<uint64_t> parse_byte_size(const std::string& text) {
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0 || digits > 19) return bad("invalid size '" + text + "' (e.g. 512m, 10g)");
  std::string unit = lower(text.substr(digits));
  if (unit.size() > 1 && unit.back() == 'b') unit.pop_back();
  if (unit.size() > 1 && unit.back() == 'i') unit.pop_back();
  static constexpr std::pair<const char*, unsigned> kUnits[] = {{"", 0}, {"b", 0}, {"k", 10}, {"m", 20}, {"g", 30}, {"t", 40}};
  const auto it = std::find_if(std::begin(kUnits), std::end(kUnits), [&](const auto& u) { return unit == u.first; });
  if (it == std::end(kUnits)) return bad("invalid size '" + text + "': unknown unit (b, k, m, g, t)");
  const uint64_t number = std::strtoull(text.substr(0, digits).c_str(), nullptr, 10);
  if (number == 0) return bad("invalid size '" + text + "': it must be more than 0");
  if (number > (UINT64_MAX >> it->second)) return bad("invalid size '" + text + "': too large");
  return number << it->second;
}

Result<Mount> parse_volume_flag(const std::string& spec) {
  const std::string flag = "-v " + spec;
  const auto parts = blobs::split(spec, ':');
  Mount mount;
  std::string source, target, mode;
  bool has_source = false;
  if (parts.size() == 1) {
    target = std::string(parts[0]);
  } else if (parts.size() == 2 && (parts[1] == "ro" || parts[1] == "rw") && !parts[0].empty() && parts[0][0] == '/') {
    target = std::string(parts[0]), mode = std::string(parts[1]);
  } else if (parts.size() == 2 || parts.size() == 3) {
    source = std::string(parts[0]), target = std::string(parts[1]), has_source = true;
    if (parts.size() == 3) mode = std::string(parts[2]);
  } else {
    return bad(flag + ": expected [SOURCE:]TARGET[:MODE]");
  }
  mount.target = HYPER_TRY(normalize_target(target, flag));
  mount.read_only = HYPER_TRY(parse_read_only_mode(mode, flag));
  if (has_source && source.empty()) return bad(flag + ": the source is empty");
  if (source.empty()) {
    mount.anonymous = true;
  } else if (source[0] == '/') {
    mount.type = MountType::bind;
    mount.source = HYPER_TRY(check_bind_source(source, flag));
  } else {
    mount.source = HYPER_TRY(check_volume_name(source, flag));
  }
  return mount;
}

Result<Mount> parse_mount_flag(const std::string& spec) {
  const std::string flag = "--mount " + spec;
  Mount mount;
  std::string type = "volume", source, target;
  std::vector<std::string> tmpfs_options;
  for (const auto field : blobs::split(spec, ',')) {
    const std::string item(field);
    const auto eq = item.find('=');
    const std::string key = lower(item.substr(0, eq)), value = eq == std::string::npos ? "" : item.substr(eq + 1);
    if (key == "type") type = value;
    else if (key == "source" || key == "src") source = value;
    else if (key == "target" || key == "destination" || key == "dst") target = value;
    else if (key == "readonly" || key == "ro") mount.read_only = HYPER_TRY(parse_bool_value(key, value));
    else if (key == "tmpfs-size") tmpfs_options.push_back("size=" + value);
    else if (key == "tmpfs-mode") tmpfs_options.push_back("mode=" + value);
    else if (key == "volume-driver" && value == "local") continue;
    else return bad(flag + ": unexpected key '" + key + "'");
  }
  if (target.empty()) return bad(flag + ": target is required");
  mount.target = HYPER_TRY(normalize_target(target, flag));
  if (type == "volume") {
    mount.type = MountType::volume;
    if (source.empty()) mount.anonymous = true;
    else mount.source = HYPER_TRY(check_volume_name(source, flag));
  } else if (type == "bind") {
    mount.type = MountType::bind;
    if (source.empty()) return bad(flag + ": source is required for a bind mount");
    mount.source = HYPER_TRY(check_bind_source(source, flag));
  } else if (type == "tmpfs") {
    mount.type = MountType::tmpfs;
    if (!source.empty()) return bad(flag + ": a tmpfs mount takes no source");
  } else {
    return bad(flag + ": unknown mount type '" + type + "' (volume, bind or tmpfs)");
  }
  if (!tmpfs_options.empty() && mount.type != MountType::tmpfs)
    return bad(flag + ": tmpfs-size and tmpfs-mode are for type=tmpfs");
  for (const auto& option : tmpfs_options) HYPER_CHECK(apply_tmpfs_option(mount, option, flag));
  return mount;
}

Result<Mount> parse_tmpfs_flag(const std::string& spec) {
  const std::string flag = "--tmpfs " + spec;
  const auto colon = spec.find(':');
  Mount mount;
  mount.type = MountType::tmpfs;
  mount.target = HYPER_TRY(normalize_target(spec.substr(0, colon), flag));
  if (colon != std::string::npos) {
    const std::string options = spec.substr(colon + 1);  // outlives the views split() returns
    for (const auto option : blobs::split(options, ','))
      HYPER_CHECK(apply_tmpfs_option(mount, std::string(option), flag));
  }
  return mount;
}

Status check_mounts(const std::vector<Mount>& mounts) {
  for (size_t i = 0; i < mounts.size(); ++i)
    for (size_t j = i + 1; j < mounts.size(); ++j)
      if (mounts[i].target == mounts[j].target) return bad("duplicate mount point: " + mounts[i].target);
  return {};
}

Json mount_json(const Mount& mount) {
  Json json = {{"type", mount_type_name(mount.type)}, {"source", mount.source}, {"target", mount.target},
               {"read_only", mount.read_only}};
  if (mount.anonymous) json["anonymous"] = true;
  if (mount.type == MountType::tmpfs) json["tmpfs_size"] = mount.tmpfs_size, json["tmpfs_mode"] = mount.tmpfs_mode;
  return json;
}

Result<Mount> parse_mount_json(const Json& json) {
  if (!json.is_object()) return bad("a mount is not an object");
  Mount mount;
  const std::string type = json.value("type", "");
  if (type == "volume") mount.type = MountType::volume;
  else if (type == "bind") mount.type = MountType::bind;
  else if (type == "tmpfs") mount.type = MountType::tmpfs;
  else return bad("unknown mount type \"" + type + "\"");
  mount.source = json.value("source", "");
  mount.target = json.value("target", "");
  mount.read_only = json.value("read_only", false);
  mount.anonymous = json.value("anonymous", false);
  mount.tmpfs_size = json.value("tmpfs_size", uint64_t{0});
  mount.tmpfs_mode = json.value("tmpfs_mode", 01777u);
  return mount;
}

}  // namespace hyper::runtime::volume
