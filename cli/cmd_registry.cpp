// hyper pull / push / login / logout: the commands that talk to registries.
#include <termios.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "cli/commands.hpp"
#include "cli/container_args.hpp"
#include "cli/progress.hpp"
#include "runtime/image_blobs.hpp"
#include "runtime/image_pull.hpp"
#include "runtime/image_push.hpp"
#include "runtime/paths.hpp"
#include "runtime/registry_auth.hpp"

namespace hyper::cli {
namespace {

namespace po = boost::program_options;
using nlohmann::json;

Result<runtime::RegistryOptions> registry_options(const GlobalOptions& global) {
  const auto paths = HYPER_TRY(runtime::resolve_paths(global.root));
  return runtime::configured_registry_options(paths, global.insecure_registries);
}

// Registry failures are the operation failing (1); bad input is the runtime's (125).
int failure(const Error& error) { return report(error.message, error.code == Errc::invalid_argument ? 125 : 1); }

}  // namespace

int cmd_pull(const GlobalOptions& global, const std::vector<std::string>& args) {
  constexpr const char* kUsage = "Usage:  hyper pull [OPTIONS] NAME[:TAG|@DIGEST]";
  bool quiet = false;
  std::string platform = "linux/amd64";
  po::options_description desc;
  desc.add_options()("quiet,q", po::bool_switch(&quiet))("platform", po::value(&platform));
  po::variables_map vm;
  const auto words = parse_command_line(args, desc, vm);
  if (help_requested(vm)) {
    std::printf("%s\n\nDownload an image from a registry\n\n"
                "Options:\n"
                "      --platform string   os/arch[/variant] to pull from a multi-platform image (default linux/amd64)\n"
                "  -q, --quiet             print only the image's reference\n",
                kUsage);
    return 0;
  }
  if (!words.ok()) return report(words.error().message + "\n" + kUsage, 125);
  if (words->size() != 1) return report(std::string("\"hyper pull\" requires exactly 1 argument.\n") + kUsage, 125);
  const std::string& reference = words->front();
  const auto normalized = runtime::normalize_reference(reference);
  if (!normalized.ok()) return report(normalized.error().message, 125);
  const auto parsed_platform = runtime::parse_platform(platform);
  if (!parsed_platform.ok()) return report(parsed_platform.error().message, 125);
  auto registry = registry_options(global);
  if (!registry.ok()) return failure(registry.error());
  auto store = open_image_store(global);
  if (!store.ok()) return failure(store.error());

  const auto parts = runtime::parse_reference(*normalized).value();
  ProgressDisplay display(stdout, ::isatty(STDOUT_FILENO) == 1);
  if (!quiet) {
    if (parts.digest.empty() && parts.tag == "latest" && !reference.ends_with(":latest"))
      display.line("Using default tag: latest");
    display.line(parts.manifest_reference() + ": Pulling from " + parts.repository);
  }
  runtime::PullOptions options;
  options.registry = std::move(*registry);
  options.platform = *parsed_platform;
  if (!quiet) options.progress = [&](const runtime::ProgressEvent& event) { display.show(event); };
  const auto pulled = runtime::pull_image(*store, reference, options);
  if (!pulled.ok()) return failure(pulled.error());
  if (!quiet) {
    display.line("Digest: " + pulled->digest);
    display.line(std::string("Status: ") + (pulled->up_to_date ? "Image is up to date for " : "Downloaded newer image for ") +
                 runtime::familiar_name(pulled->reference));
  }
  std::printf("%s\n", pulled->reference.c_str());
  return 0;
}

int cmd_push(const GlobalOptions& global, const std::vector<std::string>& args) {
  constexpr const char* kUsage = "Usage:  hyper push [OPTIONS] NAME[:TAG]";
  bool quiet = false;
  po::options_description desc;
  desc.add_options()("quiet,q", po::bool_switch(&quiet));
  po::variables_map vm;
  const auto words = parse_command_line(args, desc, vm);
  if (help_requested(vm)) {
    std::printf("%s\n\nUpload an image to a registry\n\nOptions:\n  -q, --quiet   print only errors\n\n"
                "$HYPER_PUSH_CHUNK_SIZE (bytes, default 16 MiB): blobs larger than this are uploaded in chunks.\n",
                kUsage);
    return 0;
  }
  if (!words.ok()) return report(words.error().message + "\n" + kUsage, 125);
  if (words->size() != 1) return report(std::string("\"hyper push\" requires exactly 1 argument.\n") + kUsage, 125);
  const auto normalized = runtime::normalize_reference(words->front());
  if (!normalized.ok()) return report(normalized.error().message, 125);
  auto registry = registry_options(global);
  if (!registry.ok()) return failure(registry.error());
  auto store = open_image_store(global);
  if (!store.ok()) return failure(store.error());
  runtime::PushOptions options;
  options.registry = std::move(*registry);
  if (const char* chunk = std::getenv("HYPER_PUSH_CHUNK_SIZE"); chunk != nullptr && *chunk != '\0') {
    char* end = nullptr;
    const unsigned long long bytes = std::strtoull(chunk, &end, 10);
    if (*end != '\0' || bytes < 1024) return report("HYPER_PUSH_CHUNK_SIZE must be a number of bytes >= 1024", 125);
    options.chunk_size = bytes;
  }
  ProgressDisplay display(stdout, ::isatty(STDOUT_FILENO) == 1);
  if (!quiet) {
    options.progress = [&](const runtime::ProgressEvent& event) { display.show(event); };
    const auto parts = runtime::parse_reference(*normalized).value();
    display.line("The push refers to repository [" + parts.name() + "]");
  }
  const auto pushed = runtime::push_image(*store, *normalized, options);
  if (!pushed.ok()) return failure(pushed.error());
  if (!quiet)
    display.line(pushed->tag + ": digest: " + pushed->digest + " size: " + std::to_string(pushed->manifest_size));
  return 0;
}

namespace {

// The server a login names: a host[:port], Docker Hub when absent or spelt as its URL.
std::string login_server(const std::vector<std::string>& words) {
  if (words.empty()) return "docker.io";
  std::string server = words.front();
  for (const char* prefix : {"https://", "http://"})
    if (server.rfind(prefix, 0) == 0) server.erase(0, std::string(prefix).size());
  server = server.substr(0, server.find('/'));
  if (server == "index.docker.io" || server == "registry-1.docker.io") server = "docker.io";
  return server;
}

Result<std::string> read_password_line(bool echo_off) {
  termios saved{};
  const bool terminal = echo_off && ::tcgetattr(STDIN_FILENO, &saved) == 0;
  if (terminal) {
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  }
  std::string line;
  const bool got = static_cast<bool>(std::getline(std::cin, line));
  if (terminal) {
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
    std::fprintf(stderr, "\n");
  }
  if (!got && line.empty()) return make_error(Errc::invalid_argument, "no password given on standard input");
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
  return line;
}

}  // namespace

int cmd_login(const GlobalOptions& global, const std::vector<std::string>& args) {
  constexpr const char* kUsage = "Usage:  hyper login [OPTIONS] [SERVER]";
  std::string username, password;
  bool password_stdin = false;
  po::options_description desc;
  desc.add_options()("username,u", po::value(&username))("password,p", po::value(&password))(
      "password-stdin", po::bool_switch(&password_stdin));
  po::variables_map vm;
  const auto words = parse_command_line(args, desc, vm);
  if (help_requested(vm)) {
    std::printf("%s\n\nLog in to a registry (Docker Hub when no SERVER is given). The credentials are\n"
                "checked with the registry, then kept in $DOCKER_CONFIG/config.json (default\n"
                "~/.docker/config.json), where docker keeps them too.\n\n"
                "Options:\n  -p, --password string   password\n      --password-stdin    take the password from stdin\n"
                "  -u, --username string   username\n",
                kUsage);
    return 0;
  }
  if (!words.ok()) return report(words.error().message + "\n" + kUsage, 125);
  if (words->size() > 1) return report(std::string("\"hyper login\" requires at most 1 argument.\n") + kUsage, 125);
  if (password_stdin && vm.count("password")) return report("--password and --password-stdin are mutually exclusive", 125);
  if (password_stdin && username.empty()) return report("must provide --username with --password-stdin", 125);
  if (username.empty()) {
    if (::isatty(STDIN_FILENO) != 1) return report("cannot ask for a username: stdin is not a terminal (use -u)", 125);
    std::fprintf(stderr, "Username: ");
    if (!std::getline(std::cin, username) || username.empty()) return report("no username given", 125);
  }
  if (password_stdin || !vm.count("password")) {
    if (!password_stdin) {
      if (::isatty(STDIN_FILENO) != 1) return report("cannot ask for a password: stdin is not a terminal (use --password-stdin)", 125);
      std::fprintf(stderr, "Password: ");
    }
    auto line = read_password_line(!password_stdin);
    if (!line.ok()) return report(line.error().message, 125);
    password = std::move(*line);
  } else {
    std::fprintf(stderr, "WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n");
  }
  if (password.empty()) return report("a password is required", 125);
  const std::string server = login_server(*words);
  auto options = registry_options(global);
  if (!options.ok()) return failure(options.error());
  options->credentials = runtime::auth::Credentials{username, password};
  auto client = runtime::RegistryClient::create(server, std::move(*options));
  if (!client.ok()) return failure(client.error());
  if (auto verified = (*client)->verify_login(); !verified.ok()) return failure(verified.error());
  if (auto stored = runtime::auth::store_credentials(server, {username, password}); !stored.ok())
    return failure(stored.error());
  const auto path = runtime::auth::docker_config_path();
  std::fprintf(stderr, "WARNING! Your password will be stored unencrypted in %s.\n", path.ok() ? path->c_str() : "config.json");
  std::printf("Login Succeeded\n");
  return 0;
}

int cmd_logout(const GlobalOptions&, const std::vector<std::string>& args) {
  constexpr const char* kUsage = "Usage:  hyper logout [SERVER]";
  po::options_description desc;
  po::variables_map vm;
  const auto words = parse_command_line(args, desc, vm);
  if (help_requested(vm)) {
    std::printf("%s\n\nLog out from a registry (Docker Hub when no SERVER is given): removes its\n"
                "credentials from $DOCKER_CONFIG/config.json (default ~/.docker/config.json)\n",
                kUsage);
    return 0;
  }
  if (!words.ok()) return report(words.error().message + "\n" + kUsage, 125);
  if (words->size() > 1) return report(std::string("\"hyper logout\" requires at most 1 argument.\n") + kUsage, 125);
  const std::string server = login_server(*words);
  const auto erased = runtime::auth::erase_credentials(server);
  if (!erased.ok()) return failure(erased.error());
  if (!*erased) {
    std::printf("Not logged in to %s\n", server.c_str());
    return 0;
  }
  std::printf("Removing login credentials for %s\n", server.c_str());
  return 0;
}

}  // namespace hyper::cli
