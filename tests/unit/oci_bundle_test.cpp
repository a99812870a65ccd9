// hyper-runtime's OCI side without a VM: config.json turned into a ContainerConfig, a
// process into the agent's request, the mount points made in a bundle's root, and the
// state directory under --root.
#include <doctest/doctest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "guest-init/messages.hpp"
#include "runtime/container_store.hpp"
#include "runtime/oci/bundle.hpp"
#include "runtime/oci/mount_points.hpp"
#include "runtime/oci/state_dir.hpp"
#include "tests/unit/temp_dir.hpp"

using namespace hyper;
using namespace hyper::runtime;
using Json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

// Named for this file's tests, so that a leftover says where it came from.
struct TempDir : test::TempDir {
  TempDir() : test::TempDir("hyper-oci-test") {}
};

// A bundle directory with an empty rootfs/ beside where config.json would be.
struct BundleDir : TempDir {
  BundleDir() { fs::create_directory(path / "rootfs"); }
};

void write_file(const fs::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::trunc);
  out << content;
  REQUIRE(out.flush());
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

Json minimal_config() {
  return Json::parse(R"({
    "ociVersion": "1.0.2",
    "root": {"path": "rootfs", "readonly": true},
    "process": {
      "terminal": true,
      "user": {"uid": 1000, "gid": 100, "additionalGids": [10, 20]},
      "args": ["/bin/sh", "-c", "echo hi"],
      "env": ["PATH=/usr/bin:/bin", "TERM=xterm"],
      "cwd": "/work"
    },
    "hostname": "box"
  })");
}

// As config.json arrives: read from text, so that positive numbers are unsigned.
Json as_read(const Json& config) { return Json::parse(config.dump()); }

oci::Bundle parsed(const Json& config, const fs::path& dir) {
  auto bundle = oci::parse_bundle_config(as_read(config), dir);
  REQUIRE_MESSAGE(bundle.ok(), (bundle.ok() ? std::string() : bundle.error().message));
  return std::move(bundle).value();
}

// The error's message; an exception fails the test, since config.json is the caller's input.
std::string parse_error(const Json& config, const fs::path& dir) {
  std::optional<Result<oci::Bundle>> bundle;
  try {
    bundle.emplace(oci::parse_bundle_config(as_read(config), dir));
  } catch (const std::exception& e) {
    FAIL_CHECK("parse_bundle_config threw instead of returning an error: " << std::string(e.what()));
    return "";
  }
  REQUIRE_FALSE(bundle->ok());
  return bundle->error().message;
}

bool mentions(const std::string& message, const std::string& part) { return message.find(part) != std::string::npos; }

Json with_mounts(const Json& mounts) {
  Json config = minimal_config();
  config["mounts"] = mounts;
  return config;
}

Json with_resources(const Json& resources) {
  Json config = minimal_config();
  config["linux"] = {{"resources", resources}};
  return config;
}

oci::Process process_from(const std::string& json) {
  auto process = oci::parse_process(Json::parse(json));
  REQUIRE_MESSAGE(process.ok(), (process.ok() ? std::string() : process.error().message));
  return std::move(process).value();
}

volume::Mount bind(const fs::path& source, const std::string& target) {
  volume::Mount mount;
  mount.type = volume::MountType::bind;
  mount.source = source.string();
  mount.target = target;
  return mount;
}

bool is_real_file(const fs::path& path) { return fs::is_regular_file(fs::symlink_status(path)); }
bool is_real_directory(const fs::path& path) { return fs::is_directory(fs::symlink_status(path)); }

oci::Record sample_record(const std::string& id) {
  return oci::Record{id, "/srv/bundles/" + id, std::string(64, 'c'), "2026-01-02T03:04:05.000000006Z", 4242, 987654,
                     Json{{"org.example.key", "value"}}};
}

}  // namespace

TEST_CASE("oci bundle: a minimal config becomes the container's config") {
  BundleDir dir;
  const oci::Bundle bundle = parsed(minimal_config(), dir.path);
  const ContainerConfig& config = bundle.config;
  CHECK(config.entrypoint == std::vector<std::string>{"/bin/sh", "-c", "echo hi"});
  CHECK(config.cmd.empty());
  CHECK(config.env == std::vector<std::string>{"PATH=/usr/bin:/bin", "TERM=xterm"});
  CHECK(config.working_dir == "/work");
  CHECK(config.user == "1000:100");
  REQUIRE(config.groups);
  CHECK(*config.groups == std::vector<uint32_t>{10, 20});
  CHECK(config.tty);
  CHECK(config.open_stdin);
  CHECK(config.hostname == "box");
  REQUIRE(config.host_rootfs);
  CHECK(config.host_rootfs->path == (dir.path / "rootfs").string());
  CHECK(config.host_rootfs->read_only);
  CHECK(config.image.empty());
  CHECK(config.net.network == "none");
  CHECK(config.mounts.empty());
  CHECK(config.rlimits.empty());
  CHECK(config.memory_mib == ContainerConfig{}.memory_mib);
  CHECK(config.cpus == ContainerConfig{}.cpus);
  CHECK(bundle.annotations == Json::object());
}

