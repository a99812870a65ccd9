#include "runtime/oci/bundle.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cctype>
#include <fstream>
#include <sstream>

#include "guest-init/messages.hpp"
#include "runtime/volume/mount_spec.hpp"

namespace hyper::runtime::oci {
namespace {

using Json = nlohmann::json;
namespace fs = std::filesystem;

constexpr uint64_t kMiB = 1024 * 1024;
constexpr uint64_t kMinMemoryMib = 64;  // hyper run's floor: the guest kernel and init need it
constexpr uint32_t kMaxCpus = 64;
constexpr size_t kMaxGroups = 256;  // what the guest's agent takes

Error bad(const std::string& message) { return make_error(Errc::invalid_argument, message); }

// nlohmann throws on a wrong type; the bundle is the caller's input, so each field is
// checked and named instead.
Result<const Json*> member(const Json& object, const char* key, Json::value_t type, const std::string& where) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return static_cast<const Json*>(nullptr);
  const bool matches = it->type() == type || (type == Json::value_t::number_unsigned && it->is_number_unsigned()) ||
                       (type == Json::value_t::number_integer && it->is_number_integer());
  if (!matches) return bad(where + "." + key + " has the wrong type (expected " + Json(type).type_name() + ")");
  return &*it;
}

Result<std::string> string_of(const Json& object, const char* key, const std::string& where) {
  const Json* value = HYPER_TRY(member(object, key, Json::value_t::string, where));
  return value ? value->get<std::string>() : std::string();
}

Result<bool> bool_of(const Json& object, const char* key, const std::string& where) {
  const Json* value = HYPER_TRY(member(object, key, Json::value_t::boolean, where));
  return value && value->get<bool>();
}

Result<uint64_t> unsigned_of(const Json& object, const char* key, const std::string& where, uint64_t fallback = 0) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_number_unsigned()) return bad(where + "." + key + " must be a number of at least 0");
  return it->get<uint64_t>();
}

Result<std::vector<std::string>> strings_of(const Json& object, const char* key, const std::string& where) {
  const Json* value = HYPER_TRY(member(object, key, Json::value_t::array, where));
  std::vector<std::string> out;
  if (!value) return out;
  for (const auto& item : *value) {
    if (!item.is_string()) return bad(where + "." + key + " must be an array of strings");
    out.push_back(item.get<std::string>());
  }
  return out;
}

bool is_uint32(const Json& value) { return value.is_number_unsigned() && value.get<uint64_t>() <= UINT32_MAX; }

Result<std::vector<ContainerConfig::Rlimit>> parse_rlimits(const Json& process) {
  const Json* limits = HYPER_TRY(member(process, "rlimits", Json::value_t::array, "process"));
  std::vector<ContainerConfig::Rlimit> out;
  if (!limits) return out;
  for (const auto& item : *limits) {
    if (!item.is_object()) return bad("process.rlimits must be an array of objects");
    const std::string name = HYPER_TRY(string_of(item, "type", "process.rlimits[]"));
    if (!name.starts_with("RLIMIT_") || name.size() == 7) return bad("process.rlimits[].type \"" + name + "\" is not RLIMIT_*");
    std::string type = name.substr(7);
    std::transform(type.begin(), type.end(), type.begin(), [](unsigned char c) { return std::tolower(c); });
    if (!guest::rlimit_resource(type).ok()) return bad("process.rlimits: " + name + " is not a Linux rlimit");
    const uint64_t soft = HYPER_TRY(unsigned_of(item, "soft", "process.rlimits[]"));
    const uint64_t hard = HYPER_TRY(unsigned_of(item, "hard", "process.rlimits[]"));
    if (soft > hard) return bad("process.rlimits: the soft limit of " + name + " exceeds its hard limit");
    out.push_back({type, soft, hard});
  }
  return out;
}

Status parse_user(const Json& process, Process& out) {
  const Json* user = HYPER_TRY(member(process, "user", Json::value_t::object, "process"));
  if (!user) return {};
  for (const char* key : {"uid", "gid"})
    if (user->contains(key) && !is_uint32((*user)[key])) return bad(std::string("process.user.") + key + " must be a number below 2^32");
  out.uid = user->value("uid", 0u);
  out.gid = user->value("gid", 0u);
  if (!HYPER_TRY(string_of(*user, "username", "process.user")).empty())
    return bad("process.user.username is for Windows containers");
  const Json* gids = HYPER_TRY(member(*user, "additionalGids", Json::value_t::array, "process.user"));
  if (!gids) return {};
  // The guest's limit, as the kernel's NGROUPS_MAX is far above what anyone sets.
  if (gids->size() > kMaxGroups)
    return bad("process.user.additionalGids: at most " + std::to_string(kMaxGroups) + " groups");
  for (const auto& gid : *gids) {
    if (!is_uint32(gid)) return bad("process.user.additionalGids must be numbers below 2^32");
    out.additional_gids.push_back(gid.get<uint32_t>());
  }
  return {};
}

