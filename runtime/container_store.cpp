#include "runtime/container_store.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iterator>
#include <nlohmann/json.hpp>
#include <system_error>

#include "runtime/jail/cgroup.hpp"
#include "runtime/crash_point.hpp"
#include "runtime/image_blobs.hpp"
#include "runtime/network/container_network.hpp"
#include "vmm/file_io.hpp"
#include "vmm/seccomp.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::runtime {
namespace {

// Held shared by the watchers of a run (watch_exit), exclusively by whoever removes it.
constexpr const char* kWatchLock = "watch.lock";

namespace fs = std::filesystem;
using Json = nlohmann::json;

// Hidden entries, so that the containers directory lists nothing but container ids
// (`ls` shows what is there, and an emptied store looks empty).
constexpr const char* kNamesDir = ".names";
constexpr const char* kNamesLock = ".lock";  // inside kNamesDir; no name starts with '.'
constexpr const char* kCreatingPrefix = ".creating-";
constexpr const char* kRemovingPrefix = ".removing-";
constexpr const char* kConfigFile = "config.json";
constexpr const char* kStateFile = "state.json";
constexpr const char* kLockFile = "lock";
constexpr const char* kVmLockFile = "vm.lock";
constexpr int kKilledStatus = 137;  // 128 + SIGKILL: what Docker reports for a killed container
constexpr size_t kIdBytes = 32;

bool is_hex(const std::string& text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
}

bool is_id(const std::string& text) { return text.size() == 2 * kIdBytes && is_hex(text); }

Result<std::string> random_id() {
  uint8_t bytes[kIdBytes];
  size_t done = 0;
  while (done < sizeof bytes) {
    const ssize_t n = ::getrandom(bytes + done, sizeof bytes - done, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno("getrandom");
    done += static_cast<size_t>(n);
  }
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string id;
  for (const uint8_t byte : bytes) {
    id += kDigits[byte >> 4];
    id += kDigits[byte & 0xf];
  }
  return id;
}

}  // namespace

bool valid_name(const std::string& name) {
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
  if (name.size() < 2 || !alnum(name[0])) return false;
  return std::all_of(name.begin() + 1, name.end(), [&](char c) { return alnum(c) || c == '_' || c == '.' || c == '-'; });
}

namespace {


Result<UniqueFd> lock_file(const fs::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd.valid()) return Error::from_errno("open " + path.string());
  while (::flock(fd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return Error::from_errno("flock " + path.string());
  }
  return fd;
}

Error corrupt(const fs::path& path, const char* what) {
  return make_error(Errc::io, path.string() + " is corrupt: " + what);
}

Result<ContainerStatus> parse_status(const std::string& text) {
  for (auto status : {ContainerStatus::created, ContainerStatus::running, ContainerStatus::exited}) {
    if (text == status_name(status)) return status;
  }
  return make_error(Errc::invalid_argument, "unknown status \"" + text + "\"");
}

std::string config_text(const Container& container) {
  const ContainerConfig& config = container.config;
  Json json = {{"id", container.id},
                     {"name", container.name},
                     {"created", container.created},
                     {"image", config.image},
                     {"image_id", config.image_id},
                     {"entrypoint", config.entrypoint},
                     {"cmd", config.cmd},
                     {"env", config.env},
                     {"working_dir", config.working_dir},
                     {"user", config.user},
                     {"hostname", config.hostname},
                     {"stop_signal", config.stop_signal},
                     {"tty", config.tty},
                     {"open_stdin", config.open_stdin},
                     {"auto_remove", config.auto_remove},
                     {"cpus", config.cpus},
                     {"memory_mib", config.memory_mib},
                     {"seccomp", config.seccomp},
                     {"from_template", config.from_template},
                     {"net", net::config_json(config.net)}};
  if (!config.mounts.empty()) {
    Json mounts = Json::array();
    for (const auto& mount : config.mounts) mounts.push_back(volume::mount_json(mount));
    json["mounts"] = mounts;
  }
  if (config.host_rootfs) json["host_rootfs"] = {{"path", config.host_rootfs->path}, {"read_only", config.host_rootfs->read_only}};
  if (config.groups) json["groups"] = *config.groups;
  if (!config.rlimits.empty()) json["rlimits"] = rlimits_json(config.rlimits);
  if (config.network) {
    const TapNetwork& net = *config.network;
    json["network"] = {{"tap", net.tap}, {"address", net.address}, {"gateway", net.gateway}, {"mac", net.mac}, {"dns", net.dns}};
  }
  // Bytes that are not UTF-8 (an -e value, say) become U+FFFD rather than failing the run.
  return json.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

Json jail_json(const JailState& jail) {
  return {{"namespaces", jail.namespaces},
          {"root", jail.root},
          {"error", jail.error},
          {"cgroup", jail.cgroup},
          {"memory_max", jail.memory_max},
          {"cpu_max", jail.cpu_max},
          {"limits_enforced", jail.limits_enforced},
          {"limits_error", jail.limits_error}};
}

JailState parse_jail(const Json& json) {
  JailState jail;
  jail.namespaces = json.value("namespaces", std::vector<std::string>{});
  jail.root = json.value("root", "");
  jail.error = json.value("error", "");
  jail.cgroup = json.value("cgroup", "");
  jail.memory_max = json.value("memory_max", "");
  jail.cpu_max = json.value("cpu_max", "");
  jail.limits_enforced = json.value("limits_enforced", false);
  jail.limits_error = json.value("limits_error", "");
  return jail;
}

std::string state_text(const ContainerState& state) {
  Json json = {{"status", status_name(state.status)},
               {"pid", state.pid},
               {"pid_start_ticks", state.pid_start_ticks},
               {"vmm_pid", state.vmm_pid},
               {"exit_code", state.exit_code},
               {"error", state.error},
               {"started_at", state.started_at},
               {"finished_at", state.finished_at}};
  if (state.jail) json["jail"] = jail_json(*state.jail);
  if (state.endpoint) json["endpoint"] = net::endpoint_json(*state.endpoint);
  return json.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

// nlohmann reports a malformed document or a field of the wrong type by throwing; both
// are turned into the error of a corrupt file here.
Status parse_config(const fs::path& path, const std::string& text, Container& out) {
  try {
    const Json json = Json::parse(text);
    out.id = json.at("id").get<std::string>();
    out.name = json.value("name", "");
    out.created = json.at("created").get<std::string>();
    ContainerConfig& config = out.config;
    config.image = json.at("image").get<std::string>();
    config.image_id = json.at("image_id").get<std::string>();
    config.entrypoint = json.value("entrypoint", std::vector<std::string>{});
    config.cmd = json.value("cmd", std::vector<std::string>{});
    config.env = json.value("env", std::vector<std::string>{});
    config.working_dir = json.value("working_dir", "");
    config.user = json.value("user", "");
    config.hostname = json.value("hostname", "");
    config.stop_signal = json.value("stop_signal", "");
    config.tty = json.value("tty", false);
    config.open_stdin = json.value("open_stdin", false);
    config.auto_remove = json.value("auto_remove", false);
    config.cpus = json.value("cpus", 1u);
    config.memory_mib = json.value("memory_mib", uint64_t{256});
    config.seccomp = json.value("seccomp", true);
    config.from_template = json.value("from_template", false);
    // Containers made before networks existed had none.
    if (json.contains("net")) config.net = net::parse_config_json(json["net"]);
    else config.net.network = "none";
    if (const auto mounts = json.find("mounts"); mounts != json.end() && mounts->is_array()) {
      for (const auto& item : *mounts) {
        auto mount = volume::parse_mount_json(item);
        if (!mount.ok()) return corrupt(path, mount.error().message.c_str());
        config.mounts.push_back(std::move(mount).value());
      }
    }
    if (const auto root = json.find("host_rootfs"); root != json.end() && root->is_object())
      config.host_rootfs = HostRootfs{root->at("path").get<std::string>(), root->value("read_only", false)};
    if (const auto groups = json.find("groups"); groups != json.end() && groups->is_array())
      config.groups = groups->get<std::vector<uint32_t>>();
    if (const auto limits = json.find("rlimits"); limits != json.end() && limits->is_array())
      for (const auto& limit : *limits)
        config.rlimits.push_back({limit.at("type").get<std::string>(), limit.at("soft").get<uint64_t>(), limit.at("hard").get<uint64_t>()});
    if (const auto net = json.find("network"); net != json.end() && net->is_object()) {
      config.network = TapNetwork{net->at("tap").get<std::string>(), net->at("address").get<std::string>(),
                                  net->value("gateway", ""), net->value("mac", ""),
                                  net->value("dns", std::vector<std::string>{})};
    }
  } catch (const Json::exception& e) {
    return corrupt(path, e.what());
  }
  return {};
}

Result<ContainerState> parse_state(const fs::path& path, const std::string& text) {
  ContainerState state;
  try {
    const Json json = Json::parse(text);
    auto status = parse_status(json.at("status").get<std::string>());
    if (!status.ok()) return corrupt(path, status.error().message.c_str());
    state.status = *status;
    state.pid = json.value("pid", pid_t{0});
    state.pid_start_ticks = json.value("pid_start_ticks", uint64_t{0});
    state.vmm_pid = json.value("vmm_pid", pid_t{0});
    state.exit_code = json.value("exit_code", 0);
    state.error = json.value("error", "");
    state.started_at = json.value("started_at", "");
    state.finished_at = json.value("finished_at", "");
    if (const auto jail = json.find("jail"); jail != json.end() && jail->is_object()) state.jail = parse_jail(*jail);
    if (const auto endpoint = json.find("endpoint"); endpoint != json.end()) state.endpoint = net::parse_endpoint_json(*endpoint);
  } catch (const Json::exception& e) {
    return corrupt(path, e.what());
  }
  return state;
}

Result<ContainerState> read_state(const fs::path& dir) {
  const fs::path path = dir / kStateFile;
  const std::string text = HYPER_TRY(read_text_file(path));
  return parse_state(path, text);
}

// The read-change-replace of state.json, under the container's lock so that concurrent
// changes (the monitor's, a reconciling reader's) never lose one another.
Result<ContainerState> modify_state(const fs::path& dir, const std::function<void(ContainerState&)>& change) {
  const UniqueFd lock = HYPER_TRY(lock_file(dir / kLockFile));
  ContainerState state = HYPER_TRY(read_state(dir));
  change(state);
  HYPER_CHECK(blobs::replace_file(dir / kStateFile, state_text(state)));
  return state;
}

// The message the VMM's seccomp reporter left before it ended the monitor, if any.
std::optional<std::string> seccomp_violation(const fs::path& dir) {
  auto text = read_text_file(dir / kSeccompViolationFile);
  if (!text.ok() || text->empty()) return std::nullopt;
  while (!text->empty() && text->back() == '\n') text->pop_back();
  return *text;
}

// A monitor that died without recording its end (SIGKILL, a host crash) left the state
// "running": record what Docker shows for a killed container, or the seccomp violation
// that ended it. The check is repeated under the lock, where the monitor itself may have
// recorded its end meanwhile.
Result<ContainerState> reconcile(const fs::path& dir, const ContainerState& state) {
  if (state.status != ContainerStatus::running || monitor_alive(state)) return state;
  const auto violation = seccomp_violation(dir);
  return modify_state(dir, [&violation](ContainerState& current) {
    if (current.status != ContainerStatus::running || monitor_alive(current)) return;
    current.status = ContainerStatus::exited;
    current.pid = 0;
    current.pid_start_ticks = 0;
    current.vmm_pid = 0;
    current.exit_code = violation ? seccomp::kViolationStatus : kKilledStatus;
    if (violation) current.error = *violation;
    current.finished_at = now_rfc3339();
  });
}

// Two processes may delete the same tree (a remove and a sweep of its remains): what
// counts is that it is gone.
Status remove_tree(const fs::path& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec && ::access(path.c_str(), F_OK) == 0) return make_error(Errc::io, "remove " + path.string() + ": " + ec.message());
  return {};
}

// A monitor killed with SIGKILL leaves its VMM's group behind (its VMM dies with it).
// Only a group named by the container's id, on a cgroup v2 file system, is removed.
void remove_leftover_cgroup(const Container& container) {
  if (!container.state.jail || container.state.jail->cgroup.empty()) return;
  const fs::path group = container.state.jail->cgroup;
  if (group.filename() != container.id || !check_cgroup2(group).ok()) return;
  (void)remove_cgroup(group);
}

struct ProcStat {
  char state = '?';
  uint64_t start_ticks = 0;
};

// /proc/PID/stat is "pid (comm) state ppid ...": comm may hold spaces and parentheses,
// so the fields are counted from the last ')'.
Result<ProcStat> read_proc_stat(pid_t pid) {
  if (pid <= 0) return make_error(Errc::invalid_argument, "invalid pid " + std::to_string(pid));
  const std::string text = HYPER_TRY(read_text_file("/proc/" + std::to_string(pid) + "/stat"));
  const auto paren = text.rfind(')');
  if (paren == std::string::npos) return make_error(Errc::io, "unexpected /proc/" + std::to_string(pid) + "/stat");
  // After ')': field 3 (state) is token 0, field 22 (starttime) token 19.
  constexpr int kStartTimeToken = 19;
  ProcStat out;
  const char* cursor = text.c_str() + paren + 1;
  for (int token = 0; token <= kStartTimeToken; ++token) {
    while (*cursor == ' ') ++cursor;
    if (*cursor == '\0' || *cursor == '\n')
      return make_error(Errc::io, "/proc/" + std::to_string(pid) + "/stat has too few fields");
    if (token == 0) out.state = *cursor;
    if (token == kStartTimeToken) {
      char* end = nullptr;
      out.start_ticks = std::strtoull(cursor, &end, 10);
      if (end == cursor) return make_error(Errc::io, "/proc/" + std::to_string(pid) + "/stat: bad start time");
    }
    while (*cursor != ' ' && *cursor != '\0') ++cursor;
  }
  return out;
}

Result<std::string> read_link(const fs::path& link) {
  char buf[256];
  const ssize_t n = ::readlink(link.c_str(), buf, sizeof buf);
  if (n < 0) return Error::from_errno("readlink " + link.string());
  return std::string(buf, static_cast<size_t>(n));
}

// Makes `name` point at `id`, or returns the id that holds it. symlink(2) fails when the
// name exists, so of two racing creators exactly one wins. A link whose container is
// gone (a crash between claiming and publishing) is taken over; the caller holds the
// names lock, which makes that check safe.
Result<std::optional<std::string>> link_name(const fs::path& store, const std::string& name, const std::string& id) {
  const fs::path link = store / kNamesDir / name;
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (::symlink(id.c_str(), link.c_str()) == 0) return std::optional<std::string>();
    if (errno != EEXIST) return Error::from_errno("symlink " + link.string());
    auto owner = read_link(link);
    if (owner.ok() && is_id(*owner) && ::access((store / *owner).c_str(), F_OK) == 0) return std::optional(*owner);
    if (::unlink(link.c_str()) != 0 && errno != ENOENT) return Error::from_errno("unlink " + link.string());
  }
  return make_error(Errc::io, "cannot claim the name " + name);
}

// Words for the names of containers run without --name, so that `ps` shows something
// easier to type than an id.
constexpr const char* kAdjectives[] = {"amber", "bold",   "brave", "bright", "calm",   "clever", "eager", "gentle",
                                       "happy", "keen",   "lively", "lucid", "merry",  "nimble", "quiet", "rapid",
                                       "serene", "sharp", "steady", "swift", "tidy",   "vivid",  "witty", "zesty"};
constexpr const char* kNouns[] = {"badger", "beaver", "condor", "dolphin", "falcon", "finch",  "gecko", "heron",
                                  "ibis",   "jaguar", "kestrel", "lemur",  "lynx",   "marten", "newt",  "osprey",
                                  "otter",  "panda",  "quail",  "raven",   "salmon", "tapir",  "walrus", "wren"};

// "brave_otter", then with a digit appended once the short forms start colliding.
Result<std::string> generated_name(int attempt) {
  const std::string random = HYPER_TRY(random_id());
  const unsigned long a = std::stoul(random.substr(0, 4), nullptr, 16);
  const unsigned long b = std::stoul(random.substr(4, 4), nullptr, 16);
  std::string name = std::string(kAdjectives[a % std::size(kAdjectives)]) + "_" + kNouns[b % std::size(kNouns)];
  if (attempt > 0) name += std::to_string(std::stoul(random.substr(8, 4), nullptr, 16) % (10 * attempt));
  return name;
}

Result<std::string> claim_name(const fs::path& store, const std::string& requested, const std::string& id) {
  if (!requested.empty()) {
    const auto owner = HYPER_TRY(link_name(store, requested, id));
    if (!owner) return requested;
    return make_error(Errc::invalid_argument, "Conflict. The container name \"/" + requested +
                                                  "\" is already in use by container \"" + *owner +
                                                  "\". You have to remove (or rename) that container to be able to "
                                                  "reuse that name.");
  }
  constexpr int kAttempts = 16;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    const std::string name = HYPER_TRY(generated_name(attempt));
    const auto owner = HYPER_TRY(link_name(store, name, id));
    if (!owner) return name;
  }
  return make_error(Errc::io, "no free container name found");
}

// Builds the container's directory aside, claims the name and renames the directory into
// place, all under the names lock: a staging directory seen by anyone holding that lock
// was left by a process that died (sweep_leftovers).
Status publish(const fs::path& store, Container& container, const std::string& requested) {
  const UniqueFd lock = HYPER_TRY(lock_file(store / kNamesDir / kNamesLock));
  const fs::path staging = store / (kCreatingPrefix + container.id);
  if (::mkdir(staging.c_str(), 0700) != 0) return Error::from_errno("mkdir " + staging.string());
  Status done = [&]() -> Status {
    container.name = HYPER_TRY(claim_name(store, requested, container.id));
    Status written = blobs::replace_file(staging / kConfigFile, config_text(container));
    if (written.ok()) written = blobs::replace_file(staging / kStateFile, state_text(ContainerState{}));
    crash_point("container-staged");
    if (written.ok() && ::rename(staging.c_str(), container.dir.c_str()) != 0)
      written = Error::from_errno("rename " + staging.string());
    if (!written.ok()) ::unlink((store / kNamesDir / container.name).c_str());
    return written;
  }();
  if (!done.ok()) (void)remove_tree(staging);
  return done;
}

// What a process killed half-way through create or remove leaves: staging directories
// (never visible as containers) and removed containers' remains. Under the names lock,
// which every create and the rename of every remove hold.
void sweep_leftovers(const fs::path& store) {
  std::vector<fs::path> leftovers;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(store, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with(kCreatingPrefix) || name.starts_with(kRemovingPrefix)) leftovers.push_back(entry.path());
  }
  if (leftovers.empty()) return;
  auto lock = lock_file(store / kNamesDir / kNamesLock);
  if (!lock.ok()) return;
  // A remove renames under the lock but deletes after it, so a removed tree may still be
  // shrinking under its remover: both only delete.
  for (const auto& path : leftovers) (void)remove_tree(path);
}

