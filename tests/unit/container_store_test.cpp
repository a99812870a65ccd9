#include "runtime/container_store.hpp"
#include "tests/unit/temp_dir.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <set>

using namespace hyper;
using namespace hyper::runtime;
namespace fs = std::filesystem;

namespace {

// Named for this file's tests, so that a leftover says where it came from.
struct TempDir : test::TempDir {
  TempDir() : test::TempDir("hyper-store-test") {}
};

ContainerStore open_store(const fs::path& dir) {
  auto store = ContainerStore::open(dir);
  REQUIRE(store.ok());
  return std::move(store).value();
}

ContainerConfig sample_config() {
  ContainerConfig config;
  config.image = "busybox";
  config.image_id = "sha256:" + std::string(64, 'a');
  config.entrypoint = {"/bin/sh", "-c"};
  config.cmd = {"echo hi"};
  config.env = {"PATH=/bin", "A=b c"};
  config.working_dir = "/tmp";
  config.user = "1000:1000";
  config.hostname = "box";
  config.stop_signal = "SIGQUIT";
  config.tty = true;
  config.open_stdin = true;
  config.auto_remove = false;
  config.cpus = 3;
  config.memory_mib = 512;
  return config;
}

Container create(ContainerStore& store, const std::optional<std::string>& name = std::nullopt) {
  auto container = store.create(sample_config(), name);
  INFO((container.ok() ? std::string() : container.error().message));
  REQUIRE(container.ok());
  return std::move(container).value();
}

Container find(const ContainerStore& store, const std::string& reference) {
  auto container = store.find(reference);
  INFO(reference, " ", (container.ok() ? std::string() : container.error().message));
  REQUIRE(container.ok());
  return std::move(container).value();
}

void set_running(const ContainerStore& store, const Container& container, pid_t pid, uint64_t ticks) {
  auto updated = store.update_state(container, [&](ContainerState& state) {
    state.status = ContainerStatus::running;
    state.pid = pid;
    state.pid_start_ticks = ticks;
    state.started_at = now_rfc3339();
  });
  REQUIRE(updated.ok());
}

// A child that waits for a byte on a pipe (and is then told to exit or rename itself).
struct Child {
  pid_t pid = -1;
  int command = -1, reply = -1;

  Child() {
    int to_child[2], from_child[2];
    REQUIRE(::pipe(to_child) == 0);
    REQUIRE(::pipe(from_child) == 0);
    pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(to_child[1]);
      ::close(from_child[0]);
      char c;
      while (::read(to_child[0], &c, 1) == 1) {
        if (c == 'r') ::prctl(PR_SET_NAME, "x) Z 1 2 3 (y");  // fields that a naive parser would take
        (void)!::write(from_child[1], &c, 1);
      }
      ::_exit(0);
    }
    ::close(to_child[0]);
    ::close(from_child[1]);
    command = to_child[1];
    reply = from_child[0];
  }

  void ask(char c) const {
    REQUIRE(::write(command, &c, 1) == 1);
    char back = 0;
    REQUIRE(::read(reply, &back, 1) == 1);
  }

  // Ends it; reaped unless `leave_zombie`.
  void end(bool leave_zombie = false) {
    ::close(command);
    ::close(reply);
    command = reply = -1;
    if (leave_zombie) {
      // Wait for the exit without collecting it.
      siginfo_t info{};
      REQUIRE(::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) == 0);
      return;
    }
    REQUIRE(::waitpid(pid, nullptr, 0) == pid);
    pid = -1;
  }

  ~Child() {
    if (command >= 0) ::close(command);
    if (reply >= 0) ::close(reply);
    if (pid > 0) ::waitpid(pid, nullptr, 0);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
};

std::set<std::string> visible_entries(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name[0] != '.') names.insert(name);
  }
  return names;
}

}  // namespace