TEST_CASE("oci bundle: root.path may be absolute or relative, and must be a directory") {
  BundleDir dir;
  Json config = minimal_config();
  config["root"] = {{"path", "./rootfs/../rootfs"}};
  auto bundle = parsed(config, dir.path);
  CHECK(bundle.config.host_rootfs->path == (dir.path / "rootfs").string());
  CHECK_FALSE(bundle.config.host_rootfs->read_only);

  fs::create_directory(dir.path / "elsewhere");
  config["root"] = {{"path", (dir.path / "elsewhere").string()}};
  CHECK(parsed(config, dir.path).config.host_rootfs->path == (dir.path / "elsewhere").string());

  config["root"] = {{"path", "missing"}};
  CHECK(mentions(parse_error(config, dir.path), "not a directory"));
  write_file(dir.path / "file", "x");
  config["root"] = {{"path", "file"}};
  CHECK(mentions(parse_error(config, dir.path), "not a directory"));
  config.erase("root");
  CHECK(mentions(parse_error(config, dir.path), "no root"));
}

TEST_CASE("oci bundle: without additionalGids the process has exactly no supplementary groups") {
  BundleDir dir;
  Json config = minimal_config();
  config["process"]["user"] = {{"uid", 0}, {"gid", 0}};
  const auto bundle = parsed(config, dir.path);
  CHECK(bundle.config.user == "0:0");
  // Not nullopt: that would mean the image's /etc/group memberships, which runc does not add.
  REQUIRE(bundle.config.groups);
  CHECK(bundle.config.groups->empty());
}

TEST_CASE("oci bundle: annotations are kept for state") {
  BundleDir dir;
  Json config = minimal_config();
  config["annotations"] = {{"io.podman.x", "1"}};
  CHECK(parsed(config, dir.path).annotations == Json{{"io.podman.x", "1"}});
}

TEST_CASE("oci bundle: the kernel file systems the guest init provides are left out") {
  BundleDir dir;
  const Json mounts = Json::parse(R"([
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["newinstance", "ptmxmode=0666"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue"},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro"]},
    {"destination": "/sys/fs/cgroup/", "type": "cgroup2", "source": "cgroup2"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755", "size=65536k"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["mode=1777", "size=65536k"]}
  ])");
  CHECK(parsed(with_mounts(mounts), dir.path).config.mounts.empty());
}

TEST_CASE("oci bundle: bind mounts of directories and files, relative sources under the bundle") {
  BundleDir dir;
  fs::create_directory(dir.path / "data");
  write_file(dir.path / "motd", "hello\n");
  const Json mounts = {
      {{"destination", "/data"}, {"type", "bind"}, {"source", (dir.path / "data").string()}, {"options", {"rbind", "ro"}}},
      {{"destination", "/etc/motd"}, {"type", "none"}, {"source", "./motd"}, {"options", {"bind", "rw"}}},
      {{"destination", "/srv/"}, {"source", "data"}, {"options", {"rbind"}}},
  };
  const auto config = parsed(with_mounts(mounts), dir.path).config;
  REQUIRE(config.mounts.size() == 3);
  CHECK(config.mounts[0].type == volume::MountType::bind);
  CHECK(config.mounts[0].source == (dir.path / "data").string());
  CHECK(config.mounts[0].target == "/data");
  CHECK(config.mounts[0].read_only);
  CHECK(config.mounts[1].type == volume::MountType::bind);
  CHECK(config.mounts[1].source == (dir.path / "motd").string());
  CHECK(config.mounts[1].target == "/etc/motd");
  CHECK_FALSE(config.mounts[1].read_only);
  CHECK(config.mounts[2].type == volume::MountType::bind);
  CHECK(config.mounts[2].source == (dir.path / "data").string());
  CHECK(config.mounts[2].target == "/srv");
}

TEST_CASE("oci bundle: a host's /dev/shm bound into the container is left to the VM's own") {
  BundleDir dir;
  const Json mounts = {{{"destination", "/dev/shm"}, {"type", "bind"}, {"source", dir.path.string()}, {"options", {"rbind"}}}};
  CHECK(parsed(with_mounts(mounts), dir.path).config.mounts.empty());
}

TEST_CASE("oci bundle: tmpfs options become its size and mode") {
  BundleDir dir;
  const Json mounts = {
      {{"destination", "/scratch"}, {"type", "tmpfs"}, {"source", "tmpfs"}, {"options", {"nosuid", "size=1m", "mode=700"}}},
      {{"destination", "/run"}, {"type", "tmpfs"}, {"source", "tmpfs"}, {"options", {"ro"}}},
  };
  const auto config = parsed(with_mounts(mounts), dir.path).config;
  REQUIRE(config.mounts.size() == 2);
  CHECK(config.mounts[0].type == volume::MountType::tmpfs);
  CHECK(config.mounts[0].target == "/scratch");
  CHECK(config.mounts[0].tmpfs_size == 1048576);
  CHECK(config.mounts[0].tmpfs_mode == 0700);
  CHECK_FALSE(config.mounts[0].read_only);
  CHECK(config.mounts[1].tmpfs_size == 0);
  CHECK(config.mounts[1].tmpfs_mode == 01777);
  CHECK(config.mounts[1].read_only);
}