Result<std::vector<std::string>> container_ids(const fs::path& store) {
  std::vector<std::string> ids;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(store, ec)) {
    const std::string name = entry.path().filename().string();
    if (is_id(name)) ids.push_back(name);
  }
  if (ec) return make_error(Errc::io, "list " + store.string() + ": " + ec.message());
  return ids;
}

}  // namespace

const char* status_name(ContainerStatus status) {
  switch (status) {
    case ContainerStatus::created: return "created";
    case ContainerStatus::running: return "running";
    case ContainerStatus::exited: return "exited";
  }
  return "unknown";
}

Json rlimits_json(const std::vector<ContainerConfig::Rlimit>& rlimits) {
  Json limits = Json::array();
  for (const auto& limit : rlimits) limits.push_back({{"type", limit.type}, {"soft", limit.soft}, {"hard", limit.hard}});
  return limits;
}

Result<uint64_t> process_start_ticks(pid_t pid) {
  const ProcStat stat = HYPER_TRY(read_proc_stat(pid));
  return stat.start_ticks;
}

bool process_alive(pid_t pid, uint64_t start_ticks) {
  if (pid <= 0) return false;
  auto stat = read_proc_stat(pid);
  if (!stat.ok()) return false;
  // A zombie has ended; it only waits for its parent to collect the status.
  if (stat->state == 'Z' || stat->state == 'X' || stat->state == 'x') return false;
  return start_ticks == 0 || stat->start_ticks == start_ticks;
}