TEST_CASE("container store: create writes the config and a created state, found by name, id and prefix") {
  TempDir dir;
  ContainerStore store = open_store(dir.path);
  const Container web = create(store, "web");
  CHECK(web.id.size() == 64);
  CHECK(web.id.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(web.name == "web");
  CHECK(web.dir == dir.path / web.id);
  CHECK(web.state.status == ContainerStatus::created);
  CHECK(fs::exists(web.dir / "config.json"));
  CHECK(fs::exists(web.dir / "state.json"));

  for (const std::string& reference : std::vector<std::string>{"web", "/web", web.id, web.id.substr(0, 12)}) {
    const Container found = find(store, reference);
    CHECK(found.id == web.id);
    CHECK(found.name == "web");
    CHECK(found.created == web.created);
    CHECK(found.config.image == "busybox");
    CHECK(found.config.image_id == sample_config().image_id);
    CHECK(found.config.entrypoint == sample_config().entrypoint);
    CHECK(found.config.cmd == sample_config().cmd);
    CHECK(found.config.env == sample_config().env);
    CHECK(found.config.working_dir == "/tmp");
    CHECK(found.config.user == "1000:1000");
    CHECK(found.config.hostname == "box");
    CHECK(found.config.stop_signal == "SIGQUIT");
    CHECK(found.config.tty);
    CHECK(found.config.open_stdin);
    CHECK_FALSE(found.config.auto_remove);
    CHECK(found.config.cpus == 3);
    CHECK(found.config.memory_mib == 512);
    CHECK(found.config.seccomp);
    CHECK(found.state.status == ContainerStatus::created);
  }
  // The containers directory shows nothing but container ids.
  CHECK(visible_entries(dir.path) == std::set<std::string>{web.id});
}

TEST_CASE("container store: a host root, exact groups and rlimits survive the round trip") {
  TempDir dir;
  ContainerStore store = open_store(dir.path);
  ContainerConfig config = sample_config();
  config.image.clear();
  config.image_id.clear();
  config.host_rootfs = HostRootfs{"/srv/bundles/web/rootfs", true};
  config.groups = std::vector<uint32_t>{10, 20, 4294967295u};
  config.rlimits = {{"nofile", 1024, 4096}, {"core", 0, 18446744073709551615ull}};
  auto created = store.create(config, "oci");
  REQUIRE_MESSAGE(created.ok(), (created.ok() ? std::string() : created.error().message));

  const Container found = find(store, "oci");
  REQUIRE(found.config.host_rootfs);
  CHECK(found.config.host_rootfs->path == "/srv/bundles/web/rootfs");
  CHECK(found.config.host_rootfs->read_only);
  REQUIRE(found.config.groups);
  CHECK(*found.config.groups == std::vector<uint32_t>{10, 20, 4294967295u});
  REQUIRE(found.config.rlimits.size() == 2);
  CHECK(found.config.rlimits[0].type == "nofile");
  CHECK(found.config.rlimits[0].soft == 1024);
  CHECK(found.config.rlimits[0].hard == 4096);
  CHECK(found.config.rlimits[1].type == "core");
  CHECK(found.config.rlimits[1].soft == 0);
  CHECK(found.config.rlimits[1].hard == 18446744073709551615ull);
  CHECK(found.config.image.empty());
}

TEST_CASE("container store: no groups and an empty group list stay different") {
  TempDir dir;
  ContainerStore store = open_store(dir.path);
  // Absent: the image's /etc/group memberships; empty: exactly none.
  const Container plain = find(store, create(store, "plain").id);
  CHECK_FALSE(plain.config.groups);
  CHECK_FALSE(plain.config.host_rootfs);
  CHECK(plain.config.rlimits.empty());

  ContainerConfig config = sample_config();
  config.groups = std::vector<uint32_t>{};
  config.host_rootfs = HostRootfs{"/srv/rootfs", false};
  REQUIRE(store.create(config, "none").ok());
  const Container none = find(store, "none");
  REQUIRE(none.config.groups);
  CHECK(none.config.groups->empty());
  REQUIRE(none.config.host_rootfs);
  CHECK_FALSE(none.config.host_rootfs->read_only);
}

TEST_CASE("container store: an unnamed container gets a generated name") {
  TempDir dir;
  ContainerStore store = open_store(dir.path);
  const Container a = create(store), b = create(store);
  CHECK_FALSE(a.name.empty());
  CHECK(a.name != b.name);
  CHECK(find(store, a.name).id == a.id);
  CHECK(find(store, b.name).id == b.id);
}

TEST_CASE("container store: names are unique and checked like Docker's") {
  TempDir dir;
  ContainerStore store = open_store(dir.path);
  const Container web = create(store, "web");
  auto again = store.create(sample_config(), std::string("web"));
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().message == "Conflict. The container name \"/web\" is already in use by container \"" + web.id +
                                     "\". You have to remove (or rename) that container to be able to reuse that name.");
  // The refused container left nothing behind.
  CHECK(visible_entries(dir.path) == std::set<std::string>{web.id});

  for (const std::string bad : {"a", "-web", "_web", "we/b", "web!", "", "we b"}) {
    auto refused = store.create(sample_config(), bad);
    INFO(bad);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().code == Errc::invalid_argument);
    CHECK(refused.error().message.find("Invalid container name") != std::string::npos);
  }
  CHECK(create(store, "a1").name == "a1");
  CHECK(create(store, "Web_2.x-y").name == "Web_2.x-y");
  CHECK(create(store, "/slashed").name == "slashed");
}