TEST_CASE("oci bundle: mounts a VM cannot honour are errors that name them") {
  BundleDir dir;
  const auto error_for = [&](const Json& mount) { return parse_error(with_mounts(Json::array({mount})), dir.path); };

  std::string message = error_for({{"destination", "/data"}, {"type", "bind"}, {"source", (dir.path / "missing").string()}});
  CHECK(mentions(message, "/data"));
  CHECK(mentions(message, "does not exist"));
  CHECK(mentions(error_for({{"destination", "/data"}, {"type", "bind"}, {"source", "missing"}}), (dir.path / "missing").string()));
  CHECK(mentions(error_for({{"destination", "/data"}, {"type", "bind"}}), "no source"));
  CHECK(mentions(error_for({{"destination", "/null"}, {"type", "bind"}, {"source", "/dev/null"}}), "only directories and regular files"));

  message = error_for({{"destination", "/mnt/nfs"}, {"type", "nfs"}, {"source", "server:/export"}});
  CHECK(mentions(message, "nfs"));
  CHECK(mentions(message, "/mnt/nfs"));
  CHECK(mentions(error_for({{"destination", "/sys/kernel/debug"}, {"type", "debugfs"}}), "debugfs"));

  CHECK(mentions(error_for({{"destination", "/t"}, {"type", "tmpfs"}, {"options", {"mode=rwx"}}}), "bad mode=rwx"));
  CHECK(mentions(error_for({{"destination", "/t"}, {"type", "tmpfs"}, {"options", {"mode=17777"}}}), "bad mode=17777"));
  CHECK(mentions(error_for({{"destination", "/t"}, {"type", "tmpfs"}, {"options", {"mode=789"}}}), "bad mode=789"));
  CHECK(mentions(error_for({{"destination", "/t"}, {"type", "tmpfs"}, {"options", {"mode="}}}), "bad mode="));
  CHECK_FALSE(parse_error(with_mounts(Json::array({{{"destination", "/t"}, {"type", "tmpfs"}, {"options", {"size=lots"}}}})),
                          dir.path)
                  .empty());

  CHECK(mentions(error_for({{"destination", "data"}, {"type", "tmpfs"}}), "absolute"));
  CHECK(mentions(error_for({{"destination", "/a/../b"}, {"type", "tmpfs"}}), ".."));
  CHECK_FALSE(parse_error(with_mounts({{{"destination", "/t"}, {"type", "tmpfs"}}, {{"destination", "/t/"}, {"type", "tmpfs"}}}),
                          dir.path)
                  .empty());
}

TEST_CASE("oci bundle: hooks are refused, an empty hooks list is not") {
  BundleDir dir;
  Json config = minimal_config();
  config["hooks"] = {{"prestart", Json::array()}, {"poststop", Json::array()}};
  CHECK(parsed(config, dir.path).config.host_rootfs);
  config["hooks"]["createRuntime"] = {{{"path", "/usr/bin/true"}}};
  const std::string message = parse_error(config, dir.path);
  CHECK(mentions(message, "hooks.createRuntime"));
  CHECK(mentions(message, "not supported"));
}

TEST_CASE("oci bundle: a user namespace or id mappings are refused, other namespaces are not") {
  BundleDir dir;
  Json config = minimal_config();
  config["linux"] = {{"namespaces", {{{"type", "pid"}}, {{"type", "network"}, {"path", "/proc/1/ns/net"}}, {{"type", "mount"}}}}};
  CHECK(parsed(config, dir.path).config.net.network == "none");

  config["linux"]["namespaces"].push_back({{"type", "user"}});
  CHECK(mentions(parse_error(config, dir.path), "user namespace"));

  config = minimal_config();
  config["linux"] = {{"uidMappings", {{{"containerID", 0}, {"hostID", 100000}, {"size", 65536}}}}};
  CHECK(mentions(parse_error(config, dir.path), "linux.uidMappings"));
  config["linux"] = {{"gidMappings", {{{"containerID", 0}, {"hostID", 100000}, {"size", 65536}}}}};
  CHECK(mentions(parse_error(config, dir.path), "linux.gidMappings"));
  config["linux"] = {{"uidMappings", Json::array()}};
  CHECK(parsed(config, dir.path).config.host_rootfs);
}

TEST_CASE("oci bundle: the memory limit sizes the VM in MiB, rounded up, at least 64 MiB") {
  BundleDir dir;
  const auto memory_for = [&](const Json& limit) {
    return parsed(with_resources({{"memory", {{"limit", limit}}}}), dir.path).config.memory_mib;
  };
  CHECK(memory_for(536870912) == 512);
  CHECK(memory_for(100000001) == 96);
  CHECK(memory_for(64 * 1024 * 1024) == 64);
  CHECK(memory_for(-1) == ContainerConfig{}.memory_mib);
  CHECK(memory_for(0) == ContainerConfig{}.memory_mib);  // runc reads 0 as no limit
  CHECK(parsed(with_resources({{"memory", {{"reservation", 1 << 30}}}}), dir.path).config.memory_mib ==
        ContainerConfig{}.memory_mib);

  const std::string message = parse_error(with_resources({{"memory", {{"limit", 32 * 1024 * 1024}}}}), dir.path);
  CHECK(mentions(message, "at least 64 MiB"));
  CHECK(mentions(parse_error(with_resources({{"memory", {{"limit", "1g"}}}}), dir.path), "memory.limit"));
}

