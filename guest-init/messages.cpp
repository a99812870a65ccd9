#include "guest-init/messages.hpp"

#include <sys/resource.h>

#include <array>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <utility>

#include "guest-init/protocol.hpp"

namespace hyper::guest {
namespace {

constexpr size_t kMaxStrings = 4096;      // argv or env entries
constexpr size_t kMaxStringBytes = 65536; // one argument or variable

Error bad(const std::string& what) { return make_error(Errc::invalid_argument, what); }

// Built with append: gcc 12 warns falsely (-Wrestrict) on literal + string chains here.
Error field_error(const char* key, const char* what) {
  std::string message = "\"";
  message.append(key).append("\" ").append(what);
  return bad(message);
}

Result<std::string> get_string(const Json& object, const char* key, bool required = false) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) {
    if (required) return field_error(key, "is missing");
    return std::string();
  }
  if (!it->is_string()) return field_error(key, "must be a string");
  const auto& value = it->get_ref<const std::string&>();
  if (value.size() > kMaxStringBytes) return field_error(key, "is too long");
  if (value.find('\0') != std::string::npos) return field_error(key, "contains a NUL byte");
  return value;
}

Result<uint64_t> get_number(const Json& object, const char* key, uint64_t fallback, uint64_t max) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_number_unsigned() && !(it->is_number_integer() && it->get<int64_t>() >= 0))
    return field_error(key, "must be a non-negative integer");
  const auto value = it->get<uint64_t>();
  if (value > max) return field_error(key, "is out of range");
  return value;
}

Result<bool> get_bool(const Json& object, const char* key) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return false;
  if (!it->is_boolean()) return field_error(key, "must be true or false");
  return it->get<bool>();
}

Result<std::vector<std::string>> get_strings(const Json& object, const char* key) {
  std::vector<std::string> out;
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return out;
  if (!it->is_array()) return field_error(key, "must be an array of strings");
  if (it->size() > kMaxStrings) return field_error(key, "has too many entries");
  for (const auto& item : *it) {
    if (!item.is_string()) return field_error(key, "must be an array of strings");
    const auto& value = item.get_ref<const std::string&>();
    if (value.size() > kMaxStringBytes || value.find('\0') != std::string::npos)
      return field_error(key, "has an entry that is too long or contains a NUL byte");
    out.push_back(value);
  }
  return out;
}

Result<std::vector<Rlimit>> get_rlimits(const Json& process) {
  std::vector<Rlimit> out;
  const auto it = process.find("rlimits");
  if (it == process.end() || it->is_null()) return out;
  if (!it->is_array() || it->size() > 32) return bad("\"rlimits\" must be an array of at most 32 limits");
  for (const auto& item : *it) {
    if (!item.is_object()) return bad("each rlimit must be an object");
    const std::string type = HYPER_TRY(get_string(item, "type", true));
    const int resource = HYPER_TRY(rlimit_resource(type));
    const uint64_t soft = HYPER_TRY(get_number(item, "soft", 0, RLIM_INFINITY));
    const uint64_t hard = HYPER_TRY(get_number(item, "hard", 0, RLIM_INFINITY));
    if (soft > hard) return bad("an rlimit's soft value exceeds its hard value");
    out.push_back(Rlimit{resource, soft, hard});
  }
  return out;
}

}  // namespace

Result<int> rlimit_resource(const std::string& name) {
  static constexpr std::array<std::pair<const char*, int>, 16> kNames{{
      {"as", RLIMIT_AS},           {"core", RLIMIT_CORE},     {"cpu", RLIMIT_CPU},
      {"data", RLIMIT_DATA},       {"fsize", RLIMIT_FSIZE},   {"locks", RLIMIT_LOCKS},
      {"memlock", RLIMIT_MEMLOCK}, {"msgqueue", RLIMIT_MSGQUEUE}, {"nice", RLIMIT_NICE},
      {"nofile", RLIMIT_NOFILE},   {"nproc", RLIMIT_NPROC},   {"rss", RLIMIT_RSS},
      {"rtprio", RLIMIT_RTPRIO},   {"rttime", RLIMIT_RTTIME}, {"sigpending", RLIMIT_SIGPENDING},
      {"stack", RLIMIT_STACK},
  }};
  for (const auto& [known, resource] : kNames)
    if (name == known) return resource;
  return make_error(Errc::invalid_argument, "unknown rlimit \"" + name + "\"");
}