TEST_CASE("container store: missing and ambiguous references") {
  TempDir dir;
  ContainerStore store = open_store(dir.path);
  auto missing = store.find("nosuch");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == Errc::not_found);
  CHECK(missing.error().message == "No such container: nosuch");
  CHECK_FALSE(store.find("").ok());

  // 17 ids over 16 first digits: two share one.
  std::map<char, int> first_digits;
  for (int i = 0; i < 17; ++i) ++first_digits[create(store).id[0]];
  char shared = 0;
  for (const auto& [digit, count] : first_digits) {
    if (count > 1) shared = digit;
  }
  REQUIRE(shared != 0);
  auto ambiguous = store.find(std::string(1, shared));
  REQUIRE_FALSE(ambiguous.ok());
  CHECK(ambiguous.error().code != Errc::not_found);
  CHECK(ambiguous.error().message.find("Multiple IDs") != std::string::npos);

  auto no_prefix = store.find(std::string(1, shared) + std::string(63, 'z'));
  CHECK_FALSE(no_prefix.ok());
}

TEST_CASE("container store: list is newest first") {
  TempDir dir;
  ContainerStore store = open_store(dir.path);
  std::vector<std::string> created;
  for (int i = 0; i < 4; ++i) created.push_back(create(store).id);
  auto listed = store.list();
  REQUIRE(listed.ok());
  REQUIRE(listed->size() == 4);
  for (size_t i = 0; i < 4; ++i) CHECK((*listed)[i].id == created[3 - i]);
}

TEST_CASE("container store: update_state replaces the state") {
  TempDir dir;
  ContainerStore store = open_store(dir.path);
  const Container web = create(store, "web");
  auto ticks = process_start_ticks(::getpid());
  REQUIRE(ticks.ok());
  set_running(store, web, ::getpid(), *ticks);
  Container found = find(store, "web");
  CHECK(found.state.status == ContainerStatus::running);
  CHECK(found.state.pid == ::getpid());
  CHECK(found.state.pid_start_ticks == *ticks);
  CHECK_FALSE(found.state.started_at.empty());

  REQUIRE(store.update_state(web, [](ContainerState& state) {
    state.status = ContainerStatus::exited;
    state.pid = 0;
    state.exit_code = 143;
    state.error = "stopped";
    state.finished_at = now_rfc3339();
  }).ok());
  found = find(store, web.id);
  CHECK(found.state.status == ContainerStatus::exited);
  CHECK(found.state.exit_code == 143);
  CHECK(found.state.error == "stopped");
  CHECK_FALSE(found.state.started_at.empty());
  CHECK_FALSE(found.state.finished_at.empty());
}

TEST_CASE("container store: a running container whose monitor died is recorded as exited 137") {
  TempDir dir;
  ContainerStore store = open_store(dir.path);
  const Container web = create(store, "web");
  Child child;
  auto ticks = process_start_ticks(child.pid);
  REQUIRE(ticks.ok());
  set_running(store, web, child.pid, *ticks);
  CHECK(find(store, "web").state.status == ContainerStatus::running);
  child.end();

  const Container found = find(store, "web");
  CHECK(found.state.status == ContainerStatus::exited);
  CHECK(found.state.exit_code == 137);
  CHECK(found.state.pid == 0);
  CHECK_FALSE(found.state.finished_at.empty());
  // Persisted: the next reader sees the same end.
  const Container again = find(store, web.id);
  CHECK(again.state.status == ContainerStatus::exited);
  CHECK(again.state.finished_at == found.state.finished_at);
  std::ifstream state(web.dir / "state.json");
  const std::string text((std::istreambuf_iterator<char>(state)), std::istreambuf_iterator<char>());
  CHECK(text.find("\"exited\"") != std::string::npos);

  auto listed = store.list();
  REQUIRE(listed.ok());
  REQUIRE(listed->size() == 1);
  CHECK(listed->front().state.exit_code == 137);
}