TEST_CASE("oci bundle: the CPU quota, else the cpuset, gives the VM's vCPUs") {
  BundleDir dir;
  const auto cpus_for = [&](const Json& cpu) { return parsed(with_resources({{"cpu", cpu}}), dir.path).config.cpus; };
  CHECK(cpus_for({{"quota", 150000}, {"period", 100000}}) == 2);
  CHECK(cpus_for({{"quota", 200000}, {"period", 100000}}) == 2);
  CHECK(cpus_for({{"quota", 50000}}) == 1);
  CHECK(cpus_for({{"quota", 400000}}) == 4);
  CHECK(cpus_for({{"quota", 100000}, {"period", 25000}, {"cpus", "0"}}) == 4);
  CHECK(cpus_for({{"quota", -1}, {"cpus", "0-3,8"}}) == 5);
  for (const std::string bad : {"3-", "3x", "-1", "1-0", "0-99", "1,,2"}) {
    CAPTURE(bad);
    CHECK(mentions(parse_error(with_resources({{"cpu", {{"cpus", bad}}}}), dir.path), "CPU list"));
  }
  CHECK(cpus_for({{"cpus", "2"}}) == 1);
  CHECK(cpus_for({{"shares", 1024}}) == ContainerConfig{}.cpus);

  CHECK(mentions(parse_error(with_resources({{"cpu", {{"quota", 6500000}, {"period", 100000}}}}), dir.path), "at most 64"));
  CHECK(mentions(parse_error(with_resources({{"cpu", {{"quota", 1000}, {"period", 0}}}}), dir.path), "period"));
  CHECK(mentions(parse_error(with_resources({{"cpu", {{"quota", "150000"}}}}), dir.path), "cpu.quota"));
  CHECK(mentions(parse_error(with_resources({{"cpu", {{"quota", 1.5}}}}), dir.path), "cpu.quota"));
  CHECK(mentions(parse_error(with_resources({{"cpu", {{"cpus", "3-1"}}}}), dir.path), "3-1"));
  CHECK(mentions(parse_error(with_resources({{"cpu", {{"cpus", "0-1x"}}}}), dir.path), "0-1x"));
  CHECK(mentions(parse_error(with_resources({{"cpu", {{"cpus", "0-64"}}}}), dir.path), "0-64"));
}

TEST_CASE("oci bundle: rlimits by the agent's names, soft above hard refused") {
  BundleDir dir;
  Json config = minimal_config();
  config["process"]["rlimits"] = {{{"type", "RLIMIT_NOFILE"}, {"soft", 1024}, {"hard", 4096}},
                                  {{"type", "RLIMIT_CORE"}, {"soft", 0}, {"hard", 0}}};
  const auto limits = parsed(config, dir.path).config.rlimits;
  REQUIRE(limits.size() == 2);
  CHECK(limits[0].type == "nofile");
  CHECK(limits[0].soft == 1024);
  CHECK(limits[0].hard == 4096);
  CHECK(limits[1].type == "core");

  config["process"]["rlimits"] = {{{"type", "RLIMIT_NOFILE"}, {"soft", 4096}, {"hard", 1024}}};
  CHECK(mentions(parse_error(config, dir.path), "exceeds"));
  config["process"]["rlimits"] = {{{"type", "NOFILE"}, {"soft", 1}, {"hard", 1}}};
  CHECK(mentions(parse_error(config, dir.path), "NOFILE"));
  config["process"]["rlimits"] = {{{"type", "RLIMIT_NOFILE"}, {"soft", -1}, {"hard", 1}}};
  CHECK(mentions(parse_error(config, dir.path), "soft"));
}

TEST_CASE("oci bundle: wrong JSON types are errors that name the field") {
  BundleDir dir;
  struct Case {
    const char* pointer;
    Json value;
    const char* message;
  };
  const Case cases[] = {
      {"/process", 5, "process"},
      {"/mounts", Json::object(), "mounts"},
      {"/mounts", {5}, "mounts"},
      {"/mounts", {{{"destination", 5}, {"type", "tmpfs"}}}, "destination"},
      {"/mounts", {{{"destination", "/t"}, {"type", "tmpfs"}, {"options", "size=1m"}}}, "options"},
      {"/process/args", "x", "args"},
      {"/process/args", {1}, "args"},
      {"/process/env", {{"A", "1"}}, "env"},
      {"/process/cwd", 7, "cwd"},
      {"/process/terminal", "yes", "terminal"},
      {"/process/user", "root", "user"},
      {"/process/user/uid", -1, "uid"},
      {"/process/user/gid", 4294967296, "gid"},
      {"/process/user/uid", "0", "uid"},
      {"/process/user/additionalGids", {"wheel"}, "additionalGids"},
      {"/process/user/additionalGids", 10, "additionalGids"},
      {"/process/rlimits", Json::object(), "rlimits"},
      {"/process/rlimits", {5}, "rlimits"},
      {"/process/consoleSize", {{"height", "24"}}, "height"},
      {"/root", "rootfs", "root"},
      {"/root/path", 1, "path"},
      {"/hostname", 3, "hostname"},
      {"/ociVersion", 1, "ociVersion"},
      {"/linux", Json::array(), "linux"},
      {"/linux", {{"namespaces", "pid"}}, "namespaces"},
      {"/linux", {{"resources", 5}}, "resources"},
      {"/linux", {{"resources", {{"memory", 5}}}}, "memory"},
      {"/linux", {{"resources", {{"cpu", {{"cpus", 3}}}}}}, "cpus"},
      {"/hooks", Json::array(), "hooks"},
      {"/annotations", Json::array(), "annotations"},
  };
  for (const auto& item : cases) {
    Json config = minimal_config();
    config[Json::json_pointer(item.pointer)] = item.value;
    const std::string field = std::string(item.pointer) + " = " + item.value.dump();
    CAPTURE(field);
    CHECK(mentions(parse_error(config, dir.path), item.message));
  }
  CHECK(mentions(parse_error(Json::array(), dir.path), "object"));
}

