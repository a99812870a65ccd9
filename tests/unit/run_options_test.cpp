#include "runtime/run_options.hpp"

#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

using namespace hyper;
using namespace hyper::runtime;

namespace {

RunFlags parse(const std::vector<std::string>& args) {
  auto flags = parse_run_flags(args);
  INFO((flags.ok() ? std::string() : flags.error().message));
  REQUIRE(flags.ok());
  return std::move(flags).value();
}

std::string parse_error(const std::vector<std::string>& args) {
  auto flags = parse_run_flags(args);
  REQUIRE_FALSE(flags.ok());
  CHECK(flags.error().code == Errc::invalid_argument);
  return flags.error().message;
}

runtime::Image sample_image() {
  runtime::Image image;
  image.id = "sha256:" + std::string(64, 'b');
  image.config.entrypoint = {"/entry"};
  image.config.cmd = {"default", "args"};
  image.config.env = {"PATH=/usr/bin:/bin", "FROM_IMAGE=1"};
  image.config.working_dir = "/srv";
  image.config.user = "nobody";
  image.config.stop_signal = "SIGQUIT";
  return image;
}

struct TempFile {
  std::filesystem::path path;
  explicit TempFile(const std::string& content) {
    std::string pattern = (std::filesystem::temp_directory_path() / "hyper-env-XXXXXX").string();
    const int fd = ::mkstemp(pattern.data());
    REQUIRE(fd >= 0);
    ::close(fd);
    path = pattern;
    std::ofstream(path) << content;
  }
  ~TempFile() { std::filesystem::remove(path); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
};

}  // namespace

TEST_CASE("run options: the image splits flags from the command") {
  RunFlags flags = parse({"-it", "busybox", "sh"});
  CHECK(flags.interactive);
  CHECK(flags.tty);
  CHECK_FALSE(flags.detach);
  CHECK(flags.image == "busybox");
  CHECK(flags.command == std::vector<std::string>{"sh"});

  // Flags after the image belong to the command.
  flags = parse({"-d", "--name", "web", "-e", "K=V", "--env=A=B", "busybox", "echo", "-e", "--rm", "x"});
  CHECK(flags.detach);
  CHECK_FALSE(flags.remove);
  CHECK(flags.name == std::optional<std::string>("web"));
  CHECK(flags.env == std::vector<std::string>{"K=V", "A=B"});
  CHECK(flags.image == "busybox");
  CHECK(flags.command == std::vector<std::string>{"echo", "-e", "--rm", "x"});

  flags = parse({"--rm", "--", "busybox", "ls", "-l"});
  CHECK(flags.remove);
  CHECK(flags.image == "busybox");
  CHECK(flags.command == std::vector<std::string>{"ls", "-l"});

  // In a cluster only the last letter takes a value.
  flags = parse({"-de", "X=1", "img"});
  CHECK(flags.detach);
  CHECK(flags.env == std::vector<std::string>{"X=1"});
  CHECK(flags.image == "img");
  CHECK(flags.command.empty());

  flags = parse({"-w", "/tmp", "-u", "1000:2000", "-h", "box", "-m", "512m", "--cpus", "2", "--entrypoint", "",
                 "--env-file", "f", "-i", "img"});
  CHECK(flags.workdir == std::optional<std::string>("/tmp"));
  CHECK(flags.user == std::optional<std::string>("1000:2000"));
  CHECK(flags.hostname == std::optional<std::string>("box"));
  CHECK(flags.memory == "512m");
  CHECK(flags.cpus == "2");
  CHECK(flags.entrypoint == std::optional<std::vector<std::string>>(std::vector<std::string>{}));
  CHECK(flags.env_files == std::vector<std::string>{"f"});
  CHECK(flags.interactive);
  CHECK(flags.image == "img");

  flags = parse({"img"});
  CHECK(flags.cpus == "1");
  CHECK(flags.memory.empty());
  CHECK_FALSE(flags.name);
  CHECK_FALSE(flags.entrypoint);
}

TEST_CASE("run options: bad flags are refused") {
  CHECK(parse_error({}).find("requires at least 1 argument") != std::string::npos);
  CHECK(parse_error({"-d"}).find("requires at least 1 argument") != std::string::npos);
  CHECK(parse_error({"--name", "x"}).find("requires at least 1 argument") != std::string::npos);
  CHECK(parse_error({"--no-such-flag", "busybox"}).find("no-such-flag") != std::string::npos);
  // Never abbreviated, as in Docker.
  CHECK_FALSE(parse_run_flags({"--det", "busybox"}).ok());
  CHECK(parse_error({"-w", "relative", "busybox"}).find("absolute") != std::string::npos);
  CHECK(parse_error({"-h", std::string(65, 'h'), "busybox"}).find("hostname") != std::string::npos);
}

TEST_CASE("run options: --security-opt seccomp=unconfined turns the VMM's filters off, nothing else is known") {
  CHECK(parse({"img"}).seccomp);
  const RunFlags off = parse({"--security-opt", "seccomp=unconfined", "img"});
  CHECK_FALSE(off.seccomp);
  CHECK(off.image == "img");
  CHECK_FALSE(parse({"--security-opt=seccomp=unconfined", "img"}).seccomp);
  CHECK_FALSE(container_config(off, sample_image()).value().seccomp);
  CHECK(container_config(parse({"img"}), sample_image()).value().seccomp);
  for (const std::string bad : {"seccomp=/etc/profile.json", "apparmor=unconfined", "no-new-privileges", "seccomp"}) {
    CAPTURE(bad);
    const std::string error = parse_error({"--security-opt", bad, "img"});
    CHECK(error.find("invalid --security-opt \"" + bad + "\"") != std::string::npos);
    CHECK(error.find("seccomp=unconfined") != std::string::npos);
  }
}

TEST_CASE("run options: memory sizes") {
  CHECK(parse_memory("512m").value() == 512);
  CHECK(parse_memory("512M").value() == 512);
  CHECK(parse_memory("1g").value() == 1024);
  CHECK(parse_memory("1.5g").value() == 1536);
  CHECK(parse_memory("268435456").value() == 256);
  CHECK(parse_memory("65536k").value() == 64);
  CHECK(parse_memory("100000001").value() == 96);  // rounded up to whole MiB
  CHECK(parse_memory("12k").error().message.find("too small") != std::string::npos);
  CHECK(parse_memory("63m").error().message.find("too small") != std::string::npos);
  CHECK(parse_memory("2000g").error().message.find("too large") != std::string::npos);
  for (const std::string bad : {"", "abc", "5x", "-1g", "0", "nan", "inf"}) {
    INFO(bad);
    CHECK_FALSE(parse_memory(bad).ok());
  }
}

TEST_CASE("run options: CPU counts") {
  CHECK(parse_cpus("1").value() == 1);
  CHECK(parse_cpus("2").value() == 2);
  CHECK(parse_cpus("1.5").value() == 2);
  CHECK(parse_cpus("0.01").value() == 1);
  CHECK(parse_cpus("64").value() == 64);
  for (const std::string bad : {"", "0", "-1", "65", "x", "2x"}) {
    INFO(bad);
    CHECK_FALSE(parse_cpus(bad).ok());
  }
}

TEST_CASE("run options: environment from the image, env files and flags") {
  TempFile file("A=from-file\n# a comment\n\n  B=two words  \nC=3\nHYPER_TEST_UNSET_VAR\n");
  ::setenv("HYPER_TEST_COPIED", "copied value", 1);
  ::unsetenv("HYPER_TEST_UNSET_VAR");
  ::unsetenv("HYPER_TEST_NOT_SET");
  auto env = merge_env({"PATH=/bin", "A=image", "DROP=me"}, {file.path.string()},
                       {"C=flag", "HYPER_TEST_COPIED", "DROP", "HYPER_TEST_NOT_SET", "NEW=x=y"});
  REQUIRE(env.ok());
  ::unsetenv("HYPER_TEST_COPIED");
  // Later wins in place; a bare name copies ours, or drops the variable when we lack it.
  CHECK(*env == std::vector<std::string>{"PATH=/bin", "A=from-file", "B=two words", "C=flag",
                                         "HYPER_TEST_COPIED=copied value", "NEW=x=y"});

  auto missing = merge_env({}, {"/no/such/env-file"}, {});
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message.find("/no/such/env-file") != std::string::npos);
  CHECK_FALSE(merge_env({}, {}, {"=value"}).ok());
  CHECK_FALSE(merge_env({}, {}, {""}).ok());
  TempFile bad_file("=oops\n");
  CHECK_FALSE(merge_env({}, {bad_file.path.string()}, {}).ok());
}