Result<Json> parse_request(std::string_view payload) {
  Json request = Json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (request.is_discarded()) return bad("the request is not valid JSON");
  if (!request.is_object()) return bad("the request must be a JSON object");
  if (HYPER_TRY(get_string(request, "op", true)).empty()) return bad("\"op\" must not be empty");
  return request;
}

namespace {

constexpr size_t kMaxGroups = 256;

Result<std::optional<std::vector<uint32_t>>> get_groups(const Json& process) {
  const auto it = process.find("groups");
  if (it == process.end() || it->is_null()) return std::optional<std::vector<uint32_t>>();
  if (!it->is_array() || it->size() > kMaxGroups) return bad("\"groups\" must be an array of at most 256 gids");
  std::vector<uint32_t> gids;
  for (const auto& gid : *it) {
    if (!gid.is_number_unsigned() || gid.get<uint64_t>() > UINT32_MAX) return bad("each group must be a number below 2^32");
    gids.push_back(gid.get<uint32_t>());
  }
  return std::optional(std::move(gids));
}

}  // namespace

Result<ProcessSpec> parse_process_spec(const Json& process) {
  if (!process.is_object()) return bad("\"process\" must be an object");
  ProcessSpec spec;
  spec.args = HYPER_TRY(get_strings(process, "args"));
  if (spec.args.empty()) return bad("\"args\" must name the program to run");
  spec.env = HYPER_TRY(get_strings(process, "env"));
  spec.cwd = HYPER_TRY(get_string(process, "cwd"));
  if (spec.cwd.empty()) spec.cwd.push_back('/');  // not = "/": gcc 12 -Wrestrict false positive
  spec.user = HYPER_TRY(get_string(process, "user"));
  spec.tty = HYPER_TRY(get_bool(process, "tty"));
  spec.open_stdin = HYPER_TRY(get_bool(process, "stdin"));
  spec.umask = static_cast<mode_t>(HYPER_TRY(get_number(process, "umask", 022, 0777)));
  spec.rlimits = HYPER_TRY(get_rlimits(process));
  spec.groups = HYPER_TRY(get_groups(process));
  spec.rows = static_cast<uint16_t>(HYPER_TRY(get_number(process, "rows", 0, 0xffff)));
  spec.cols = static_cast<uint16_t>(HYPER_TRY(get_number(process, "cols", 0, 0xffff)));
  return spec;
}