Result<uint64_t> memory_mib(const Json& resources) {
  const Json* memory = HYPER_TRY(member(resources, "memory", Json::value_t::object, "linux.resources"));
  if (!memory || !memory->contains("limit")) return uint64_t{0};
  const Json& limit = (*memory)["limit"];
  // -1 (and any other negative value) is "no limit", and so is 0, as runc reads it.
  if (limit.is_number_integer() && !limit.is_number_unsigned()) return uint64_t{0};
  if (!limit.is_number_unsigned()) return bad("linux.resources.memory.limit must be a number");
  if (limit.get<uint64_t>() == 0) return uint64_t{0};
  const uint64_t mib = (limit.get<uint64_t>() + kMiB - 1) / kMiB;
  if (mib < kMinMemoryMib)
    return bad("linux.resources.memory.limit " + std::to_string(limit.get<uint64_t>()) +
               " is too small: a container VM needs at least 64 MiB");
  return mib;
}

// "0-3,8" -> 5.
Result<uint32_t> cpuset_size(const std::string& cpus) {
  uint32_t count = 0;
  std::stringstream list(cpus);
  const auto number = [](const std::string& text, unsigned long& value) {
    char* end = nullptr;
    errno = 0;
    value = std::strtoul(text.c_str(), &end, 10);
    return !text.empty() && std::isdigit(static_cast<unsigned char>(text[0])) && *end == '\0' && errno == 0;
  };
  for (std::string range; std::getline(list, range, ',');) {
    const auto dash = range.find('-');
    unsigned long first = 0, last = 0;
    const bool parsed = dash == std::string::npos
                            ? number(range, first) && number(range, last)
                            : number(range.substr(0, dash), first) && number(range.substr(dash + 1), last);
    if (!parsed || last < first || last - first >= kMaxCpus)
      return bad("linux.resources.cpu.cpus \"" + cpus + "\" is not a CPU list such as 0-3,8");
    count += static_cast<uint32_t>(last - first + 1);
  }
  return count;
}

// The VM's vCPUs: the quota's share of a period, rounded up, else the cpuset's size.
Result<uint32_t> vcpus(const Json& resources) {
  const Json* cpu = HYPER_TRY(member(resources, "cpu", Json::value_t::object, "linux.resources"));
  if (!cpu) return 0u;
  uint64_t count = 0;
  const auto quota = cpu->find("quota");
  if (quota != cpu->end() && !quota->is_null() && !quota->is_number_integer())
    return bad("linux.resources.cpu.quota must be an integer");
  if (quota != cpu->end() && quota->is_number_integer() && quota->get<int64_t>() > 0) {
    const uint64_t period = HYPER_TRY(unsigned_of(*cpu, "period", "linux.resources.cpu", 100000));
    if (period == 0) return bad("linux.resources.cpu.period must not be 0");
    count = (quota->get<uint64_t>() + period - 1) / period;
  } else if (const std::string set = HYPER_TRY(string_of(*cpu, "cpus", "linux.resources.cpu")); !set.empty()) {
    count = HYPER_TRY(cpuset_size(set));
  }
  if (count > kMaxCpus) return bad("linux.resources.cpu asks for " + std::to_string(count) + " CPUs; a VM has at most 64");
  return static_cast<uint32_t>(count);
}

Status parse_linux(const Json& config, ContainerConfig& out) {
  const Json* linux_section = HYPER_TRY(member(config, "linux", Json::value_t::object, "config"));
  if (!linux_section) return {};
  for (const char* key : {"uidMappings", "gidMappings"})
    if (linux_section->contains(key) && !(*linux_section)[key].empty())
      return bad(std::string("linux.") + key + ": user namespaces are not supported (run the container as root; "
                                               "the VM is its isolation)");
  if (const Json* namespaces = HYPER_TRY(member(*linux_section, "namespaces", Json::value_t::array, "linux")))
    for (const auto& ns : *namespaces)
      if (ns.is_object() && HYPER_TRY(string_of(ns, "type", "linux.namespaces[]")) == "user")
        return bad("linux.namespaces: a user namespace is not supported (the VM is the container's isolation)");
  if (const Json* resources = HYPER_TRY(member(*linux_section, "resources", Json::value_t::object, "linux"))) {
    if (const uint64_t mib = HYPER_TRY(memory_mib(*resources))) out.memory_mib = mib;
    if (const uint32_t cpus = HYPER_TRY(vcpus(*resources))) out.cpus = cpus;
  }
  return {};
}