TEST_CASE("oci bundle: wrong JSON types in user.username, root.readonly and a namespace's type are errors too") {
  BundleDir dir;
  Json config = minimal_config();
  config["process"]["user"]["username"] = 5;
  CHECK(mentions(parse_error(config, dir.path), "username"));
  config = minimal_config();
  config["root"]["readonly"] = "yes";
  CHECK(mentions(parse_error(config, dir.path), "readonly"));
  config = minimal_config();
  config["linux"] = {{"namespaces", {{{"type", 5}}}}};
  CHECK(mentions(parse_error(config, dir.path), "type"));
}

TEST_CASE("oci bundle: a config without a process, args or an absolute cwd is refused") {
  BundleDir dir;
  Json config = minimal_config();
  config.erase("process");
  CHECK(mentions(parse_error(config, dir.path), "no process"));
  config = minimal_config();
  config["process"]["args"] = Json::array();
  CHECK(mentions(parse_error(config, dir.path), "process.args"));
  config = minimal_config();
  config["process"].erase("args");
  CHECK(mentions(parse_error(config, dir.path), "process.args"));
  config = minimal_config();
  config["process"]["cwd"] = "work";
  CHECK(mentions(parse_error(config, dir.path), "absolute"));
  config = minimal_config();
  config["process"].erase("cwd");
  CHECK(mentions(parse_error(config, dir.path), "absolute"));
  config = minimal_config();
  config["process"]["user"]["username"] = "ContainerAdministrator";
  CHECK(mentions(parse_error(config, dir.path), "Windows"));
  config = minimal_config();
  config["process"]["commandLine"] = "cmd.exe";
  CHECK(mentions(parse_error(config, dir.path), "Windows"));
}

TEST_CASE("oci bundle: only 1.x runtime specs are accepted") {
  BundleDir dir;
  Json config = minimal_config();
  config["ociVersion"] = "1.1.0";
  CHECK(parsed(config, dir.path).config.host_rootfs);
  config["ociVersion"] = "2.0";
  CHECK(mentions(parse_error(config, dir.path), "2.0"));
  config["ociVersion"] = "";
  CHECK_FALSE(parse_error(config, dir.path).empty());
  config.erase("ociVersion");
  CHECK_FALSE(parse_error(config, dir.path).empty());
  CHECK(std::string(oci::kSpecVersion) == "1.0.2");
}

TEST_CASE("oci bundle: load_bundle reads config.json and reports a missing or broken one") {
  BundleDir dir;
  auto missing = oci::load_bundle(dir.path);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == Errc::not_found);
  CHECK(mentions(missing.error().message, "config.json"));

  write_file(dir.path / "config.json", "{\"ociVersion\": ");
  auto broken = oci::load_bundle(dir.path);
  REQUIRE_FALSE(broken.ok());
  CHECK(mentions(broken.error().message, "not valid JSON"));

  write_file(dir.path / "config.json", minimal_config().dump());
  auto loaded = oci::load_bundle(dir.path);
  REQUIRE_MESSAGE(loaded.ok(), (loaded.ok() ? std::string() : loaded.error().message));
  CHECK(loaded->config.host_rootfs->path == (dir.path / "rootfs").string());
}

TEST_CASE("oci bundle: container ids follow runc's rule") {
  for (const std::string& id : std::vector<std::string>{"abc-1.2_x+y", "a", "A9", std::string(1024, 'x')}) {
    CAPTURE(id);
    CHECK(oci::check_container_id(id).ok());
  }
  for (const std::string& id :
       std::vector<std::string>{"", ".", "..", "a/b", "a b", "../x", "@vm", "a\nb", "é", std::string(1025, 'x')}) {
    CAPTURE(id);
    const Status status = oci::check_container_id(id);
    REQUIRE_FALSE(status.ok());
    CHECK(mentions(status.error().message, "invalid container id"));
  }
}

