// What every front end does to a container the same way: `hyper stop/kill/wait/rm` and
// hyperd's Engine API. Signals go to the container's main process through the agent;
// the monitor records the exit; a container whose agent cannot be reached is ended by
// killing its monitor, which takes the VM with it.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "runtime/agent_client.hpp"
#include "runtime/container_store.hpp"
#include "runtime/monitor.hpp"
#include "runtime/paths.hpp"
#include "vmm/result.hpp"

namespace hyper::runtime {

// The container record and the volumes it names, created together under the volume
// store's lock, so that a `volume rm` or `prune` in between cannot take a volume away.
Result<Container> create_container(const Paths& paths, ContainerStore& store, ContainerConfig config,
                                   const std::optional<std::string>& name);
struct StartOutcome {
  int code = 0;  // 0: the container's process runs; else Docker's exit code (125, 126, 127)
  std::string error;
  std::vector<std::string> warnings;  // limits or parts of the jail not in place
};
// Starts a created or stopped container: its monitor in a child process of a session of
// its own, so it outlives the caller; returns once the container's process runs or could
// not start. Forks: call it from a process with one thread.
StartOutcome start_detached(const Paths& paths, ContainerStore& store, const Container& container);

// The channel a monitor reports its container's start on (start_detached's pipe,
// hyper-runtime's start socket): warnings a line each, then the outcome, then EOF.
// The options write it; `fd` is closed once the outcome is written.
MonitorOptions start_reporting_options(int fd);
StartOutcome read_start_outcome(int fd, const Container& container);

struct ExecStart {
  std::optional<AgentConnection> conn;  // the process's stdio and exit, when it started
  int code = 0;  // else: 126 (could not run), 127 (not found), 1 (no agent)
  std::string error;
};
// Starts one more process (the agent's "process" object) in a running container.
ExecStart start_exec(const Container& container, const Json& process);

// "TERM", "SIGTERM", "sigterm", "15" -> 15.
Result<int> parse_signal(std::string text);
// `sig` to the container's main process.
Status signal_container(const Container& container, int sig);
// Polls the state (find() reconciles a dead monitor) until the container is no longer
// running or the deadline passes; the container as last seen.
Result<Container> wait_until_exited(const ContainerStore& store, const std::string& id,
                                    std::chrono::steady_clock::time_point deadline);
// The image's stop signal (SIGTERM), SIGKILL after `timeout_s`, then the monitor.
Status stop_container(const ContainerStore& store, const Container& container, int timeout_s);
// Kills the monitor and waits until the store no longer shows the container running.
Status kill_container(const ContainerStore& store, const Container& container);
// Removes a stopped container (`force`: kills a running one first; a missing one is then
// no error); `volumes`: its anonymous volumes too.
Status remove_container(const Paths& paths, const ContainerStore& store, const std::string& ref, bool force,
                        bool volumes);

// Whether a container (of any state) uses an image id: such images are not removed.
Result<std::function<bool(const std::string&)>> image_use(const ContainerStore& store);

}  // namespace hyper::runtime