TEST_CASE("run options: entrypoint and command follow Docker's rules") {
  const runtime::Image image = sample_image();
  auto config = container_config(parse({"img"}), image);
  REQUIRE(config.ok());
  CHECK(config->entrypoint == std::vector<std::string>{"/entry"});
  CHECK(config->cmd == std::vector<std::string>{"default", "args"});
  CHECK(config->image == "img");
  CHECK(config->image_id == image.id);
  CHECK(config->env == image.config.env);
  CHECK(config->working_dir == "/srv");
  CHECK(config->user == "nobody");
  CHECK(config->stop_signal == "SIGQUIT");
  CHECK(config->cpus == 1);
  CHECK(config->memory_mib == 256);
  CHECK_FALSE(config->tty);
  CHECK_FALSE(config->auto_remove);

  // A command replaces the image's command, not its entrypoint.
  config = container_config(parse({"img", "other"}), image);
  REQUIRE(config.ok());
  CHECK(config->entrypoint == std::vector<std::string>{"/entry"});
  CHECK(config->cmd == std::vector<std::string>{"other"});

  // A new entrypoint drops the image's command.
  config = container_config(parse({"--entrypoint", "/bin/sh", "img"}), image);
  REQUIRE(config.ok());
  CHECK(config->entrypoint == std::vector<std::string>{"/bin/sh"});
  CHECK(config->cmd.empty());

  // An empty one clears the entrypoint; then a command is needed.
  config = container_config(parse({"--entrypoint", "", "img", "ls"}), image);
  REQUIRE(config.ok());
  CHECK(config->entrypoint.empty());
  CHECK(config->cmd == std::vector<std::string>{"ls"});
  config = container_config(parse({"--entrypoint", "", "img"}), image);
  REQUIRE_FALSE(config.ok());
  CHECK(config.error().message.find("no command") != std::string::npos);

  config = container_config(parse({"-t", "-i", "--rm", "-w", "/w", "-u", "0", "-h", "hn", "-m", "1g", "--cpus", "1.5",
                                   "-e", "FROM_IMAGE=2", "img"}),
                            image);
  REQUIRE(config.ok());
  CHECK(config->tty);
  CHECK(config->open_stdin);
  CHECK(config->auto_remove);
  CHECK(config->working_dir == "/w");
  CHECK(config->user == "0");
  CHECK(config->hostname == "hn");
  CHECK(config->memory_mib == 1024);
  CHECK(config->cpus == 2);
  CHECK(config->env == std::vector<std::string>{"PATH=/usr/bin:/bin", "FROM_IMAGE=2"});

  CHECK_FALSE(container_config(parse({"-m", "1k", "img"}), image).ok());
  CHECK_FALSE(container_config(parse({"--cpus", "100", "img"}), image).ok());
  runtime::Image bare = image;
  bare.config.entrypoint.clear();
  bare.config.cmd.clear();
  CHECK_FALSE(container_config(parse({"img"}), bare).ok());
}