TEST_CASE("container store: a killed --rm container is removed by the next reader") {
  TempDir dir;
  ContainerStore store = open_store(dir.path);
  ContainerConfig config = sample_config();
  config.auto_remove = true;
  auto created = store.create(config, std::string("gone"));
  REQUIRE(created.ok());
  Child child;
  auto ticks = process_start_ticks(child.pid);
  REQUIRE(ticks.ok());
  set_running(store, *created, child.pid, *ticks);
  CHECK(find(store, "gone").state.status == ContainerStatus::running);
  child.end();

  auto found = store.find("gone");
  REQUIRE_FALSE(found.ok());
  CHECK(found.error().code == Errc::not_found);
  CHECK_FALSE(fs::exists(created->dir));
  auto listed = store.list();
  REQUIRE(listed.ok());
  CHECK(listed->empty());
  create(store, "gone");  // the name is free again
}

TEST_CASE("container store: what a killed create or remove left is swept when the store is opened") {
  TempDir dir;
  {
    ContainerStore store = open_store(dir.path);
    const Container kept = create(store, "kept");
  }
  const std::string id(64, 'b');
  for (const char* prefix : {".creating-", ".removing-"}) {
    fs::create_directories(dir.path / (prefix + id) / "deep");
    std::ofstream(dir.path / (prefix + id) / "deep" / "rw.ext4") << "half a disk";
  }
  ContainerStore store = open_store(dir.path);
  CHECK_FALSE(fs::exists(dir.path / (".creating-" + id)));
  CHECK_FALSE(fs::exists(dir.path / (".removing-" + id)));
  auto listed = store.list();
  REQUIRE(listed.ok());
  REQUIRE(listed->size() == 1);
  CHECK(listed->front().name == "kept");
}

TEST_CASE("container store: a monitor that a seccomp violation ended is recorded with its message") {
  TempDir dir;
  ContainerStore store = open_store(dir.path);
  ContainerConfig config = sample_config();
  config.seccomp = false;  // stored as given (--security-opt seccomp=unconfined)
  auto created = store.create(config, std::string("web"));
  REQUIRE(created.ok());
  CHECK_FALSE(find(store, "web").config.seccomp);
  Child child;
  auto ticks = process_start_ticks(child.pid);
  REQUIRE(ticks.ok());
  set_running(store, *created, child.pid, *ticks);
  const std::string message = "hyper-vmm: seccomp: thread vcpu0 made a forbidden system call 59 (execve)";
  std::ofstream(created->dir / kSeccompViolationFile) << message << "\n";
  child.end();

  const Container found = find(store, "web");
  CHECK(found.state.status == ContainerStatus::exited);
  CHECK(found.state.exit_code == 159);
  CHECK(found.state.error == message);
}

TEST_CASE("container store: monitor_alive tells a live monitor from a dead, zombie or reused pid") {
  auto ticks = process_start_ticks(::getpid());
  REQUIRE(ticks.ok());
  CHECK(*ticks > 0);
  ContainerState state;
  state.status = ContainerStatus::running;
  state.pid = ::getpid();
  state.pid_start_ticks = *ticks;
  CHECK(monitor_alive(state));
  state.pid_start_ticks = *ticks + 1;  // the pid now belongs to another process
  CHECK_FALSE(monitor_alive(state));
  state.pid = 0;
  CHECK_FALSE(monitor_alive(state));

  Child child;
  auto child_ticks = process_start_ticks(child.pid);
  REQUIRE(child_ticks.ok());
  state.pid = child.pid;
  state.pid_start_ticks = *child_ticks;
  CHECK(monitor_alive(state));
  child.end(/*leave_zombie=*/true);
  CHECK_FALSE(monitor_alive(state));
}