Status check_no_hooks(const Json& config) {
  const Json* hooks = HYPER_TRY(member(config, "hooks", Json::value_t::object, "config"));
  if (!hooks) return {};
  for (const auto& [name, list] : hooks->items())
    if (!list.empty())
      return bad("hooks." + name + ": OCI hooks are not supported by hyper-runtime (the container runs in a VM "
                                   "they could not reach)");
  return {};
}

bool has_option(const std::vector<std::string>& options, const char* option) {
  return std::find(options.begin(), options.end(), option) != options.end();
}

// The file systems the guest init mounts for every container, where they always go.
bool provided_by_init(const std::string& type, const std::string& target) {
  static const std::pair<const char*, const char*> kProvided[] = {
      {"proc", "/proc"},       {"sysfs", "/sys"},           {"devpts", "/dev/pts"}, {"tmpfs", "/dev"},
      {"tmpfs", "/dev/shm"},   {"mqueue", "/dev/mqueue"},   {"cgroup", "/sys/fs/cgroup"},
      {"cgroup2", "/sys/fs/cgroup"}};
  return std::any_of(std::begin(kProvided), std::end(kProvided),
                     [&](const auto& entry) { return type == entry.first && target == entry.second; });
}

Result<volume::Mount> tmpfs_mount(const std::string& target, const std::vector<std::string>& options) {
  volume::Mount mount;
  mount.type = volume::MountType::tmpfs;
  mount.target = target;
  mount.read_only = has_option(options, "ro");
  for (const auto& option : options) {
    if (option.starts_with("size=")) mount.tmpfs_size = HYPER_TRY(volume::parse_byte_size(option.substr(5)));
    if (option.starts_with("mode=")) {
      char* end = nullptr;
      const unsigned long mode = std::strtoul(option.c_str() + 5, &end, 8);
      if (option.size() == 5 || *end != '\0' || mode > 07777) return bad("mounts: tmpfs on " + target + ": bad " + option);
      mount.tmpfs_mode = static_cast<uint32_t>(mode);
    }
  }
  return mount;
}

Result<volume::Mount> bind_mount(std::string source, const std::string& target, const std::vector<std::string>& options,
                                 const fs::path& dir) {
  if (source.empty()) return bad("mounts: the bind mount on " + target + " has no source");
  if (source[0] != '/') source = (dir / source).lexically_normal().string();
  struct stat st{};
  if (::stat(source.c_str(), &st) != 0) return bad("mounts: the source of " + target + ", " + source + ", does not exist");
  if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
    return bad("mounts: " + source + " on " + target +
               ": only directories and regular files can be bound into a VM (not sockets or devices)");
  volume::Mount mount;
  mount.type = volume::MountType::bind;
  mount.source = source;
  mount.target = target;
  mount.read_only = has_option(options, "ro");
  return mount;
}

Result<std::optional<volume::Mount>> translate_mount(const Json& item, const fs::path& dir) {
  if (!item.is_object()) return bad("mounts must be an array of objects");
  const std::string destination = HYPER_TRY(string_of(item, "destination", "mounts[]"));
  const std::string type = HYPER_TRY(string_of(item, "type", "mounts[]"));
  const std::vector<std::string> options = HYPER_TRY(strings_of(item, "options", "mounts[]"));
  const std::string target = HYPER_TRY(volume::normalize_target(destination, "mounts[].destination"));
  const bool bind = type == "bind" || has_option(options, "bind") || has_option(options, "rbind");
  // The VM's own /dev/shm serves its processes; a host's shm directory would not be shared memory.
  if (provided_by_init(type, target) || (bind && target == "/dev/shm")) return std::optional<volume::Mount>();
  if (bind) {
    const std::string source = HYPER_TRY(string_of(item, "source", "mounts[]"));
    return std::optional(HYPER_TRY(bind_mount(source, target, options, dir)));
  }
  if (type == "tmpfs") return std::optional(HYPER_TRY(tmpfs_mount(target, options)));
  return bad("mounts: a " + (type.empty() ? std::string("typeless") : type) + " mount on " + target +
             " is not supported in a VM (bind, tmpfs and the kernel's own file systems are)");
}

Status parse_mounts(const Json& config, const fs::path& dir, ContainerConfig& out) {
  const Json* mounts = HYPER_TRY(member(config, "mounts", Json::value_t::array, "config"));
  if (!mounts) return {};
  for (const auto& item : *mounts)
    if (auto mount = HYPER_TRY(translate_mount(item, dir))) out.mounts.push_back(std::move(*mount));
  return volume::check_mounts(out.mounts);
}