TEST_CASE("run options: --tap names the tap first, then the address and the optional parts") {
  auto net = hyper::runtime::parse_tap("tap0,ip=10.0.2.15/24,gw=10.0.2.1,mac=02:00:00:00:00:15,dns=10.0.2.1,dns=10.0.2.2");
  REQUIRE(net.ok());
  CHECK(net->tap == "tap0");
  CHECK(net->address == "10.0.2.15/24");
  CHECK(net->gateway == "10.0.2.1");
  CHECK(net->mac == "02:00:00:00:00:15");
  CHECK(net->dns == std::vector<std::string>{"10.0.2.1", "10.0.2.2"});
  CHECK(hyper::runtime::parse_tap("t,ip=192.168.7.2/30").ok());
  for (const char* bad : {"", "ip=10.0.2.15/24", "tap0", "tap0,ip=10.0.2.15", "tap0,ip=10.0.2.300/24",
                          "tap0,ip=10.0.2.15/33", "tap0,ip=10.0.2.15/", "tap0,ip=10.0.2.15/2x", "tap0,ip=10.0.2.15/24,gw=x",
                          "tap0,ip=10.0.2.15/24,mac=01:00:00:00:00:01", "tap0,ip=10.0.2.15/24,bogus=1",
                          "a-very-long-tap-name,ip=10.0.2.15/24"}) {
    CAPTURE(bad);
    CHECK_FALSE(hyper::runtime::parse_tap(bad).ok());
  }
}