TEST_CASE("container store: process_start_ticks counts fields after the last ')' of the command name") {
  Child child;
  auto before = process_start_ticks(child.pid);
  REQUIRE(before.ok());
  child.ask('r');  // renames itself to "x) Z 1 2 3 (y"
  std::ifstream stat("/proc/" + std::to_string(child.pid) + "/stat");
  std::string text;
  std::getline(stat, text);
  REQUIRE(text.find("(x) Z 1 2 3 (y)") != std::string::npos);
  auto after = process_start_ticks(child.pid);
  REQUIRE(after.ok());
  CHECK(*after == *before);
  ContainerState state;
  state.pid = child.pid;
  state.pid_start_ticks = *after;
  CHECK(monitor_alive(state));  // not fooled by the "Z" in the name
  CHECK_FALSE(process_start_ticks(-1).ok());
}

TEST_CASE("container store: remove deletes the directory and frees the name") {
  TempDir dir;
  ContainerStore store = open_store(dir.path);
  const Container web = create(store, "web");
  const Container other = create(store, "other");
  REQUIRE(store.remove(web).ok());
  CHECK_FALSE(fs::exists(web.dir));
  auto gone = store.find("web");
  REQUIRE_FALSE(gone.ok());
  CHECK(gone.error().code == Errc::not_found);
  CHECK(store.find(web.id).error().code == Errc::not_found);
  CHECK(visible_entries(dir.path) == std::set<std::string>{other.id});
  // Removing twice is harmless.
  CHECK(store.remove(web).ok());

  const Container reused = create(store, "web");
  CHECK(find(store, "web").id == reused.id);
  REQUIRE(store.remove(reused).ok());
  REQUIRE(store.remove(other).ok());
  CHECK(visible_entries(dir.path).empty());
  auto listed = store.list();
  REQUIRE(listed.ok());
  CHECK(listed->empty());
}

TEST_CASE("container store: one VM claim at a time, free again once released") {
  TempDir dir;
  ContainerStore store = open_store(dir.path);
  const Container web = create(store, "web");
  const Container other = create(store, "other");
  {
    auto first = store.claim_vm(web);
    REQUIRE(first.ok());
    REQUIRE(first->has_value());
    // flock conflicts between open files, so a second claim in this process stands in for
    // another process's (a `hyper start` during a commit).
    auto second = store.claim_vm(web);
    REQUIRE(second.ok());
    CHECK_FALSE(second->has_value());
    auto unrelated = store.claim_vm(other);
    REQUIRE(unrelated.ok());
    CHECK(unrelated->has_value());
  }
  auto again = store.claim_vm(web);
  REQUIRE(again.ok());
  CHECK(again->has_value());
}

TEST_CASE("container store: a name left by a vanished container is taken over") {
  TempDir dir;
  ContainerStore store = open_store(dir.path);
  const Container web = create(store, "web");
  fs::remove_all(web.dir);  // as if a crash had left only the name
  CHECK(store.find("web").error().code == Errc::not_found);
  CHECK(create(store, "web").name == "web");
}

TEST_CASE("container store: corrupt files give a clear error") {
  TempDir dir;
  ContainerStore store = open_store(dir.path);
  const Container web = create(store, "web");
  { std::ofstream(web.dir / "state.json") << "{\"status\": 12"; }
  auto broken = store.find("web");
  REQUIRE_FALSE(broken.ok());
  CHECK(broken.error().message.find("state.json is corrupt") != std::string::npos);
  { std::ofstream(web.dir / "state.json") << "{\"status\": \"sleeping\"}"; }
  CHECK(store.find("web").error().message.find("corrupt") != std::string::npos);
  { std::ofstream(web.dir / "config.json") << "[]"; }
  broken = store.find(web.id);
  REQUIRE_FALSE(broken.ok());
  CHECK(broken.error().message.find("config.json is corrupt") != std::string::npos);
  CHECK_FALSE(store.list().ok());
}

TEST_CASE("container store: now_rfc3339 is UTC with nanoseconds") {
  const std::string now = now_rfc3339();
  REQUIRE(now.size() == 30);
  CHECK(now[4] == '-');
  CHECK(now[10] == 'T');
  CHECK(now[19] == '.');
  CHECK(now.back() == 'Z');
  CHECK(now.substr(20, 9).find_first_not_of("0123456789") == std::string::npos);
  CHECK(std::string(status_name(ContainerStatus::exited)) == "exited");
}