TEST_CASE("oci bundle: a process becomes the agent's exec request") {
  const oci::Process process = process_from(R"({
    "terminal": true, "consoleSize": {"height": 24, "width": 80},
    "user": {"uid": 33, "gid": 44, "additionalGids": [5, 6, 7]},
    "args": ["ls", "-l"], "env": ["A=1"], "cwd": "/srv",
    "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}]})");
  CHECK(process.user() == "33:44");
  CHECK(process.rows == 24);
  CHECK(process.cols == 80);

  const Json request = oci::agent_process(process);
  CHECK(request["args"] == Json{"ls", "-l"});
  CHECK(request["env"] == Json{"A=1"});
  CHECK(request["cwd"] == "/srv");
  CHECK(request["user"] == "33:44");
  CHECK(request["tty"] == true);
  CHECK(request["groups"] == Json{5, 6, 7});
  CHECK(request["rlimits"] == Json{{{"type", "nofile"}, {"soft", 100}, {"hard", 200}}});
  CHECK(request["rows"] == 24);
  CHECK(request["cols"] == 80);
}

TEST_CASE("oci bundle: the agent accepts the exec request made from a process") {
  const oci::Process process = process_from(R"({
    "user": {"uid": 33, "gid": 44, "additionalGids": [5, 4294967295]}, "args": ["true"], "cwd": "/",
    "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}, {"type": "RLIMIT_NPROC", "soft": 1, "hard": 2}]})");
  auto spec = guest::parse_process_spec(oci::agent_process(process));
  REQUIRE_MESSAGE(spec.ok(), (spec.ok() ? std::string() : spec.error().message));
  CHECK(spec->args == std::vector<std::string>{"true"});
  CHECK(spec->user == "33:44");
  CHECK_FALSE(spec->tty);
  REQUIRE(spec->groups);
  CHECK(*spec->groups == std::vector<uint32_t>{5, 4294967295u});
  REQUIRE(spec->rlimits.size() == 2);
  CHECK(spec->rlimits[0].resource == RLIMIT_NOFILE);
  CHECK(spec->rlimits[0].soft == 100);
  CHECK(spec->rlimits[1].resource == RLIMIT_NPROC);

  const oci::Process no_groups = process_from(R"({"args": ["true"], "cwd": "/"})");
  const Json request = oci::agent_process(no_groups);
  CHECK(request["groups"] == Json::array());
  CHECK_FALSE(request.contains("rows"));
  spec = guest::parse_process_spec(request);
  REQUIRE(spec.ok());
  REQUIRE(spec->groups);
  CHECK(spec->groups->empty());
}

TEST_CASE("oci bundle: every rlimit a bundle may name is one the agent can set") {
  for (const char* name : {"RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE", "RLIMIT_LOCKS",
                           "RLIMIT_MEMLOCK", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_NOFILE", "RLIMIT_NPROC",
                           "RLIMIT_RSS", "RLIMIT_RTPRIO", "RLIMIT_RTTIME", "RLIMIT_SIGPENDING", "RLIMIT_STACK"}) {
    const std::string type = name;
    CAPTURE(type);
    const Json json = {{"args", {"true"}}, {"cwd", "/"}, {"rlimits", {{{"type", name}, {"soft", 1}, {"hard", 1}}}}};
    const auto process = oci::parse_process(as_read(json));
    // Refused early (naming the field) or set in the guest; not accepted here and refused at start.
    if (!process.ok()) continue;
    const auto spec = guest::parse_process_spec(oci::agent_process(*process));
    CHECK_MESSAGE(spec.ok(), (spec.ok() ? std::string() : spec.error().message));
  }
}

TEST_CASE("oci bundle: as many additionalGids as a bundle may give, the agent accepts") {
  Json json = {{"args", {"true"}}, {"cwd", "/"}, {"user", {{"uid", 0}, {"gid", 0}, {"additionalGids", Json::array()}}}};
  for (uint32_t gid = 0; gid < 300; ++gid) json["user"]["additionalGids"].push_back(gid);
  const auto process = oci::parse_process(as_read(json));
  // Refused early (naming the field) or set in the guest; not accepted here and refused at start.
  if (process.ok()) {
    const auto spec = guest::parse_process_spec(oci::agent_process(*process));
    CHECK_MESSAGE(spec.ok(), (spec.ok() ? std::string() : spec.error().message));
  }
}

TEST_CASE("oci mount points: the init's directories and each mount's target are made in the root") {
  TempDir dir, sources;
  const fs::path root = dir.path / "rootfs";
  fs::create_directory(root);
  fs::create_directory(sources.path / "data");
  write_file(sources.path / "motd", "from the host\n");

  ContainerConfig config;
  config.host_rootfs = HostRootfs{root.string(), true};
  config.mounts.push_back(bind(sources.path / "data", "/data/sub"));
  config.mounts.push_back(bind(sources.path / "motd", "/etc/motd"));
  volume::Mount scratch;
  scratch.type = volume::MountType::tmpfs;
  scratch.target = "/scratch";
  config.mounts.push_back(scratch);
  config.mounts.push_back(bind(sources.path / "data", "/dev/x"));

  const Status made = oci::make_mount_points(config);
  REQUIRE_MESSAGE(made.ok(), (made.ok() ? std::string() : made.error().message));
  for (const std::string& name : std::vector<std::string>{"proc", "sys", "dev", "tmp", "data", "data/sub", "etc", "scratch"}) {
    CAPTURE(name);
    CHECK(is_real_directory(root / name));
  }
  CHECK(is_real_file(root / "etc/motd"));
  CHECK(fs::file_size(root / "etc/motd") == 0);
  CHECK_FALSE(fs::exists(fs::symlink_status(root / "dev/x")));
  CHECK(read_file(sources.path / "motd") == "from the host\n");

  // A second create of the same bundle finds them made, and the root's own file is its own.
  write_file(root / "etc/motd", "the image's motd\n");
  const Status again = oci::make_mount_points(config);
  REQUIRE_MESSAGE(again.ok(), (again.ok() ? std::string() : again.error().message));
  CHECK(read_file(root / "etc/motd") == "the image's motd\n");
  CHECK(is_real_directory(root / "data/sub"));
}

