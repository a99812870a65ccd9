// hyperd: the Docker Engine API on the runtime library `hyper` is built on, so the two
// see the same images, containers, networks and volumes. hyperd holds no container state
// of its own (exec sessions aside): each container runs in its own monitor process, which
// hyperd starts as `hyper start` does (through its launcher, runtime/api/launcher.hpp),
// so containers outlive a hyperd that dies or restarts, and a new hyperd finds them in
// the state directory.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "runtime/api/http.hpp"
#include "runtime/api/launcher.hpp"
#include "runtime/container_store.hpp"
#include "runtime/paths.hpp"

namespace hyper::runtime::api {

struct DaemonConfig {
  Paths paths;
  std::vector<std::string> insecure_registries;
};

struct ExecSession;

class Daemon {
 public:
  Daemon(DaemonConfig config, Launcher launcher) : config_(std::move(config)), launcher_(std::move(launcher)) {}

  [[nodiscard]] const DaemonConfig& config() const { return config_; }
  [[nodiscard]] const Paths& paths() const { return config_.paths; }
  [[nodiscard]] Result<ContainerStore> containers() const { return ContainerStore::open(config_.paths.containers()); }
  [[nodiscard]] const Launcher& launcher() const { return launcher_; }

  // Exec instances live as long as hyperd, like dockerd's.
  std::shared_ptr<ExecSession> add_exec(std::shared_ptr<ExecSession> session) const;
  [[nodiscard]] std::shared_ptr<ExecSession> find_exec(const std::string& id) const;

 private:
  DaemonConfig config_;
  Launcher launcher_;
  mutable std::mutex mutex_;
  mutable std::map<std::string, std::shared_ptr<ExecSession>> execs_;
};

using DaemonHandler = void (*)(const Daemon&, const Request&, Exchange&);
// A route's handler with the daemon it serves.
inline Handler bound(const Daemon& daemon, DaemonHandler handler) {
  return [&daemon, handler](const Request& request, Exchange& exchange) { handler(daemon, request, exchange); };
}

// The container the path's {id} names; a 404 has been sent when there is none.
std::optional<Container> find_container(const Daemon& daemon, const Request& request, Exchange& exchange);

void add_system_routes(Router& router, Daemon& daemon);
void add_image_routes(Router& router, Daemon& daemon);
void add_container_routes(Router& router, Daemon& daemon);
void add_stream_routes(Router& router, Daemon& daemon);  // attach, logs, wait
void add_exec_routes(Router& router, Daemon& daemon);
void add_network_routes(Router& router, Daemon& daemon);
void add_volume_routes(Router& router, Daemon& daemon);

// Starts the container's monitor the way `hyper start` does (through the launcher) and
// returns once the container's process runs; the error the start ended with otherwise.
Status start_container(const Daemon& daemon, const Container& container);

}  // namespace hyper::runtime::api
