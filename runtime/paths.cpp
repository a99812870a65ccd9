#include "runtime/paths.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <system_error>

namespace hyper::runtime {
namespace {

std::optional<std::filesystem::path> env_path(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::filesystem::path(value);
}

Result<std::filesystem::path> default_root() {
  if (auto root = env_path("HYPER_ROOT")) return *root;
  if (::geteuid() == 0) return std::filesystem::path("/var/lib/hyper");
  if (auto data = env_path("XDG_DATA_HOME")) return *data / "hyper";
  if (auto home = env_path("HOME")) return *home / ".local/share/hyper";
  return make_error(Errc::invalid_argument, "no state directory: set HYPER_ROOT or pass --root");
}

}  // namespace

Result<Paths> resolve_paths(const std::optional<std::string>& root_flag) {
  std::filesystem::path root = root_flag ? std::filesystem::path(*root_flag) : HYPER_TRY(default_root());
  if (root.empty()) return make_error(Errc::invalid_argument, "--root must not be empty");
  root = std::filesystem::absolute(root);
  Paths paths{root};
  for (const auto& dir : {paths.root, paths.images(), paths.containers()}) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return make_error(Errc::io, "cannot create state directory " + dir.string() + ": " + ec.message());
    ::chmod(dir.c_str(), 0700);
  }
  return paths;
}

}  // namespace hyper::runtime