TEST_CASE("oci mount points: symlinks in the root resolve inside it, as in a chroot") {
  TempDir dir, outside;
  const fs::path root = dir.path / "rootfs";
  fs::create_directory(root);
  // What the absolute link names, seen from inside the root.
  const fs::path inside = root / outside.path.relative_path();
  fs::create_directories(inside);
  fs::create_directory_symlink(outside.path, root / "escape");
  fs::create_directory_symlink("../../../../../..", root / "up");

  ContainerConfig config;
  config.host_rootfs = HostRootfs{root.string(), false};
  volume::Mount escape;
  escape.type = volume::MountType::tmpfs;
  escape.target = "/escape/x";
  config.mounts.push_back(escape);
  volume::Mount up = escape;
  up.target = "/up/y";
  config.mounts.push_back(up);

  const Status made = oci::make_mount_points(config);
  REQUIRE_MESSAGE(made.ok(), (made.ok() ? std::string() : made.error().message));
  CHECK(is_real_directory(inside / "x"));
  CHECK_FALSE(fs::exists(fs::symlink_status(outside.path / "x")));
  CHECK(is_real_directory(root / "y"));
  CHECK_FALSE(fs::exists(fs::symlink_status(dir.path / "y")));
  CHECK(fs::is_symlink(root / "escape"));
}

TEST_CASE("oci mount points: a symlink to a directory the root lacks never leads outside it") {
  TempDir dir, outside;
  const fs::path root = dir.path / "rootfs";
  fs::create_directory(root);
  fs::create_directory_symlink(outside.path, root / "escape");

  ContainerConfig config;
  config.host_rootfs = HostRootfs{root.string(), false};
  volume::Mount mount;
  mount.type = volume::MountType::tmpfs;
  mount.target = "/escape/x";
  config.mounts.push_back(mount);
  write_file(outside.path / "sentinel", "");
  config.mounts.push_back(bind(outside.path / "sentinel", "/escape/file"));

  const Status made = oci::make_mount_points(config);
  CHECK_FALSE(fs::exists(fs::symlink_status(outside.path / "x")));
  CHECK_FALSE(fs::exists(fs::symlink_status(outside.path / "file")));
  if (made.ok()) CHECK(is_real_directory(root / outside.path.relative_path() / "x"));
}

TEST_CASE("oci mount points: a file target that is a dangling symlink gets its target made inside the root") {
  TempDir dir, sources, outside;
  const fs::path root = dir.path / "rootfs";
  fs::create_directories(root / "etc");
  // An image's /etc/resolv.conf, pointing at a run directory it does not ship.
  fs::create_symlink("../run/systemd/resolve/stub-resolv.conf", root / "etc/resolv.conf");
  // An absolute dangling link names the root's path, never the host's.
  fs::create_symlink((outside.path / "hosts").string(), root / "etc/hosts");
  write_file(sources.path / "resolv.conf", "nameserver 10.0.2.3\n");

  ContainerConfig config;
  config.host_rootfs = HostRootfs{root.string(), true};
  config.mounts.push_back(bind(sources.path / "resolv.conf", "/etc/resolv.conf"));
  config.mounts.push_back(bind(sources.path / "resolv.conf", "/etc/hosts"));
  const Status made = oci::make_mount_points(config);
  REQUIRE_MESSAGE(made.ok(), (made.ok() ? std::string() : made.error().message));
  CHECK(fs::is_symlink(root / "etc/resolv.conf"));
  CHECK(is_real_file(root / "run/systemd/resolve/stub-resolv.conf"));
  CHECK(is_real_file(root / outside.path.relative_path() / "hosts"));
  CHECK_FALSE(fs::exists(fs::symlink_status(outside.path / "hosts")));
}

TEST_CASE("oci mount points: a config without a host root makes nothing; a missing root is an error") {
  TempDir dir;
  ContainerConfig config;
  config.mounts.push_back(bind(dir.path, "/data"));
  CHECK(oci::make_mount_points(config).ok());
  CHECK(fs::is_empty(dir.path));

  config.host_rootfs = HostRootfs{(dir.path / "missing").string(), false};
  const Status missing = oci::make_mount_points(config);
  REQUIRE_FALSE(missing.ok());
  CHECK(mentions(missing.error().message, (dir.path / "missing").string()));
  CHECK(fs::is_empty(dir.path));
}

