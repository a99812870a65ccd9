#include "runtime/jail/cgroup.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <sstream>
#include <thread>
#include <vector>

#include "vmm/file_io.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::runtime {
namespace fs = std::filesystem;
namespace {

constexpr uint64_t kMiB = 1024 * 1024;
constexpr const char* kControllers[] = {"cpu", "memory"};
constexpr auto kRemoveTimeout = std::chrono::seconds(2);
constexpr auto kRemovePoll = std::chrono::milliseconds(10);

// cgroupfs takes each value in a single write(2); O_TRUNC keeps the unit tests' plain
// files holding only the last value.
Status write_text(const fs::path& path, const std::string& text) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
  if (!fd.valid()) return Error::from_errno("open " + path.string());
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    return Error::from_errno("write \"" + text + "\" to " + path.string());
  return {};
}

std::vector<std::string> words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string word; in >> word;) out.push_back(word);
  return out;
}

bool is_cgroup_dir(const fs::path& dir) { return ::access((dir / "cgroup.controllers").c_str(), F_OK) == 0; }

// The root's ancestors that are groups of the same hierarchy, top first, then the root.
std::vector<fs::path> groups_down_to(const fs::path& root) {
  std::vector<fs::path> chain{root};
  for (fs::path dir = root.parent_path(); dir != dir.parent_path() && is_cgroup_dir(dir); dir = dir.parent_path())
    chain.insert(chain.begin(), dir);
  return chain;
}

// Lets the children of `group` use the controllers: they must be offered to it first.
Status enable_controllers(const fs::path& group) {
  const auto offered = words(HYPER_TRY(read_text_file(group / "cgroup.controllers")));
  const auto enabled = words(HYPER_TRY(read_text_file(group / "cgroup.subtree_control")));
  std::string wanted;
  for (const char* controller : kControllers) {
    if (std::find(offered.begin(), offered.end(), controller) == offered.end())
      return make_error(Errc::unsupported, group.string() + " does not offer the " + controller +
                                               " controller (bound to cgroup v1, or not delegated)");
    if (std::find(enabled.begin(), enabled.end(), controller) == enabled.end())
      wanted += std::string(wanted.empty() ? "+" : " +") + controller;
  }
  if (wanted.empty()) return {};
  return write_text(group / "cgroup.subtree_control", wanted);
}

Status make_dir(const fs::path& dir) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return Error::from_errno("create " + dir.string());
  return {};
}

}  // namespace

CgroupLimits cgroup_limits(uint32_t cpus, uint64_t memory_mib) {
  CgroupLimits limits;
  limits.memory_max = (memory_mib + kVmmOverheadMib + memory_mib / kVmmOverheadDivisor) * kMiB;
  limits.cpu_quota_us = uint64_t{cpus} * limits.cpu_period_us;
  return limits;
}

std::string memory_max_text(const CgroupLimits& limits) { return std::to_string(limits.memory_max); }

std::string cpu_max_text(const CgroupLimits& limits) {
  return std::to_string(limits.cpu_quota_us) + " " + std::to_string(limits.cpu_period_us);
}

Result<fs::path> cgroup_root() {
  const char* env = std::getenv("HYPER_CGROUP_ROOT");
  if (!env || !*env) return fs::path(kDefaultCgroupRoot);
  fs::path root = fs::path(env).lexically_normal();
  if (!root.is_absolute())
    return make_error(Errc::invalid_argument,
                      "HYPER_CGROUP_ROOT must be an absolute path, not \"" + std::string(env) + "\"");
  if (!root.has_filename()) root = root.parent_path();  // "/x/" names /x
  return root;
}

Result<fs::path> container_cgroup_path(const fs::path& root, const std::string& id) {
  const bool hex = !id.empty() && std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
  if (!hex) return make_error(Errc::invalid_argument, "not a container id: \"" + id + "\"");
  return root / id;
}

Status check_cgroup2(const fs::path& root) {
  fs::path dir = root;
  while (::access(dir.c_str(), F_OK) != 0 && dir != dir.parent_path()) dir = dir.parent_path();
  struct statfs st {};
  if (::statfs(dir.c_str(), &st) != 0) return Error::from_errno("statfs " + dir.string());
  if (st.f_type != CGROUP2_SUPER_MAGIC)
    return make_error(Errc::unsupported, dir.string() + " is not on a cgroup v2 file system (a cgroup v1 host? "
                                                         "set HYPER_CGROUP_ROOT to a directory under a cgroup2 mount)");
  return {};
}

Result<fs::path> create_container_cgroup(const fs::path& root, const std::string& id, const CgroupLimits& limits) {
  const fs::path group = HYPER_TRY(container_cgroup_path(root, id));
  HYPER_CHECK(make_dir(root));
  for (const auto& dir : groups_down_to(root)) HYPER_CHECK(enable_controllers(dir));
  HYPER_CHECK(make_dir(group));
  HYPER_CHECK(write_text(group / "memory.max", memory_max_text(limits)));
  HYPER_CHECK(write_text(group / "cpu.max", cpu_max_text(limits)));
  return group;
}

Status move_to_cgroup(const fs::path& group, pid_t pid) {
  return write_text(group / "cgroup.procs", std::to_string(pid));
}

Status remove_cgroup(const fs::path& group) {
  const auto deadline = std::chrono::steady_clock::now() + kRemoveTimeout;
  while (::rmdir(group.c_str()) != 0) {
    if (errno == ENOENT) return {};
    if (errno != EBUSY || std::chrono::steady_clock::now() >= deadline)
      return Error::from_errno("remove " + group.string());
    std::this_thread::sleep_for(kRemovePoll);
  }
  return {};
}

}  // namespace hyper::runtime
