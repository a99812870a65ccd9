// hyper-runtime, the OCI runtime CLI (docs/embedding.md): what its commands share.
#pragma once

#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "runtime/container_store.hpp"
#include "runtime/oci/state_dir.hpp"
#include "vmm/result.hpp"

namespace hyper::cli::oci {

inline constexpr const char* kDefaultRoot = "/run/hyper-runtime";

struct Global {
  std::string root = kDefaultRoot;
  std::optional<std::string> log;  // --log: errors are appended there too
  bool log_json = false;           // --log-format json, as containerd and podman read it
};

// Prints the error on stderr and to --log; returns `code`.
int fail(const Global& global, const std::string& message, int code = 1);

// runc-style flags: --name value, --name=value, -n value; bools take no value (or
// =true/=false). They end at the first word that is not a flag, or at "--".
struct FlagSpec {
  const char* name;
  char short_name;  // 0: none
  bool takes_value;
};
struct Flags {
  std::map<std::string, std::vector<std::string>> values;
  std::vector<std::string> positional;
  [[nodiscard]] bool has(const std::string& name) const { return values.contains(name); }
  [[nodiscard]] std::optional<std::string> last(const std::string& name) const;
  [[nodiscard]] std::vector<std::string> all(const std::string& name) const;
};
Result<Flags> parse_flags(const std::vector<std::string>& args, std::span<const FlagSpec> spec);

// The state dir, the VM store, and the record of `id`.
struct Context {
  runtime::oci::StateDir state;
  runtime::ContainerStore store;
  runtime::oci::Record record;
};
Result<Context> open_container(const Global& global, const std::string& id);
// "creating", "created", "running" or "stopped".
std::string status_of(const Context& context);

// Writes `pid` to `path` whole (a temporary file renamed), as runc does.
Status write_pid_file(const std::string& path, pid_t pid);

int cmd_create(const Global& global, const std::vector<std::string>& args);
int cmd_start(const Global& global, const std::vector<std::string>& args);
int cmd_state(const Global& global, const std::vector<std::string>& args);
int cmd_kill(const Global& global, const std::vector<std::string>& args);
int cmd_delete(const Global& global, const std::vector<std::string>& args);
int cmd_ps(const Global& global, const std::vector<std::string>& args);
int cmd_features(const Global& global, const std::vector<std::string>& args);
int cmd_exec(const Global& global, const std::vector<std::string>& args);

}  // namespace hyper::cli::oci