namespace {

constexpr size_t kMaxEntropyBytes = 512;

Result<IdentitySpec> parse_identity(const Json& start) {
  IdentitySpec identity;
  const auto it = start.find("identity");
  if (it == start.end() || it->is_null()) return identity;
  if (!it->is_object()) return bad("\"identity\" must be an object");
  const std::string hex = HYPER_TRY(get_string(*it, "entropy"));
  if (hex.size() % 2 || hex.size() > 2 * kMaxEntropyBytes) return bad("\"entropy\" must be at most 512 bytes in hex");
  for (size_t i = 0; i < hex.size(); i += 2) {
    unsigned byte = 0;
    if (std::sscanf(hex.c_str() + i, "%2x", &byte) != 1 || !std::isxdigit(static_cast<unsigned char>(hex[i])) ||
        !std::isxdigit(static_cast<unsigned char>(hex[i + 1])))
      return bad("\"entropy\" must be hex digits");
    identity.entropy.push_back(static_cast<uint8_t>(byte));
  }
  if (it->contains("realtime_ns"))
    identity.realtime_ns = HYPER_TRY(get_number(*it, "realtime_ns", 0, UINT64_MAX));
  return identity;
}

Result<NetworkSpec> parse_network(const Json& start) {
  NetworkSpec spec;
  const auto it = start.find("network");
  if (it == start.end() || it->is_null()) return spec;
  if (!it->is_object()) return bad("\"network\" must be an object");
  const auto interfaces = it->find("interfaces");
  if (interfaces != it->end() && !interfaces->is_null()) {
    if (!interfaces->is_array() || interfaces->size() > 8) return bad("\"interfaces\" must be an array (at most 8)");
    for (const auto& item : *interfaces) {
      if (!item.is_object()) return bad("each interface must be an object");
      InterfaceSpec interface;
      interface.name = HYPER_TRY(get_string(item, "name", true));
      interface.address = HYPER_TRY(get_string(item, "address", true));
      interface.gateway = HYPER_TRY(get_string(item, "gateway"));
      interface.mtu = static_cast<uint32_t>(HYPER_TRY(get_number(item, "mtu", 0, 65535)));
      interface.mac = HYPER_TRY(get_string(item, "mac"));
      spec.interfaces.push_back(std::move(interface));
    }
  }
  spec.dns = HYPER_TRY(get_strings(*it, "dns"));
  spec.dns_search = HYPER_TRY(get_strings(*it, "dns_search"));
  for (const auto& line : HYPER_TRY(get_strings(*it, "hosts"))) {
    const auto space = line.find(' ');
    if (space == std::string::npos || line.find('\n') != std::string::npos)
      return bad("a \"hosts\" entry must be \"IP NAME...\" on one line");
    spec.extra_hosts.emplace_back(line.substr(0, space), line.substr(space + 1));
  }
  return spec;
}

bool is_device_path(const std::string& path) { return path.rfind("/dev/vd", 0) == 0 && path.size() <= 12; }

// An absolute path without "." or ".." components: the host normalized it already.
bool is_clean_target(const std::string& path) {
  if (path.size() < 2 || path.size() > 4096 || path[0] != '/' || path.back() == '/') return false;
  if (path.find('\0') != std::string::npos || path.find("//") != std::string::npos) return false;
  return (path + "/").find("/./") == std::string::npos && (path + "/").find("/../") == std::string::npos;
}

// One directory entry's name: no slash, not "." or "..".
bool is_clean_name(const std::string& name) {
  return !name.empty() && name.size() <= 255 && name != "." && name != ".." &&
         name.find_first_of(std::string("/\0", 2)) == std::string::npos;
}

constexpr size_t kMaxMounts = 64;
constexpr size_t kMaxTagBytes = 36;  // virtio-fs config space

Result<MountSpec> parse_mount(const Json& item) {
  if (!item.is_object()) return bad("each mount must be an object");
  MountSpec mount;
  const std::string type = HYPER_TRY(get_string(item, "type", true));
  mount.source = HYPER_TRY(get_string(item, "source"));
  mount.target = HYPER_TRY(get_string(item, "target", true));
  mount.read_only = HYPER_TRY(get_bool(item, "read_only"));
  mount.subpath = HYPER_TRY(get_string(item, "subpath"));
  if (!mount.subpath.empty() && (type != "virtiofs" || !is_clean_name(mount.subpath)))
    return bad("a mount's \"subpath\" must be one file name in a virtio-fs share");
  if (!is_clean_target(mount.target)) return bad("mount target \"" + mount.target + "\" is not a clean absolute path");
  if (type == "block") {
    mount.type = MountSpec::Type::block;
    if (!is_device_path(mount.source)) return bad("a block mount's source must be a virtio disk (/dev/vdX)");
  } else if (type == "virtiofs") {
    mount.type = MountSpec::Type::virtiofs;
    if (mount.source.empty() || mount.source.size() > kMaxTagBytes) return bad("a virtio-fs tag must be 1 to 36 bytes");
  } else if (type == "tmpfs") {
    mount.type = MountSpec::Type::tmpfs;
    mount.tmpfs_size = HYPER_TRY(get_number(item, "size", 0, UINT64_MAX));
    mount.tmpfs_mode = static_cast<uint32_t>(HYPER_TRY(get_number(item, "mode", 01777, 07777)));
  } else {
    return bad("unknown mount type \"" + type + "\" (block, virtiofs, tmpfs)");
  }
  return mount;
}

Result<RootfsSpec> parse_rootfs(const Json& rootfs) {
  RootfsSpec spec;
  spec.virtiofs_tag = HYPER_TRY(get_string(rootfs, "virtiofs"));
  if (!spec.virtiofs_tag.empty()) {
    if (spec.virtiofs_tag.size() > kMaxTagBytes) return bad("a virtio-fs tag must be 1 to 36 bytes");
    spec.read_only = HYPER_TRY(get_bool(rootfs, "read_only"));
    return spec;
  }
  spec.image_device = HYPER_TRY(get_string(rootfs, "image", true));
  spec.writable_device = HYPER_TRY(get_string(rootfs, "writable"));
  if (!is_device_path(spec.image_device) || (!spec.writable_device.empty() && !is_device_path(spec.writable_device)))
    return bad("rootfs devices must be virtio disks (/dev/vdX)");
  return spec;
}

Result<std::vector<MountSpec>> parse_mounts(const Json& start) {
  std::vector<MountSpec> mounts;
  const auto it = start.find("mounts");
  if (it == start.end() || it->is_null()) return mounts;
  if (!it->is_array() || it->size() > kMaxMounts) return bad("\"mounts\" must be an array (at most 64)");
  for (const auto& item : *it) mounts.push_back(HYPER_TRY(parse_mount(item)));
  return mounts;
}

}  // namespace

