// hyper-runtime's state under its --root: a directory per OCI container id holding what
// `state` reports (oci.json) and, until `start`, the socket its monitor waits on; and
// beside them (kVmStore) the container store its VMs run from, as `hyper` keeps it.
#pragma once

#include <nlohmann/json.hpp>
#include <sys/types.h>

#include <filesystem>
#include <string>

#include "runtime/paths.hpp"
#include "vmm/result.hpp"

namespace hyper::runtime::oci {

// "@" is not allowed in a container id, so no id can name it.
inline constexpr const char* kVmStore = "@vm";
// The created container's monitor waits here for `start`.
inline constexpr const char* kStartSocket = "start.sock";

struct Record {
  std::string id;
  std::string bundle;        // absolute
  std::string container_id;  // in the VM store
  std::string created;       // RFC 3339
  pid_t pid = 0;             // the monitor: the process the caller reaps
  uint64_t pid_start_ticks = 0;
  nlohmann::json annotations = nlohmann::json::object();
};

class StateDir {
 public:
  // Creates `root` (0700) when missing.
  static Result<StateDir> open(const std::filesystem::path& root);

  [[nodiscard]] std::filesystem::path dir(const std::string& id) const { return root_ / id; }
  [[nodiscard]] Paths vm_paths() const { return Paths{root_ / kVmStore}; }
  // Claims the id: an error naming it when a container has it already.
  Status create(const Record& record) const;
  Status save(const Record& record) const;
  Result<Record> load(const std::string& id) const;
  void remove(const std::string& id) const;

 private:
  explicit StateDir(std::filesystem::path root) : root_(std::move(root)) {}
  std::filesystem::path root_;
};

// The OCI runtime spec's state object.
nlohmann::json state_json(const Record& record, const std::string& status);

}  // namespace hyper::runtime::oci