TEST_CASE("run options: the network flags become the container's network config") {
  runtime::Image image = sample_image();
  image.config.exposed_ports = {"80/tcp", "53/udp"};
  auto config = [&](const std::vector<std::string>& args) {
    auto made = network_config(parse(args), image);
    INFO((made.ok() ? std::string() : made.error().message));
    REQUIRE(made.ok());
    return std::move(made).value();
  };
  auto error = [&](const std::vector<std::string>& args) {
    auto made = network_config(parse(args), image);
    REQUIRE_FALSE(made.ok());
    return made.error().message;
  };
  CHECK(config({"img"}).network == "bridge");
  CHECK(config({"--net", "front", "img"}).network == "front");

  const auto full = config({"--network", "front", "--network-alias", "www", "-p", "8080:80", "-p127.0.0.1:53:53/udp",
                            "--link", "db:database", "--dns", "10.0.0.53", "--dns-search", "example.test", "--add-host",
                            "h:10.0.0.9", "--mac-address", "02:00:00:00:00:09", "img", "cmd"});
  CHECK(full.aliases == std::vector<std::string>{"www"});
  REQUIRE(full.ports.size() == 2);
  CHECK(full.ports[1] == runtime::net::PortMapping{"127.0.0.1", 53, 53, "udp"});
  CHECK(full.links == std::vector<runtime::net::Link>{{"db", "database"}});
  CHECK(full.dns == std::vector<std::string>{"10.0.0.53"});
  CHECK(full.extra_hosts == std::vector<std::string>{"10.0.0.9 h"});
  CHECK(full.mac == "02:00:00:00:00:09");
  CHECK(parse({"-p", "80", "img", "cmd"}).command == std::vector<std::string>{"cmd"});  // -p takes a value

  // -P adds what the image EXPOSEs and -p did not publish already.
  const auto all = config({"-P", "-p", "8080:80", "img"});
  REQUIRE(all.ports.size() == 2);
  CHECK(all.ports[0].host_port == 8080);
  CHECK(all.ports[1] == runtime::net::PortMapping{"", 0, 53, "udp"});

  CHECK(error({"--network", "host", "img"}).find("not supported") != std::string::npos);
  CHECK(error({"--network", "none", "-p", "80", "img"}).find("conflicting options") != std::string::npos);
  CHECK(error({"--network", "none", "--link", "db", "img"}).find("conflicting options") != std::string::npos);
  CHECK(error({"--network-alias", "x", "img"}).find("user-defined networks") != std::string::npos);
  CHECK(error({"--dns", "nameserver", "img"}).find("--dns") != std::string::npos);
  CHECK(error({"--add-host", "nocolon", "img"}).find("--add-host") != std::string::npos);
  CHECK(error({"--mac-address", "01:00:00:00:00:01", "img"}).find("unicast") != std::string::npos);
  CHECK(error({"--tap", "t0,ip=10.0.0.2/24", "--network", "front", "img"}).find("conflicting options") != std::string::npos);
  CHECK(config({"--tap", "t0,ip=10.0.0.2/24", "img"}).none());
}