bool monitor_alive(const ContainerState& state) { return process_alive(state.pid, state.pid_start_ticks); }

std::string now_rfc3339() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  tm utc{};
  ::gmtime_r(&ts.tv_sec, &utc);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &utc);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%09ldZ", date, static_cast<long>(ts.tv_nsec));
  return out;
}


Result<ContainerStore> ContainerStore::open(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir / kNamesDir, ec);
  if (ec) return make_error(Errc::io, "cannot create " + (dir / kNamesDir).string() + ": " + ec.message());
  sweep_leftovers(dir);
  return ContainerStore(dir);
}

Result<Container> ContainerStore::create(const ContainerConfig& config, const std::optional<std::string>& name) {
  std::string requested;
  if (name) {
    // Docker shows names with a leading '/' and accepts them back that way.
    requested = !name->empty() && (*name)[0] == '/' ? name->substr(1) : *name;
    if (!valid_name(requested))
      return make_error(Errc::invalid_argument,
                        "Invalid container name (" + *name + "), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
  }
  Container container;
  container.id = HYPER_TRY(random_id());
  container.created = now_rfc3339();
  container.config = config;
  container.dir = dir_ / container.id;
  // Built aside and renamed into place, so nobody sees a container without its files.
  HYPER_CHECK(publish(dir_, container, requested));
  return container;
}

Result<Container> ContainerStore::load(const std::string& id) const {
  Container container;
  container.dir = dir_ / id;
  const fs::path config_path = container.dir / kConfigFile;
  const std::string text = HYPER_TRY(read_text_file(config_path));
  HYPER_CHECK(parse_config(config_path, text, container));
  if (container.id != id) return corrupt(config_path, "its id is not its directory's name");
  const ContainerState state = HYPER_TRY(read_state(container.dir));
  container.state = HYPER_TRY(reconcile(container.dir, state));
  // A --rm container whose monitor was killed before it could remove it: done here, once
  // no watcher (hyperd's wait or attach) still has to read how it ended.
  if (container.config.auto_remove && container.state.status == ContainerStatus::exited) {
    auto unwatched = FileLock::try_acquire(container.dir / kWatchLock);
    if (unwatched.ok() && !*unwatched) return container;
    HYPER_CHECK(remove(container));
    return make_error(Errc::not_found, "No such container: " + id);
  }
  return container;
}

Result<Container> ContainerStore::find(const std::string& reference) const {
  const Error missing = make_error(Errc::not_found, "No such container: " + reference);
  auto found = [&](Result<Container> loaded) -> Result<Container> {
    if (!loaded.ok() && loaded.error().code == Errc::not_found) return missing;
    return loaded;
  };
  if (reference.empty()) return missing;
  if (is_id(reference) && ::access((dir_ / reference).c_str(), F_OK) == 0) return found(load(reference));
  const std::string name = reference[0] == '/' ? reference.substr(1) : reference;
  if (valid_name(name)) {
    auto owner = read_link(dir_ / kNamesDir / name);
    if (owner.ok() && is_id(*owner)) return found(load(*owner));
  }
  if (!is_hex(reference)) return missing;
  std::vector<std::string> matches = HYPER_TRY(container_ids(dir_));
  std::erase_if(matches, [&](const std::string& id) { return id.rfind(reference, 0) != 0; });
  if (matches.empty()) return missing;
  if (matches.size() > 1)
    return make_error(Errc::invalid_argument, "Multiple IDs found with provided prefix: " + reference);
  return found(load(matches.front()));
}

Result<std::vector<Container>> ContainerStore::list() const {
  const std::vector<std::string> ids = HYPER_TRY(container_ids(dir_));
  std::vector<Container> containers;
  for (const auto& id : ids) {
    auto container = load(id);
    if (container.ok()) {
      containers.push_back(std::move(container).value());
    } else if (container.error().code != Errc::not_found) {  // not_found: removed meanwhile
      return std::move(container).error();
    }
  }
  // Fixed-width UTC timestamps sort as strings.
  std::sort(containers.begin(), containers.end(), [](const Container& a, const Container& b) {
    return a.created != b.created ? a.created > b.created : a.id < b.id;
  });
  return containers;
}

Status ContainerStore::update_state(const Container& container,
                                    const std::function<void(ContainerState&)>& change) const {
  HYPER_CHECK(modify_state(dir_ / container.id, change));
  return {};
}

Result<std::optional<FileLock>> ContainerStore::claim_vm(const Container& container) const {
  return FileLock::try_acquire(dir_ / container.id / kVmLockFile);
}

Result<FileLock> ContainerStore::watch_exit(const Container& container) const {
  return FileLock::acquire_shared(container.dir / kWatchLock);
}

std::optional<FileLock> ContainerStore::wait_for_watchers(const Container& container) const {
  constexpr int kPollMs = 5;
  for (int waited = 0; waited < kWatchGraceMs; waited += kPollMs) {
    auto lock = FileLock::try_acquire(container.dir / kWatchLock);
    if (!lock.ok()) return std::nullopt;
    if (*lock) return std::move(*lock);
    ::usleep(kPollMs * 1000);
  }
  return std::nullopt;
}

// What a killed monitor left on the host; its own end undoes it otherwise.
void ContainerStore::release_killed_monitor_leftovers(const Container& container, bool removed) const {
  remove_leftover_cgroup(container);
  (void)net::release_container_network(Paths{dir_.parent_path()}, container.id, removed);
}

Status ContainerStore::remove(const Container& container) const {
  // Renamed away first, so readers see the container whole or not at all; under the
  // names lock, so its name is free exactly when the container is gone.
  const fs::path doomed = dir_ / (kRemovingPrefix + container.id);
  {
    const UniqueFd lock = HYPER_TRY(lock_file(dir_ / kNamesDir / kNamesLock));
    if (::rename((dir_ / container.id).c_str(), doomed.c_str()) != 0) {
      if (errno != ENOENT) return Error::from_errno("rename " + (dir_ / container.id).string());
      if (::access(doomed.c_str(), F_OK) != 0) return {};  // someone else removed it
    }
    if (!container.name.empty()) {
      const fs::path link = dir_ / kNamesDir / container.name;
      auto owner = read_link(link);
      if (owner.ok() && *owner == container.id) ::unlink(link.c_str());
    }
  }
  release_killed_monitor_leftovers(container, true);
  crash_point("container-unlisted");
  return remove_tree(doomed);
}

}  // namespace hyper::runtime