Result<HostRootfs> parse_root(const Json& config, const fs::path& dir) {
  const Json* root = HYPER_TRY(member(config, "root", Json::value_t::object, "config"));
  if (!root) return bad("config.json has no root");
  std::string path = HYPER_TRY(string_of(*root, "path", "root"));
  if (path.empty()) return bad("root.path is empty");
  if (path[0] != '/') path = (dir / path).lexically_normal().string();
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return bad("root.path " + path + " is not a directory");
  return HostRootfs{path, HYPER_TRY(bool_of(*root, "readonly", "root"))};
}

}  // namespace

Result<Process> parse_process(const Json& process) {
  if (!process.is_object()) return bad("process must be an object");
  Process out;
  out.args = HYPER_TRY(strings_of(process, "args", "process"));
  if (out.args.empty()) return bad("process.args must name the program to run");
  if (process.contains("commandLine")) return bad("process.commandLine is for Windows containers");
  out.env = HYPER_TRY(strings_of(process, "env", "process"));
  out.cwd = HYPER_TRY(string_of(process, "cwd", "process"));
  if (out.cwd.empty() || out.cwd[0] != '/') return bad("process.cwd \"" + out.cwd + "\" must be an absolute path");
  HYPER_CHECK(parse_user(process, out));
  if (const Json* terminal = HYPER_TRY(member(process, "terminal", Json::value_t::boolean, "process")))
    out.terminal = terminal->get<bool>();
  out.rlimits = HYPER_TRY(parse_rlimits(process));
  if (const Json* size = HYPER_TRY(member(process, "consoleSize", Json::value_t::object, "process"))) {
    out.rows = static_cast<uint16_t>(std::min<uint64_t>(HYPER_TRY(unsigned_of(*size, "height", "process.consoleSize")), 0xffff));
    out.cols = static_cast<uint16_t>(std::min<uint64_t>(HYPER_TRY(unsigned_of(*size, "width", "process.consoleSize")), 0xffff));
  }
  return out;
}

Json agent_process(const Process& process) {
  Json out = {{"args", process.args}, {"env", process.env},   {"cwd", process.cwd}, {"user", process.user()},
              {"tty", process.terminal}, {"stdin", true},     {"rlimits", rlimits_json(process.rlimits)}};
  out["groups"] = process.additional_gids;  // exactly these, as runc sets them
  if (process.rows && process.cols) out["rows"] = process.rows, out["cols"] = process.cols;
  return out;
}

Result<Bundle> parse_bundle_config(const Json& config, const fs::path& dir) {
  if (!config.is_object()) return bad("config.json must hold a JSON object");
  const std::string version = HYPER_TRY(string_of(config, "ociVersion", "config"));
  if (!version.starts_with("1.")) return bad("ociVersion \"" + version + "\" is not a 1.x runtime spec");
  HYPER_CHECK(check_no_hooks(config));
  Bundle bundle;
  ContainerConfig& out = bundle.config;
  out.host_rootfs = HYPER_TRY(parse_root(config, dir));
  const Json* process = HYPER_TRY(member(config, "process", Json::value_t::object, "config"));
  if (!process) return bad("config.json has no process: hyper-runtime create needs one");
  const Process main = HYPER_TRY(parse_process(*process));
  out.entrypoint = main.args;
  out.env = main.env;
  out.working_dir = main.cwd;
  out.user = main.user();
  out.groups = main.additional_gids;
  out.rlimits = main.rlimits;
  out.tty = main.terminal;
  // Whatever the runtime's caller gave as stdin (a pipe, /dev/null) reaches the process.
  out.open_stdin = true;
  out.hostname = HYPER_TRY(string_of(config, "hostname", "config"));
  out.net.network = "none";  // the caller's network namespace is not the VM's (docs/embedding.md)
  HYPER_CHECK(parse_linux(config, out));
  HYPER_CHECK(parse_mounts(config, dir, out));
  if (const Json* annotations = HYPER_TRY(member(config, "annotations", Json::value_t::object, "config")))
    bundle.annotations = *annotations;
  return bundle;
}

Result<Bundle> load_bundle(const fs::path& dir) {
  const fs::path path = dir / "config.json";
  std::ifstream in(path);
  if (!in) return make_error(Errc::not_found, "cannot read " + path.string() + ": is " + dir.string() + " an OCI bundle?");
  const Json config = Json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded()) return bad(path.string() + " is not valid JSON");
  return parse_bundle_config(config, dir);
}

Status check_container_id(const std::string& id) {
  const bool valid = !id.empty() && id.size() <= 1024 && id != "." && id != ".." &&
                     std::all_of(id.begin(), id.end(), [](unsigned char c) {
                       return std::isalnum(c) || c == '_' || c == '+' || c == '-' || c == '.';
                     });
  if (!valid) return bad("invalid container id \"" + id + "\": use letters, digits, _ + - and . (not . or ..)");
  return {};
}

}  // namespace hyper::runtime::oci