Result<ContainerSpec> parse_container_spec(const Json& start) {
  ContainerSpec spec;
  const auto rootfs = start.find("rootfs");
  if (rootfs == start.end() || !rootfs->is_object()) return bad("\"rootfs\" must be an object");
  spec.rootfs = HYPER_TRY(parse_rootfs(*rootfs));
  spec.hostname = HYPER_TRY(get_string(start, "hostname"));
  if (spec.hostname.size() > 64) return bad("the hostname is longer than 64 bytes");
  spec.network = HYPER_TRY(parse_network(start));
  spec.identity = HYPER_TRY(parse_identity(start));
  spec.mounts = HYPER_TRY(parse_mounts(start));
  return spec;
}

Result<BuildSpec> parse_build_spec(const Json& build) {
  BuildSpec spec;
  spec.source_device = HYPER_TRY(get_string(build, "source", true));
  spec.target_device = HYPER_TRY(get_string(build, "target", true));
  if (!is_device_path(spec.source_device) || !is_device_path(spec.target_device))
    return bad("build devices must be virtio disks (/dev/vdX)");
  const auto layers = build.find("layers");
  if (layers == build.end() || !layers->is_array() || layers->size() > 1024)
    return bad("\"layers\" must be an array of at most 1024 spans");
  for (const auto& item : *layers) {
    if (!item.is_object()) return bad("each layer must be an object");
    LayerSpan span;
    span.offset = HYPER_TRY(get_number(item, "offset", 0, UINT64_MAX / 2));
    span.size = HYPER_TRY(get_number(item, "size", 0, UINT64_MAX / 2));
    spec.layers.push_back(span);
  }
  return spec;
}

Result<std::string> parse_export_disk_spec(const Json& request) {
  std::string device = HYPER_TRY(get_string(request, "writable", true));
  if (!is_device_path(device)) return bad("the writable disk must be a virtio disk (/dev/vdX)");
  return device;
}

std::string error_reply(const Error& error, int exit_code) {
  Json reply = {{"ok", false}, {"error", error.message}, {"kind", agent::error_kind(error.code)}};
  if (exit_code != 0) reply["exit_code"] = exit_code;
  return reply.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string ok_reply(Json fields) {
  fields["ok"] = true;
  return fields.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace hyper::guest