TEST_CASE("oci state: open makes a private root; dir and the VM store are under it") {
  TempDir dir;
  const fs::path root = dir.path / "a" / "b";
  auto state = oci::StateDir::open(root);
  REQUIRE(state.ok());
  struct stat st{};
  REQUIRE(::stat(root.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0700);
  CHECK(state->dir("web") == root / "web");
  CHECK(state->vm_paths().root == root / oci::kVmStore);
  // The VM store sits among the containers' directories: no container id may name it.
  CHECK_FALSE(oci::check_container_id(oci::kVmStore).ok());
}

TEST_CASE("oci state: a created record loads back whole") {
  TempDir dir;
  auto state = oci::StateDir::open(dir.path);
  REQUIRE(state.ok());
  const oci::Record record = sample_record("web");
  REQUIRE(state->create(record).ok());
  CHECK(is_real_directory(dir.path / "web"));

  auto loaded = state->load("web");
  REQUIRE_MESSAGE(loaded.ok(), (loaded.ok() ? std::string() : loaded.error().message));
  CHECK(loaded->id == record.id);
  CHECK(loaded->bundle == record.bundle);
  CHECK(loaded->container_id == record.container_id);
  CHECK(loaded->created == record.created);
  CHECK(loaded->pid == record.pid);
  CHECK(loaded->pid_start_ticks == record.pid_start_ticks);
  CHECK(loaded->annotations == record.annotations);
}

TEST_CASE("oci state: an id is claimed once") {
  TempDir dir;
  auto state = oci::StateDir::open(dir.path);
  REQUIRE(state.ok());
  REQUIRE(state->create(sample_record("web")).ok());
  oci::Record other = sample_record("web");
  other.pid = 1;
  const Status again = state->create(other);
  REQUIRE_FALSE(again.ok());
  CHECK(mentions(again.error().message, "web"));
  CHECK(mentions(again.error().message, "exists already"));
  CHECK(state->load("web")->pid == 4242);
}

TEST_CASE("oci state: save replaces the record and leaves no temporary file") {
  TempDir dir;
  auto state = oci::StateDir::open(dir.path);
  REQUIRE(state.ok());
  oci::Record record = sample_record("web");
  REQUIRE(state->create(record).ok());
  record.pid = 99;
  record.container_id = std::string(64, 'd');
  REQUIRE(state->save(record).ok());
  auto loaded = state->load("web");
  REQUIRE(loaded.ok());
  CHECK(loaded->pid == 99);
  CHECK(loaded->container_id == std::string(64, 'd'));
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir.path / "web")) names.push_back(entry.path().filename().string());
  CHECK(names == std::vector<std::string>{"oci.json"});
}

TEST_CASE("oci state: missing, invalid, corrupt and removed containers") {
  TempDir dir;
  auto state = oci::StateDir::open(dir.path);
  REQUIRE(state.ok());
  auto missing = state->load("nope");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == Errc::not_found);
  CHECK(mentions(missing.error().message, "nope"));

  // An id that is a path would read another directory's record.
  REQUIRE(state->create(sample_record("web")).ok());
  fs::create_directory(dir.path / "sub");
  CHECK_FALSE(state->load("sub/../web").ok());
  CHECK_FALSE(state->load("../" + dir.path.filename().string() + "/web").ok());

  write_file(dir.path / "web" / "oci.json", "{\"id\": \"web\"");
  auto corrupt = state->load("web");
  REQUIRE_FALSE(corrupt.ok());
  CHECK(mentions(corrupt.error().message, "corrupt"));
  write_file(dir.path / "web" / "oci.json", "{\"id\": \"web\"}");
  corrupt = state->load("web");
  REQUIRE_FALSE(corrupt.ok());
  CHECK(mentions(corrupt.error().message, "corrupt"));
  write_file(dir.path / "web" / "oci.json", "{\"id\": \"web\", \"container_id\": \"c\", \"pid\": \"12\"}");
  corrupt = state->load("web");
  REQUIRE_FALSE(corrupt.ok());
  CHECK(mentions(corrupt.error().message, "corrupt"));

  state->remove("web");
  CHECK_FALSE(fs::exists(dir.path / "web"));
  const auto removed = state->load("web");
  REQUIRE_FALSE(removed.ok());
  CHECK(removed.error().code == Errc::not_found);
  state->remove("web");
}

TEST_CASE("oci state: the runtime spec's state object") {
  oci::Record record = sample_record("web");
  const Json running = oci::state_json(record, "running");
  CHECK(running["ociVersion"] == "1.0.2");
  CHECK(running["id"] == "web");
  CHECK(running["status"] == "running");
  CHECK(running["pid"] == 4242);
  CHECK(running["bundle"] == "/srv/bundles/web");
  CHECK(running["created"] == record.created);
  CHECK(running["annotations"] == Json{{"org.example.key", "value"}});
  CHECK(oci::state_json(record, "created")["pid"] == 4242);
  // A stopped container's pid may be another process by now.
  CHECK(oci::state_json(record, "stopped")["pid"] == 0);

  record.annotations = Json::object();
  CHECK_FALSE(oci::state_json(record, "created").contains("annotations"));
}
