// An OCI bundle (config.json and its root directory) turned into a container of ours, for
// hyper-runtime: what a VM honours becomes ContainerConfig, what it cannot is an error
// naming the field, and what has no meaning inside a VM is left out (docs/embedding.md
// lists each).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "runtime/container_store.hpp"
#include "vmm/result.hpp"

namespace hyper::runtime::oci {

// The runtime spec version this runtime implements and reports in state.
inline constexpr const char* kSpecVersion = "1.0.2";

// An OCI process (config.json's "process", or exec's --process file).
struct Process {
  std::vector<std::string> args, env;
  std::string cwd = "/";
  uint32_t uid = 0, gid = 0;
  std::vector<uint32_t> additional_gids;
  bool terminal = false;
  std::vector<ContainerConfig::Rlimit> rlimits;
  uint16_t rows = 0, cols = 0;  // consoleSize; 0: the console's own

  [[nodiscard]] std::string user() const { return std::to_string(uid) + ":" + std::to_string(gid); }
};

Result<Process> parse_process(const nlohmann::json& process);
// The agent's "process" object for an exec of `process` (docs/agent-protocol.md).
nlohmann::json agent_process(const Process& process);

struct Bundle {
  ContainerConfig config;
  nlohmann::json annotations = nlohmann::json::object();
};

// `config` is config.json's document; `dir` the bundle, which relative paths are under.
Result<Bundle> parse_bundle_config(const nlohmann::json& config, const std::filesystem::path& dir);
// Reads `dir`/config.json.
Result<Bundle> load_bundle(const std::filesystem::path& dir);

// runc's rule for container ids: letters, digits, "_", "+", "-", "."; not "." or "..".
Status check_container_id(const std::string& id);

}  // namespace hyper::runtime::oci
