// The pure parts of the VMM's jail and cgroup: the values, the paths, and the cgroup
// files written against a directory tree that looks like a cgroup v2 hierarchy.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "runtime/jail/cgroup.hpp"
#include "runtime/container_store.hpp"
#include "runtime/jail/jail.hpp"
#include "tests/unit/temp_dir.hpp"

using namespace hyper;
using namespace hyper::runtime;
namespace fs = std::filesystem;

namespace {

const std::string kId = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

// Named for this file's tests, so that a leftover says where it came from.
struct TempDir : test::TempDir {
  TempDir() : test::TempDir("hyper-jail-test") {}
};

void write(const fs::path& path, const std::string& text) { std::ofstream(path) << text; }

std::string read(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A group as cgroupfs shows it: the controllers offered, those enabled for children.
void fake_group(const fs::path& dir, const std::string& offered, const std::string& enabled = "") {
  fs::create_directories(dir);
  write(dir / "cgroup.controllers", offered);
  write(dir / "cgroup.subtree_control", enabled);
}

// What cgroupfs does at mkdir: the new group has the interface files of what its parent
// enables. Here the test makes them, before create_container_cgroup() writes to them.
void fake_child(const fs::path& dir) {
  fake_group(dir, "cpu memory");
  write(dir / "memory.max", "max");
  write(dir / "cpu.max", "max 100000");
  write(dir / "cgroup.procs", "");
}

struct EnvGuard {
  explicit EnvGuard(const char* value) {
    if (value) ::setenv("HYPER_CGROUP_ROOT", value, 1);
    else ::unsetenv("HYPER_CGROUP_ROOT");
  }
  ~EnvGuard() { ::unsetenv("HYPER_CGROUP_ROOT"); }
  EnvGuard(const EnvGuard&) = delete;
  EnvGuard& operator=(const EnvGuard&) = delete;
};

}  // namespace

TEST_CASE("cgroup limits: guest RAM plus the VMM's overhead, and cpus whole periods") {
  const CgroupLimits one = cgroup_limits(1, 256);
  CHECK(one.memory_max == (256 + kVmmOverheadMib + 256 / kVmmOverheadDivisor) * 1024 * 1024);
  CHECK(memory_max_text(one) == std::to_string((256 + 64 + 4) * 1024 * 1024));
  CHECK(cpu_max_text(one) == "100000 100000");
  CHECK(cpu_max_text(cgroup_limits(4, 256)) == "400000 100000");
  // A bigger guest has more page tables to pay for.
  CHECK(cgroup_limits(1, 4096).memory_max == (4096 + 64 + 64) * 1024ull * 1024);
}

TEST_CASE("cgroup root: HYPER_CGROUP_ROOT, else the default; relative refused") {
  {
    EnvGuard env(nullptr);
    auto root = cgroup_root();
    REQUIRE(root.ok());
    CHECK(*root == fs::path(kDefaultCgroupRoot));
  }
  {
    EnvGuard env("/sys/fs/cgroup/custom/");
    auto root = cgroup_root();
    REQUIRE(root.ok());
    CHECK(*root == fs::path("/sys/fs/cgroup/custom"));
  }
  {
    EnvGuard env("relative/path");
    auto root = cgroup_root();
    REQUIRE_FALSE(root.ok());
    CHECK(root.error().message.find("absolute") != std::string::npos);
  }
}

TEST_CASE("container cgroup path: <root>/<id>, and only a hex id") {
  auto path = container_cgroup_path("/sys/fs/cgroup/hyper", kId);
  REQUIRE(path.ok());
  CHECK(*path == fs::path("/sys/fs/cgroup/hyper") / kId);
  CHECK_FALSE(container_cgroup_path("/sys/fs/cgroup/hyper", "../../etc").ok());
  CHECK_FALSE(container_cgroup_path("/sys/fs/cgroup/hyper", "").ok());
  CHECK_FALSE(container_cgroup_path("/sys/fs/cgroup/hyper", "ABC").ok());
}

TEST_CASE("cgroup v2 check: a plain directory is refused with the reason") {
  TempDir dir;
  auto checked = check_cgroup2(dir.path / "not-yet" / "hyper");
  REQUIRE_FALSE(checked.ok());
  CHECK(checked.error().message.find("not on a cgroup v2 file system") != std::string::npos);
  // Asked about a path that does not exist, it looks at the nearest existing parent.
  CHECK(checked.error().message.find(dir.path.string()) != std::string::npos);
}

TEST_CASE("create_container_cgroup enables the controllers top-down and writes the limits") {
  TempDir dir;
  const fs::path top = dir.path / "cg", root = top / "hyper";
  fake_group(top, "cpuset cpu io memory pids", "pids");
  fake_group(root, "cpu memory pids");
  fake_child(root / kId);
  const CgroupLimits limits = cgroup_limits(2, 512);
  auto group = create_container_cgroup(root, kId, limits);
  REQUIRE(group.ok());
  CHECK(*group == root / kId);
  CHECK(read(top / "cgroup.subtree_control") == "+cpu +memory");
  CHECK(read(root / "cgroup.subtree_control") == "+cpu +memory");
  CHECK(read(root / kId / "memory.max") == memory_max_text(limits));
  CHECK(read(root / kId / "cpu.max") == "200000 100000");
  REQUIRE(move_to_cgroup(*group, 4242).ok());
  CHECK(read(root / kId / "cgroup.procs") == "4242");
}

TEST_CASE("create_container_cgroup leaves enabled controllers alone") {
  TempDir dir;
  const fs::path top = dir.path / "cg", root = top / "hyper";
  fake_group(top, "cpu memory", "memory cpu");
  fake_group(root, "cpu memory", "cpu");
  fake_child(root / kId);
  REQUIRE(create_container_cgroup(root, kId, cgroup_limits(1, 256)).ok());
  CHECK(read(top / "cgroup.subtree_control") == "memory cpu");  // not written again
  CHECK(read(root / "cgroup.subtree_control") == "+memory");
}

TEST_CASE("create_container_cgroup: a controller not offered is the reason it fails") {
  TempDir dir;
  const fs::path top = dir.path / "cg", root = top / "hyper";
  fake_group(top, "cpu pids");  // memory bound to cgroup v1, say
  fake_group(root, "cpu");
  auto group = create_container_cgroup(root, kId, cgroup_limits(1, 256));
  REQUIRE_FALSE(group.ok());
  CHECK(group.error().message.find("does not offer the memory controller") != std::string::npos);
  CHECK_FALSE(fs::exists(root / kId));
}

TEST_CASE("create_container_cgroup: a root that cannot be created is the reason it fails") {
  TempDir dir;
  write(dir.path / "file", "");
  auto group = create_container_cgroup(dir.path / "file" / "hyper", kId, cgroup_limits(1, 256));
  REQUIRE_FALSE(group.ok());
  CHECK(group.error().message.find("create " + (dir.path / "file" / "hyper").string()) != std::string::npos);
}

TEST_CASE("remove_cgroup: removes an empty group; a missing one is no error") {
  TempDir dir;
  fs::create_directories(dir.path / kId);
  CHECK(remove_cgroup(dir.path / kId).ok());
  CHECK_FALSE(fs::exists(dir.path / kId));
  CHECK(remove_cgroup(dir.path / kId).ok());
}

TEST_CASE("jail: the mount points for the container's directory, outermost first") {
  const auto chain = mount_point_chain("/c/vmm-root", "/var/lib/hyper/containers/abc");
  REQUIRE(chain.size() == 5);
  CHECK(chain.front() == fs::path("/c/vmm-root/var"));
  CHECK(chain.back() == fs::path("/c/vmm-root/var/lib/hyper/containers/abc"));
  CHECK(mount_point_chain("/r", "/").empty());
}

TEST_CASE("jail: namespaces and rlimits") {
  const auto namespaces = jail_namespaces();
  for (const char* ns : {"mnt", "pid", "ipc", "uts", "net"})
    CHECK(std::find(namespaces.begin(), namespaces.end(), ns) != namespaces.end());
  const auto limits = vmm_rlimits(1'048'576);
  REQUIRE(limits.size() == 2);
  CHECK(limits[0].resource == RLIMIT_CORE);
  CHECK(limits[0].value == 0);
  CHECK(limits[1].resource == RLIMIT_NOFILE);
  CHECK(limits[1].value == kVmmMaxFiles);
  CHECK(vmm_rlimits(1024)[1].value == 1024);  // never above the hard limit we have
}

TEST_CASE("jail: close_directory_fds closes directories only") {
  TempDir dir;
  write(dir.path / "file", "x");
  // In a child: the test process keeps its own fds.
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int directory = ::open(dir.path.c_str(), O_RDONLY | O_DIRECTORY);
    const int path_only = ::open(dir.path.c_str(), O_PATH | O_DIRECTORY);
    const int file = ::open((dir.path / "file").c_str(), O_RDONLY);
    if (directory < 0 || path_only < 0 || file < 0 || !close_directory_fds().ok()) _exit(2);
    const bool closed = ::fcntl(directory, F_GETFD) < 0 && ::fcntl(path_only, F_GETFD) < 0;
    const bool kept = ::fcntl(file, F_GETFD) >= 0 && ::fcntl(STDERR_FILENO, F_GETFD) >= 0;
    _exit(closed && kept ? 0 : 1);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("jail: enter_jail refuses a relative directory") {
  auto entered = enter_jail("relative/dir");
  REQUIRE_FALSE(entered.ok());
  CHECK(entered.error().message.find("not absolute") != std::string::npos);
}

TEST_CASE("container state keeps the jail record") {
  TempDir dir;
  auto store = ContainerStore::open(dir.path);
  REQUIRE(store.ok());
  ContainerConfig config;
  config.image = "busybox";
  config.image_id = "sha256:" + std::string(64, 'a');
  auto container = store->create(config, std::nullopt);
  REQUIRE(container.ok());
  JailState jail;
  jail.namespaces = {"mnt", "pid"};
  jail.root = "pivot_root";
  jail.cgroup = "/sys/fs/cgroup/hyper/" + container->id;
  jail.memory_max = "1";
  jail.cpu_max = "100000 100000";
  jail.limits_enforced = false;
  jail.limits_error = "not cgroup v2";
  REQUIRE(store->update_state(*container, [&](ContainerState& state) {
    state.vmm_pid = 77;
    state.jail = jail;
  }).ok());
  auto found = store->find(container->id);
  REQUIRE(found.ok());
  REQUIRE(found->state.jail);
  CHECK(found->state.vmm_pid == 77);
  CHECK(found->state.jail->namespaces == jail.namespaces);
  CHECK(found->state.jail->root == "pivot_root");
  CHECK(found->state.jail->cgroup == jail.cgroup);
  CHECK(found->state.jail->cpu_max == "100000 100000");
  CHECK_FALSE(found->state.jail->limits_enforced);
  CHECK(found->state.jail->limits_error == "not cgroup v2");
}
